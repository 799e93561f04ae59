"""The network interface everything above ``ioe.net`` uses.

A node has one identity (a libp2p peer id, as text) and speaks to other nodes by

* **request/response** on a protocol id (``/ioe/<dna>/<service>/1``): ``request`` sends bytes and
  waits for the reply; ``set_handler`` answers incoming requests;
* **publish/subscribe** on topics;
* **peer events**: connected / disconnected.

Peers are dialled on demand and backed off when they do not answer; a peer the node has no more
use for is forgotten (see :mod:`ioe.net.dialling`).

Payloads are opaque bytes here; their meaning (and their size limits) belong to the protocol that
uses them. Errors are the :class:`NetworkError` family below, never a library's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType, Self

from ioe.errors import IoEError, RemoteProtocolError

PeerId = NewType("PeerId", str)
"""A node's identity on the network, in libp2p's text form (``12D3KooW…``)."""

RequestHandler = Callable[[PeerId, bytes], Awaitable[bytes]]
"""Answers one request from ``peer``; raising :class:`RequestRefused` sends an error reply."""

MAX_PAYLOAD = 4 * 1024 * 1024


class NetworkError(IoEError):
    """A network operation failed."""


class PeerUnreachable(NetworkError):
    """No connection to the peer could be made (or it was lost mid-request)."""


class RequestTimeout(NetworkError):
    """The peer did not answer in time."""


class RequestRefused(NetworkError):
    """The peer answered with an error (raised by a handler to refuse a request)."""


class MalformedFrame(RemoteProtocolError):
    """A peer sent bytes that are not a valid frame (oversized, truncated, garbage)."""


class PeerEventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class PeerEvent:
    kind: PeerEventKind
    peer: PeerId


@dataclass(frozen=True, slots=True)
class DialStats:
    """How this node's dials of one peer went (see :mod:`ioe.net.dialling`)."""

    dials: int
    """Connections this node tried to open to the peer."""
    failures: int
    """Of those, how many failed."""
    failing: int
    """Failed in a row, up to now (0: the latest one worked, or none failed)."""
    skipped: int
    """Dials not made because the peer was backed off, given up or forgotten."""
    state: str
    """``reachable``, ``backing off``, ``given up`` or ``forgotten``."""
    retry_in_s: float | None
    """Seconds until the peer may be dialled again (None: not until it shows up again)."""
    last_error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "dials": self.dials,
            "dial_failures": self.failures,
            "failing": self.failing,
            "skipped": self.skipped,
            "state": self.state,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 1),
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class Message:
    """A published message as a subscriber receives it."""

    topic: str
    sender: PeerId
    data: bytes


class Subscription(ABC):
    """Messages of one topic, as an async iterator; ``close`` ends it."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Message]: ...

    @abstractmethod
    async def close(self) -> None: ...


class Network(ABC):
    """One node's view of the network. Use as an async context manager."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    @abstractmethod
    def peer_id(self) -> PeerId: ...

    @abstractmethod
    def listen_addrs(self) -> list[str]:
        """Addresses others can dial (multiaddrs ending in ``/p2p/<peer id>``)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def connect(self, addr: str) -> PeerId:
        """Dial ``addr`` (a multiaddr with ``/p2p/``); returns the peer's id."""

    @abstractmethod
    def connected_peers(self) -> list[PeerId]: ...

    @abstractmethod
    async def disconnect(self, peer: PeerId) -> None:
        """Hang up on ``peer`` (nothing happens if it is not connected): requests in flight to it
        fail, both ends see DISCONNECTED. Either side may dial again later; refusing a peer for
        good is the caller's business (see :mod:`ioe.dht.service`, blocking)."""

    @abstractmethod
    def set_handler(self, protocol: str, handler: RequestHandler) -> None:
        """Answer requests on ``protocol`` with ``handler`` (replacing any previous one)."""

    @abstractmethod
    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float = 10.0
    ) -> bytes:
        """Send a request and wait for the reply (dialling a known peer if needed)."""

    @abstractmethod
    async def publish(self, topic: str, data: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self, topic: str) -> Subscription: ...

    @abstractmethod
    def peer_events(self) -> AsyncIterator[PeerEvent]:
        """Connected/disconnected events from now on (each call gets its own stream)."""

    @abstractmethod
    def add_peer_addrs(self, peer: PeerId, addrs: list[str]) -> None:
        """Remember addresses of a peer (learnt from discovery or agent info) for later dials.
        Hearsay: a peer backed off or forgotten stays so."""

    def peer_announced(self, peer: PeerId, addrs: list[str]) -> None:
        """``peer`` itself just said where it is (a newly signed agent info): remember the
        addresses, and dial it again at once when needed even if it was backed off or
        forgotten."""
        self.add_peer_addrs(peer, addrs)

    @abstractmethod
    def forget_peer(self, peer: PeerId) -> None:
        """This node has no more use for ``peer`` (its agents left, or it moved to another peer
        id): drop its addresses and never dial it until it shows up again (connects, is
        announced, or is dialled with :meth:`connect`). A connection still open stays open."""

    def dial_stats(self) -> dict[PeerId, DialStats]:
        """Per peer dialled (or forgotten): how the dials went. Empty where not kept."""
        return {}

    def set_member_peers(self, peers: frozenset[PeerId]) -> None:  # noqa: B027 - optional
        """The peers of the members of the node's networks, kept current by the node: a
        network may hold strangers to smaller messages on streams they open."""

    def note_member_peer(self, peer: PeerId) -> None:  # noqa: B027 - optional
        """``peer`` was just accepted as a member's (its agent info passed a membrane): it
        counts as a member's at once, before the node's next :meth:`set_member_peers`."""


class Routing(ABC):
    """Peer and content routing inside one app network (one DNA): a DHT over XOR distance.

    Keys are arbitrary bytes; the implementation says how they map onto its keyspace.
    """

    @abstractmethod
    async def closest_peers(self, key: bytes, count: int) -> list[PeerId]:
        """Up to ``count`` live peers of the network closest to ``key``, nearest first (this
        node excluded)."""

    @abstractmethod
    async def provide(self, key: bytes) -> None:
        """Announce that this node provides ``key`` (records at the peers closest to it)."""

    @abstractmethod
    async def find_providers(self, key: bytes, count: int) -> list[PeerId]:
        """Up to ``count`` peers that announced they provide ``key`` (their addresses are passed
        to the network, so they can be requested at once)."""
