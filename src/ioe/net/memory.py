"""The in-memory twin of the network: many nodes in one asyncio loop, with injectable faults.

A :class:`MemoryHub` is the simulated wire; each :class:`MemoryNetwork` on it is one node and
implements :class:`~ioe.net.interface.Network` fully, so everything above ``ioe.net`` runs on it
unchanged — deterministic tests, and simulations of thousands of agents in one process::

    hub = MemoryHub(seed=7)
    async with MemoryNetwork(hub) as a, MemoryNetwork(hub) as b:
        await a.connect(b.listen_addrs()[0])
        hub.set_link(a, b, delay=jitter(0.01, 0.05), loss=0.1)
        hub.partition([[a], [b]])
        hub.heal()

Behaviour, matching the libp2p implementation (both pass :mod:`ioe.testing.network_contract`):

* **Identity and addresses.** A node's id is the ``peer_id`` it was given, or ``mem-<n>``; it
  listens on ``/memory/<n>/p2p/<peer id>`` once started. The number is fixed per identity on a
  hub, so a node restarted under the same id is found at its old address, like a fixed port.
* **Connections** are symmetric: ``connect`` (or a ``request`` to a peer whose address is known)
  makes one, both ends see it in ``connected_peers`` and get a CONNECTED event, and the dialled
  end learns the dialler's address (as libp2p's identify protocol does). Closing a node drops its
  connections: DISCONNECTED at every peer, and its requests in flight fail.
* **Requests** run the handler in a task of the answering node. A handler raising
  :class:`RequestRefused` refuses with its reason; any other exception, a reply that is not bytes
  or is over :data:`MAX_PAYLOAD` becomes a refusal too and is logged — a handler never crashes a
  node. An unknown protocol is refused. No reply within ``timeout`` is :class:`RequestTimeout`
  (the handler keeps running, as on a real network; its late reply is dropped). A peer that
  cannot be dialled, or a connection lost mid-request, is :class:`PeerUnreachable`. A payload
  over the limit is the caller's bug: :class:`~ioe.errors.LocalProtocolError`, nothing sent.
* **Publish/subscribe** follows GossipSub: a message goes to the peers subscribed to its topic
  and is relayed onwards only by subscribed peers (the topic's mesh), each node delivering a
  message once. The publisher's own subscriptions do not receive it (the project's rule, which
  the libp2p implementation applies by filtering: py-libp2p itself would deliver it locally).
  ``Message.sender`` is the original publisher, not the relaying peer.
* **Faults** are set on the hub, per link or as defaults: ``delay`` (seconds one way, or a
  callable drawing from the hub's seeded :class:`random.Random`, e.g. :func:`jitter`) and
  ``loss`` (the probability that a request, reply or message is dropped on the link, so the
  requester times out). Messages on one link keep their order, as on a TCP stream. ``partition``
  cuts every connection between groups (DISCONNECTED at both ends; requests across fail with
  :class:`PeerUnreachable` at once; messages are dropped) and ``heal`` restores the cut
  connections (CONNECTED at both ends). Everything runs on the event loop's timers: no threads,
  and the same seed and the same program give the same run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ioe.errors import LocalProtocolError
from ioe.net.frames import MAX_PROTOCOL
from ioe.net.interface import (
    MAX_PAYLOAD,
    DialStats,
    Message,
    Network,
    NetworkError,
    PeerEvent,
    PeerEventKind,
    PeerId,
    PeerUnreachable,
    RequestHandler,
    RequestRefused,
    RequestTimeout,
    Subscription,
)

logger = logging.getLogger(__name__)

Delay = float | Callable[[random.Random], float]
"""One-way delay of a link: seconds, or a function of the hub's seeded random generator."""

INBOX_LIMIT = 10_000
"""Undelivered messages a subscription holds before dropping new ones (libp2p bounds it too)."""

SEEN_LIMIT = 65_536
"""Message ids a node remembers to deliver and relay each message once."""

_ADDRESS = re.compile(r"/memory/(\d+)/p2p/(.+)")
_Pair = tuple[PeerId, PeerId]
T = TypeVar("T")


def jitter(low: float, high: float) -> Callable[[random.Random], float]:
    """A delay drawn uniformly from ``[low, high]`` seconds for each message."""
    if not 0 <= low <= high:
        raise ValueError("jitter needs 0 <= low <= high")
    return lambda rng: rng.uniform(low, high)


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """What the wire does to every request, reply and message on a link."""

    delay: Delay = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.delay) and self.delay < 0:
            raise ValueError("a delay cannot be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability in [0, 1]")

    def sample_delay(self, rng: random.Random) -> float:
        delay = self.delay(rng) if callable(self.delay) else self.delay
        return max(0.0, delay)


@dataclass(slots=True)
class HubStats:
    """Counts of what went over the hub's wire (requests, replies and pubsub hops alike)."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0  # dropped by injected loss
    cut: int = 0  # dropped because there was no connection, or it broke while in flight


def _pair(a: PeerId, b: PeerId) -> _Pair:
    return (a, b) if a <= b else (b, a)


def _parse_addr(addr: str) -> tuple[int, PeerId]:
    match = _ADDRESS.fullmatch(addr) if isinstance(addr, str) else None
    if match is None:
        raise PeerUnreachable(f"not a memory address: {addr!r} (want /memory/<n>/p2p/<peer id>)")
    return int(match.group(1)), PeerId(match.group(2))


def _check_payload(data: bytes, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"a {what} is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PAYLOAD:
        raise LocalProtocolError(f"a {what} of {len(data)} bytes is over {MAX_PAYLOAD}")
    return data


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_PROTOCOL:
        raise LocalProtocolError(f"a {what} is a non-empty string of at most {MAX_PROTOCOL}")


class _Link:
    """One connection between two nodes, with a FIFO queue of arrivals per direction."""

    __slots__ = ("ends", "queues", "timers")

    def __init__(self, a: MemoryNetwork, b: MemoryNetwork) -> None:
        self.ends = (a, b)
        self.queues: dict[PeerId, deque[tuple[float, Callable[[MemoryNetwork], None]]]] = {
            a.peer_id: deque(),
            b.peer_id: deque(),
        }
        self.timers: dict[PeerId, asyncio.TimerHandle] = {}

    def other(self, peer: PeerId) -> MemoryNetwork:
        a, b = self.ends
        return b if a.peer_id == peer else a

    def node(self, peer: PeerId) -> MemoryNetwork:
        a, b = self.ends
        return a if a.peer_id == peer else b

    def drop_in_flight(self) -> int:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        dropped = sum(len(queue) for queue in self.queues.values())
        for queue in self.queues.values():
            queue.clear()
        return dropped


class MemoryHub:
    """The simulated wire shared by many :class:`MemoryNetwork` nodes in one event loop."""

    def __init__(self, *, delay: Delay = 0.0, loss: float = 0.0, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.default_faults = LinkFaults(delay, loss)
        self.stats = HubStats()
        self._faults: dict[_Pair, LinkFaults] = {}
        self._numbers: dict[PeerId, int] = {}
        self._next_number = itertools.count(1)
        self._listening: dict[int, MemoryNetwork] = {}
        self._nodes: dict[PeerId, MemoryNetwork] = {}
        self._links: dict[_Pair, _Link] = {}
        self._adjacent: dict[PeerId, dict[PeerId, _Link]] = {}
        self._groups: dict[PeerId, int] | None = None
        self._severed: dict[_Pair, None] = {}  # cut by a partition, restored by heal

    # ------------------------------------------------------------------------------ faults

    def set_link(
        self,
        a: MemoryNetwork | PeerId,
        b: MemoryNetwork | PeerId,
        *,
        delay: Delay | None = None,
        loss: float | None = None,
    ) -> None:
        """Faults of the link between ``a`` and ``b`` (both directions); unset ones keep the
        link's current setting (or the hub's default)."""
        pair = _pair(_peer_of(a), _peer_of(b))
        current = self._faults.get(pair, self.default_faults)
        self._faults[pair] = LinkFaults(
            current.delay if delay is None else delay, current.loss if loss is None else loss
        )

    def clear_link(self, a: MemoryNetwork | PeerId, b: MemoryNetwork | PeerId) -> None:
        """Give the link between ``a`` and ``b`` the hub's default faults again."""
        self._faults.pop(_pair(_peer_of(a), _peer_of(b)), None)

    def faults(self, a: MemoryNetwork | PeerId, b: MemoryNetwork | PeerId) -> LinkFaults:
        return self._faults.get(_pair(_peer_of(a), _peer_of(b)), self.default_faults)

    def partition(self, groups: Iterable[Iterable[MemoryNetwork | PeerId]]) -> None:
        """Split the network: nodes in different groups cannot reach each other. Nodes named in
        no group form one more group together. Replaces any earlier partition."""
        mapping: dict[PeerId, int] = {}
        for index, group in enumerate(groups):
            for member in group:
                peer = _peer_of(member)
                if mapping.setdefault(peer, index) != index:
                    raise ValueError(f"{peer} is in two groups")
        self._groups = mapping
        self._apply_reachability()

    def heal(self) -> None:
        """End the partition: every connection it cut comes back (CONNECTED at both ends)."""
        self._groups = None
        self._apply_reachability()

    def disconnect(self, a: MemoryNetwork | PeerId, b: MemoryNetwork | PeerId) -> None:
        """Drop the connection between ``a`` and ``b`` (as a reset would); either may redial."""
        link = self._links.get(_pair(_peer_of(a), _peer_of(b)))
        if link is not None:
            self._sever(link, "the connection was reset")

    def reachable(self, a: PeerId, b: PeerId) -> bool:
        """Whether the partition (if any) lets ``a`` and ``b`` reach each other."""
        if self._groups is None:
            return True
        return self._groups.get(a, -1) == self._groups.get(b, -1)

    def networks(self) -> list[MemoryNetwork]:
        """The running nodes."""
        return list(self._nodes.values())

    # ------------------------------------------------------------------- nodes and links

    def _number_for(self, peer: PeerId | None) -> tuple[int, PeerId]:
        if peer is not None:
            if peer not in self._numbers:
                self._numbers[peer] = next(self._next_number)
            return self._numbers[peer], peer
        while True:
            number = next(self._next_number)
            candidate = PeerId(f"mem-{number}")
            if candidate not in self._numbers:
                self._numbers[candidate] = number
                return number, candidate

    def _register(self, node: MemoryNetwork) -> None:
        other = self._nodes.get(node.peer_id)
        if other is not None and other is not node:
            raise NetworkError(f"{node.peer_id} is already running on this hub")
        self._nodes[node.peer_id] = node
        self._listening[node.number] = node
        self._adjacent[node.peer_id] = {}

    def _unregister(self, node: MemoryNetwork) -> None:
        for link in list(self._adjacent.get(node.peer_id, {}).values()):
            self._sever(link, f"{node.peer_id} closed")
        for pair in [p for p in self._severed if node.peer_id in p]:
            del self._severed[pair]
        if self._nodes.get(node.peer_id) is node:
            del self._nodes[node.peer_id]
            del self._listening[node.number]
            del self._adjacent[node.peer_id]

    def _node_at(self, number: int) -> MemoryNetwork | None:
        return self._listening.get(number)

    def _link(self, a: PeerId, b: PeerId) -> _Link | None:
        return self._links.get(_pair(a, b))

    def _neighbours(self, peer: PeerId) -> list[tuple[PeerId, _Link]]:
        return list(self._adjacent.get(peer, {}).items())

    def _establish(self, a: MemoryNetwork, b: MemoryNetwork) -> None:
        link = _Link(a, b)
        self._links[_pair(a.peer_id, b.peer_id)] = link
        self._adjacent[a.peer_id][b.peer_id] = link
        self._adjacent[b.peer_id][a.peer_id] = link
        a._peer_event(PeerEventKind.CONNECTED, b.peer_id)
        b._peer_event(PeerEventKind.CONNECTED, a.peer_id)

    def _sever(self, link: _Link, reason: str) -> None:
        a, b = link.ends
        if self._links.get(_pair(a.peer_id, b.peer_id)) is not link:
            return
        del self._links[_pair(a.peer_id, b.peer_id)]
        self._adjacent[a.peer_id].pop(b.peer_id, None)
        self._adjacent[b.peer_id].pop(a.peer_id, None)
        self.stats.cut += link.drop_in_flight()
        for node, other in ((a, b), (b, a)):
            node._connection_lost(other.peer_id, reason)

    def _apply_reachability(self) -> None:
        for pair, link in list(self._links.items()):
            if not self.reachable(*pair):
                self._severed[pair] = None
                self._sever(link, "partitioned")
        for pair in list(self._severed):
            a, b = (self._nodes.get(peer) for peer in pair)
            if a is None or b is None:
                del self._severed[pair]
            elif self.reachable(*pair):
                del self._severed[pair]
                if pair not in self._links:
                    self._establish(a, b)

    # ---------------------------------------------------------------------------- the wire

    def _dial_delay(self, a: PeerId, b: PeerId) -> float:
        """A connection costs one round trip."""
        faults = self.faults(a, b)
        return faults.sample_delay(self.rng) + faults.sample_delay(self.rng)

    def _transmit(
        self, source: PeerId, target: PeerId, deliver: Callable[[MemoryNetwork], None]
    ) -> None:
        """Send ``deliver`` over the connection; it runs with the target node on arrival unless
        the message is lost or the connection breaks first."""
        link = self._links.get(_pair(source, target))
        if link is None:
            self.stats.cut += 1
            return
        self.stats.sent += 1
        faults = self.faults(source, target)
        if faults.loss and self.rng.random() < faults.loss:
            self.stats.lost += 1
            return
        loop = asyncio.get_running_loop()
        arrival = loop.time() + faults.sample_delay(self.rng)
        queue = link.queues[target]
        if queue:
            arrival = max(arrival, queue[-1][0])
        queue.append((arrival, deliver))
        if target not in link.timers:
            link.timers[target] = loop.call_at(arrival, self._arrive, link, target, arrival)

    def _arrive(self, link: _Link, target: PeerId, due: float) -> None:
        del link.timers[target]
        queue = link.queues[target]
        now = max(asyncio.get_running_loop().time(), due)
        node = link.node(target)
        while queue and queue[0][0] <= now:
            _, deliver = queue.popleft()
            self.stats.delivered += 1
            deliver(node)
            if self._links.get(_pair(link.ends[0].peer_id, link.ends[1].peer_id)) is not link:
                return  # the delivery broke the connection; the rest was dropped with it
        if queue:
            loop = asyncio.get_running_loop()
            link.timers[target] = loop.call_at(queue[0][0], self._arrive, link, target, queue[0][0])


def _peer_of(member: MemoryNetwork | PeerId) -> PeerId:
    return member.peer_id if isinstance(member, MemoryNetwork) else PeerId(member)


class _Inbox(Generic[T]):
    """An async iterator over items pushed to it; ``end`` finishes it once the items are read."""

    def __init__(self, limit: int | None = None) -> None:
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self._limit = limit

    def push(self, item: T) -> bool:
        if self._ended or (self._limit is not None and len(self._items) >= self._limit):
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    @property
    def ended(self) -> bool:
        return self._ended

    def __aiter__(self) -> _Inbox[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class _PeerEventStream(_Inbox[PeerEvent]):
    """Peer events of one node; ``aclose`` stops it early, the node's close ends it."""

    def __init__(self, network: MemoryNetwork) -> None:
        super().__init__()
        self._network = network

    async def aclose(self) -> None:
        self.end()
        self._network._event_streams.discard(self)


class _MemorySubscription(Subscription):
    def __init__(self, network: MemoryNetwork, topic: str) -> None:
        self.topic = topic
        self._network = network
        self._inbox: _Inbox[Message] = _Inbox(INBOX_LIMIT)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._inbox

    async def close(self) -> None:
        self._inbox.end()
        self._network._unsubscribe(self)

    def _deliver(self, message: Message) -> None:
        if not self._inbox.push(message) and not self._inbox.ended:
            logger.warning(
                "%s: subscription to %s is full, message dropped", self._network.peer_id, self.topic
            )

    def _end(self) -> None:
        self._inbox.end()


@dataclass(frozen=True, slots=True)
class _Published:
    origin: PeerId
    seqno: int
    message: Message


@dataclass(slots=True)
class _DialCount:
    dials: int = 0
    failures: int = 0
    failing: int = 0
    skipped: int = 0


class MemoryNetwork(Network):
    """One node on a :class:`MemoryHub`."""

    def __init__(self, hub: MemoryHub, peer_id: str | None = None) -> None:
        self.hub = hub
        self.number, self._peer_id = hub._number_for(None if peer_id is None else PeerId(peer_id))
        self._state = "new"
        self._handlers: dict[str, RequestHandler] = {}
        self._peer_addrs: dict[PeerId, list[str]] = {}
        self._forgotten: set[PeerId] = set()
        self._dials: dict[PeerId, _DialCount] = {}
        self._pending: dict[int, tuple[PeerId, asyncio.Future[bytes]]] = {}
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscriptions: dict[str, list[_MemorySubscription]] = {}
        self._event_streams: weakref.WeakSet[_PeerEventStream] = weakref.WeakSet()
        self._seqno = 0
        self._seen: OrderedDict[tuple[PeerId, int], None] = OrderedDict()

    def __repr__(self) -> str:
        return f"<MemoryNetwork {self._peer_id} {self._state}>"

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    def listen_addrs(self) -> list[str]:
        if self._state != "running":
            return []
        return [f"/memory/{self.number}/p2p/{self._peer_id}"]

    async def start(self) -> None:
        if self._state == "closed":
            raise NetworkError("a closed network cannot be started again; make a new one")
        if self._state == "new":
            self.hub._register(self)
            self._state = "running"

    async def close(self) -> None:
        if self._state == "closed":
            return
        was_running = self._state == "running"
        self._state = "closed"
        if was_running:
            self.hub._unregister(self)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(NetworkError("the network was closed"))
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription._end()
        self._subscriptions.clear()
        for stream in list(self._event_streams):
            stream.end()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _check_running(self) -> None:
        if self._state != "running":
            raise NetworkError(f"the network of {self._peer_id} is {self._state}, not running")

    # ------------------------------------------------------------------------- connections

    async def connect(self, addr: str) -> PeerId:
        self._check_running()
        number, peer = _parse_addr(addr)
        if peer == self._peer_id:
            raise PeerUnreachable("a node cannot dial itself")
        if self.hub._link(self._peer_id, peer) is not None:
            return peer
        self._dialable(number, peer, addr)
        delay = self.hub._dial_delay(self._peer_id, peer)
        if delay > 0:
            await asyncio.sleep(delay)
            self._check_running()
            if self.hub._link(self._peer_id, peer) is not None:
                return peer
        target = self._dialable(number, peer, addr)
        self.hub._establish(self, target)
        self._remember(peer, [addr])
        target._remember(self._peer_id, self.listen_addrs())
        return peer

    def _dialable(self, number: int, peer: PeerId, addr: str) -> MemoryNetwork:
        target = self.hub._node_at(number)
        if target is None:
            raise PeerUnreachable(f"nothing listens at {addr}")
        if target.peer_id != peer:
            raise PeerUnreachable(f"{addr} is {target.peer_id}, not {peer}")
        if not self.hub.reachable(self._peer_id, peer):
            raise PeerUnreachable(f"{peer} is on the other side of a partition")
        return target

    def connected_peers(self) -> list[PeerId]:
        return [peer for peer, _ in self.hub._neighbours(self._peer_id)]

    async def disconnect(self, peer: PeerId) -> None:
        if self._state == "running":
            self.hub.disconnect(self._peer_id, peer)

    def add_peer_addrs(self, peer: PeerId, addrs: list[str]) -> None:
        self._remember(peer, addrs)

    def peer_announced(self, peer: PeerId, addrs: list[str]) -> None:
        self._forgotten.discard(peer)
        self._remember(peer, addrs)

    def forget_peer(self, peer: PeerId) -> None:
        """No backoff here (dials are instant and cost nothing), but forgetting is kept: a
        forgotten peer is not dialled on demand until it connects, is announced or dialled."""
        if peer != self._peer_id:
            self._forgotten.add(peer)
            self._peer_addrs.pop(peer, None)

    def dial_stats(self) -> dict[PeerId, DialStats]:
        return {
            peer: DialStats(
                dials=count.dials,
                failures=count.failures,
                failing=count.failing,
                skipped=count.skipped,
                state="forgotten" if peer in self._forgotten else "reachable",
                retry_in_s=None if peer in self._forgotten else 0.0,
            )
            for peer, count in {
                **{peer: _DialCount() for peer in self._forgotten},
                **self._dials,
            }.items()
        }

    def _remember(self, peer: PeerId, addrs: list[str]) -> None:
        known = self._peer_addrs.setdefault(peer, [])
        known.extend(addr for addr in addrs if addr not in known)

    async def _connection_to(self, peer: PeerId) -> None:
        if peer == self._peer_id:
            raise PeerUnreachable("a node cannot dial itself")
        if self.hub._link(self._peer_id, peer) is not None:
            return
        count = self._dials.setdefault(peer, _DialCount())
        if peer in self._forgotten:
            count.skipped += 1
            raise PeerUnreachable(f"not dialling {peer}: forgotten (it left)")
        addrs = [a for a in self._peer_addrs.get(peer, []) if a.endswith(f"/p2p/{peer}")]
        if not addrs:
            raise PeerUnreachable(f"no connection to {peer} and no known address")
        failure: PeerUnreachable | None = None
        count.dials += 1
        for addr in addrs:
            try:
                await self.connect(addr)
            except PeerUnreachable as exc:
                failure = exc
            else:
                count.failing = 0
                return
        count.failures += 1
        count.failing += 1
        raise PeerUnreachable(f"cannot dial {peer}: {failure}") from failure

    def _connection_lost(self, peer: PeerId, reason: str) -> None:
        for rid, (target, future) in list(self._pending.items()):
            if target == peer and not future.done():
                future.set_exception(PeerUnreachable(f"connection to {peer} lost: {reason}"))
                del self._pending[rid]
        self._peer_event(PeerEventKind.DISCONNECTED, peer)

    def peer_events(self) -> _PeerEventStream:
        stream = _PeerEventStream(self)
        if self._state == "closed":
            stream.end()
        else:
            self._event_streams.add(stream)
        return stream

    def _peer_event(self, kind: PeerEventKind, peer: PeerId) -> None:
        if kind is PeerEventKind.CONNECTED:
            self._forgotten.discard(peer)  # it showed up again
        event = PeerEvent(kind, peer)
        for stream in list(self._event_streams):
            stream.push(event)

    # ---------------------------------------------------------------- request / response

    def set_handler(self, protocol: str, handler: RequestHandler) -> None:
        _check_name(protocol, "protocol id")
        self._handlers[protocol] = handler

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float = 10.0
    ) -> bytes:
        self._check_running()
        _check_name(protocol, "protocol id")
        payload = _check_payload(payload, "request")
        rid = next(self._request_ids)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._connection_to(peer)
                self._pending[rid] = (peer, future)
                source = self._peer_id
                self.hub._transmit(
                    source,
                    peer,
                    lambda node: node._on_request(source, rid, protocol, payload),
                )
                return await future
        except TimeoutError:
            raise RequestTimeout(f"{peer} did not answer on {protocol} in {timeout} s") from None
        finally:
            self._pending.pop(rid, None)

    def _on_request(self, source: PeerId, rid: int, protocol: str, payload: bytes) -> None:
        if self._state != "running":
            return
        handler = self._handlers.get(protocol)
        if handler is None:
            self._reply(source, rid, None, f"no handler for {protocol}")
            return
        task = asyncio.get_running_loop().create_task(
            self._serve(handler, source, rid, protocol, payload),
            name=f"{self._peer_id} serving {protocol} to {source}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, handler: RequestHandler, source: PeerId, rid: int, protocol: str, payload: bytes
    ) -> None:
        try:
            reply = await handler(source, payload)
        except RequestRefused as exc:
            self._reply(source, rid, None, str(exc))
            return
        except Exception as exc:
            logger.exception("%s: handler for %s failed", self._peer_id, protocol)
            self._reply(source, rid, None, f"the handler failed ({type(exc).__name__})")
            return
        if not isinstance(reply, bytes | bytearray | memoryview):
            logger.error(
                "%s: handler for %s returned %s, not bytes",
                self._peer_id,
                protocol,
                type(reply).__name__,
            )
            self._reply(source, rid, None, "the handler failed (reply is not bytes)")
        elif len(reply) > MAX_PAYLOAD:
            logger.error("%s: handler for %s replied %d bytes", self._peer_id, protocol, len(reply))
            self._reply(source, rid, None, f"the reply is over {MAX_PAYLOAD} bytes")
        else:
            self._reply(source, rid, bytes(reply), None)

    def _reply(self, target: PeerId, rid: int, data: bytes | None, refusal: str | None) -> None:
        if self._state != "running":
            return
        source = self._peer_id
        self.hub._transmit(source, target, lambda node: node._on_reply(source, rid, data, refusal))

    def _on_reply(self, source: PeerId, rid: int, data: bytes | None, refusal: str | None) -> None:
        entry = self._pending.get(rid)
        if entry is None or entry[0] != source or entry[1].done():
            return  # a late reply to a request that timed out
        future = entry[1]
        if data is not None:
            future.set_result(data)
        else:
            future.set_exception(RequestRefused(refusal or "refused"))

    # ------------------------------------------------------------------ publish / subscribe

    async def publish(self, topic: str, data: bytes) -> None:
        self._check_running()
        _check_name(topic, "topic")
        data = _check_payload(data, "message")
        self._seqno += 1
        published = _Published(self._peer_id, self._seqno, Message(topic, self._peer_id, data))
        self._on_message(self._peer_id, published)

    async def subscribe(self, topic: str) -> Subscription:
        self._check_running()
        _check_name(topic, "topic")
        subscription = _MemorySubscription(self, topic)
        self._subscriptions.setdefault(topic, []).append(subscription)
        return subscription

    def _unsubscribe(self, subscription: _MemorySubscription) -> None:
        subscriptions = self._subscriptions.get(subscription.topic, [])
        if subscription in subscriptions:
            subscriptions.remove(subscription)
        if not subscriptions:
            self._subscriptions.pop(subscription.topic, None)

    def _subscribed(self, topic: str) -> bool:
        return self._state == "running" and topic in self._subscriptions

    def _on_message(self, forwarder: PeerId, published: _Published) -> None:
        if self._state != "running":
            return
        key = (published.origin, published.seqno)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        topic = published.message.topic
        is_origin = published.origin == self._peer_id
        if not is_origin and not self._subscribed(topic):
            return  # not in the topic's mesh: neither delivered nor relayed
        if not is_origin:
            for subscription in list(self._subscriptions.get(topic, [])):
                subscription._deliver(published.message)
        source = self._peer_id
        for peer, link in self.hub._neighbours(self._peer_id):
            if peer in (forwarder, published.origin) or not link.other(source)._subscribed(topic):
                continue
            self.hub._transmit(source, peer, lambda node: node._on_message(source, published))
