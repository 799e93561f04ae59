"""Kademlia peer and content routing for one app network (one DNA), over :class:`Network` requests.

Each DNA gets its own DHT on the protocol id ``/ioe/<namespace>/kad/1.0.0`` (``namespace`` is the
DNA hash text), so app networks never share a routing table or provider records. It runs on any
:class:`~ioe.net.interface.Network` — libp2p or the in-memory twin — because it only uses
request/response, peer events and ``add_peer_addrs``. (py-libp2p's own ``KadDHT`` hard-codes
``/ipfs/kad/1.0.0`` in its stream opens, so it cannot be namespaced per DNA; see
``docs/kademlia.md``.)

The keyspace
    256-bit locations. A peer's location is BLAKE2b-256 of its peer id's UTF-8 bytes
    (:func:`peer_location`); a key's location is BLAKE2b-256 of the key bytes, whatever their
    length (:func:`key_location`). Distance is XOR (:func:`distance`); a peer lives in the
    k-bucket numbered by the length of the prefix its location shares with ours
    (:func:`bucket_index`).

The wire (canonical CBOR, at most :data:`MAX_MESSAGE` bytes, checked before parsing)
    request ``[kind, sender_addrs, *args]``, reply ``[responder_addrs, *results]``:

    ========================  ===========================  ==============================
    kind                      args                         results
    ========================  ===========================  ==============================
    0 PING                    —                            —
    1 FIND_NODE               target, count                closer_peers
    2 ADD_PROVIDER            target                       —
    3 GET_PROVIDERS           target, count                providers, closer_peers
    ========================  ===========================  ==============================

    ``target`` is a 32-byte location, ``count`` an integer in ``1..MAX_PEERS``, a peer list is
    ``[[peer_id, [multiaddr, …]], …]`` (at most :data:`MAX_PEERS` entries, :data:`MAX_ADDRS`
    addresses each). Addresses not ending in ``/p2p/<that peer id>`` are ignored. The provider
    of an ADD_PROVIDER is always the requester (the network authenticates it), so a node can
    only announce itself. A malformed request is refused (:class:`RequestRefused`) and its
    sender is not added to the routing table; a malformed reply counts as a failed query and
    drops the peer from the table.

Routing table
    256 buckets of at most ``k`` peers, least recently seen first. A peer is (re)marked seen when
    it sends us a well-formed request or answers one of ours; a peer the network reports
    connected is pinged first and added only if it answers on this DHT's protocol (so a peer of
    another DNA on the same node never enters it). When a bucket is full the newcomer waits in
    the bucket's replacement cache (``k`` newest) while the least recently seen peer is pinged:
    if it answers it stays, otherwise it is evicted and the newest replacement takes its place.
    A peer that fails :data:`MAX_FAILURES` requests in a row, refuses our protocol or sends a
    malformed reply is dropped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from ioe.encoding import Value, decode, encode
from ioe.errors import EncodingError
from ioe.hashing import blake2b_256
from ioe.net.interface import (
    Network,
    NetworkError,
    PeerEvent,
    PeerEventKind,
    PeerId,
    PeerUnreachable,
    RequestRefused,
    RequestTimeout,
    Routing,
)

log = logging.getLogger(__name__)

KEY_BITS = 256
LOCATION_SIZE = KEY_BITS // 8
PROTOCOL_VERSION = "1.0.0"

MAX_PEERS = 32
"""Most peers (or providers) in one list of a message, stored per key, or asked for at once;
also the largest ``k``."""
MAX_ADDRS = 8
"""Most addresses kept per peer."""
MAX_ADDR_LENGTH = 256
MAX_PEER_ID_LENGTH = 128
MAX_MESSAGE = 256 * 1024
"""Largest request or reply accepted (two full peer lists fit with room to spare)."""
MAX_PROVIDER_KEYS = 65_536
"""Most keys this node stores provider records for (for others)."""
MAX_FAILURES = 3
"""Failed requests in a row after which a peer is stale (replaced when a replacement is known)."""
MAX_PENDING_PINGS = 64
"""Most pings of newly connected peers in flight at once; more are skipped."""
MAX_REFRESH_BUCKETS = 16
"""A refresh looks up one random location in each of the first this-many buckets (at most)."""
MAX_ATTEMPTS = 2
"""Tries per peer within one lookup when it does not answer in time."""

_NAMESPACE = re.compile(r"[A-Za-z0-9._~-]{1,128}")

T = TypeVar("T")
PeerInfo = tuple[PeerId, list[str]]
"""A peer and the addresses it can be dialled at."""


class Kind(IntEnum):
    """The first element of a request."""

    PING = 0
    FIND_NODE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3


# ---------------------------------------------------------------------------------- keyspace


def protocol_id(namespace: str) -> str:
    """The protocol id of the DHT of ``namespace`` (a DNA hash text)."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError("a namespace is 1-128 characters of [A-Za-z0-9._~-]")
    return f"/ioe/{namespace}/kad/{PROTOCOL_VERSION}"


def peer_location(peer: str) -> bytes:
    """Where a peer sits on the keyspace: BLAKE2b-256 of its id's UTF-8 bytes."""
    return blake2b_256(peer.encode("utf-8"))


def key_location(key: bytes) -> bytes:
    """Where a key sits on the keyspace: BLAKE2b-256 of its bytes (any length, even 32)."""
    return blake2b_256(bytes(key))


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two locations, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(own: bytes, other: bytes) -> int:
    """Length of the common prefix of two locations in bits: 0 (they differ in the first bit)
    to 255; 256 only when they are equal."""
    return KEY_BITS - distance(own, other).bit_length()


def random_location_in_bucket(own: bytes, index: int, rng: random.Random) -> bytes:
    """A random location whose :func:`bucket_index` relative to ``own`` is exactly ``index``."""
    if not 0 <= index < KEY_BITS:
        raise ValueError(f"a bucket index is in 0..{KEY_BITS - 1}")
    value = int.from_bytes(own, "big")
    shift = KEY_BITS - 1 - index  # position of the first bit that differs
    prefix = (value >> (shift + 1)) << (shift + 1)
    flipped = ((value >> shift) & 1) ^ 1
    return (prefix | (flipped << shift) | rng.getrandbits(shift)).to_bytes(LOCATION_SIZE, "big")


# ----------------------------------------------------------------------------- routing table


@dataclass(slots=True)
class _Entry:
    location: bytes
    addrs: list[str]
    last_seen: float
    failures: int = 0


class RoutingTable:
    """k-buckets by common-prefix length, least recently seen first, with replacement caches.

    Pure bookkeeping: :class:`Kademlia` does the pinging that :meth:`update` asks for.
    """

    def __init__(self, own: PeerId, k: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= k <= MAX_PEERS:
            raise ValueError(f"k is in 1..{MAX_PEERS}")
        self.own = own
        self.location = peer_location(own)
        self.k = k
        self._clock = clock
        self._buckets: dict[int, OrderedDict[PeerId, _Entry]] = {}
        self._replacements: dict[int, OrderedDict[PeerId, list[str]]] = {}
        self._index: dict[PeerId, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, peer: object) -> bool:
        return peer in self._index

    def bucket_of(self, peer: str) -> int:
        return bucket_index(self.location, peer_location(peer))

    def peers(self) -> list[PeerId]:
        return list(self._index)

    def bucket(self, index: int) -> list[PeerId]:
        """The peers of one bucket, least recently seen first."""
        return list(self._buckets.get(index, ()))

    def replacements(self, index: int) -> list[PeerId]:
        """The replacement cache of one bucket, oldest first."""
        return list(self._replacements.get(index, ()))

    def deepest_bucket(self) -> int | None:
        """The highest index of a non-empty bucket (None when the table is empty)."""
        return max(self._buckets) if self._buckets else None

    def addrs(self, peer: PeerId) -> list[str]:
        index = self._index.get(peer)
        if index is None:
            return []
        return list(self._buckets[index][peer].addrs)

    def update(self, peer: PeerId, addrs: list[str]) -> PeerId | None:
        """``peer`` is alive (it contacted us or answered us). Returns the least recently seen
        peer of its bucket when the bucket is full: ``peer`` waits in the replacement cache and
        the returned one should be pinged (and :meth:`remove`\\ d if it does not answer)."""
        if peer == self.own:
            return None
        now = self._clock()
        index = self._index.get(peer)
        if index is not None:
            entry = self._buckets[index][peer]
            if addrs:
                entry.addrs = list(addrs)
            entry.last_seen = now
            entry.failures = 0
            self._buckets[index].move_to_end(peer)
            return None
        location = peer_location(peer)
        index = bucket_index(self.location, location)
        bucket = self._buckets.setdefault(index, OrderedDict())
        cache = self._replacements.get(index)
        if len(bucket) < self.k:
            known = cache.pop(peer, []) if cache is not None else []
            bucket[peer] = _Entry(location, list(addrs or known), now)
            self._index[peer] = index
            return None
        cache = self._replacements.setdefault(index, OrderedDict())
        known = cache.pop(peer, [])
        cache[peer] = list(addrs or known)
        while len(cache) > self.k:
            cache.popitem(last=False)
        return next(iter(bucket))

    def failed(self, peer: PeerId) -> bool:
        """A request to ``peer`` did not get through; returns whether it was dropped. A peer
        that failed :data:`MAX_FAILURES` times in a row is stale: it is replaced as soon as its
        bucket's replacement cache has someone, and kept until then (as in the Kademlia paper:
        on a lossy link, or after a short outage, a stale peer is better than none)."""
        index = self._index.get(peer)
        if index is None:
            self._forget_replacement(peer)
            return False
        entry = self._buckets[index][peer]
        entry.failures += 1
        if entry.failures >= MAX_FAILURES and self._replacements.get(index):
            self.remove(peer)
            return True
        return False

    def stale(self, peer: PeerId) -> bool:
        """Whether ``peer`` failed :data:`MAX_FAILURES` requests in a row (and is kept only for
        want of a replacement)."""
        index = self._index.get(peer)
        return index is not None and self._buckets[index][peer].failures >= MAX_FAILURES

    def remove(self, peer: PeerId) -> None:
        """Drop ``peer``; the newest peer of its bucket's replacement cache takes its place."""
        index = self._index.pop(peer, None)
        if index is None:
            self._forget_replacement(peer)
            return
        bucket = self._buckets[index]
        del bucket[peer]
        cache = self._replacements.get(index)
        if cache:
            newcomer, addrs = cache.popitem(last=True)
            bucket[newcomer] = _Entry(peer_location(newcomer), addrs, self._clock())
            self._index[newcomer] = index
        if not bucket:
            del self._buckets[index]
        if cache is not None and not cache:
            del self._replacements[index]

    def _forget_replacement(self, peer: PeerId) -> None:
        index = self.bucket_of(peer)
        cache = self._replacements.get(index)
        if cache is not None:
            cache.pop(peer, None)
            if not cache:
                del self._replacements[index]

    def closest(self, target: bytes, count: int, exclude: Collection[PeerId] = ()) -> list[PeerId]:
        """The ``count`` peers of the table nearest ``target``, nearest first."""
        t = int.from_bytes(target, "big")
        ranked = heapq.nsmallest(
            count,
            (
                (int.from_bytes(entry.location, "big") ^ t, peer)
                for bucket in self._buckets.values()
                for peer, entry in bucket.items()
                if peer not in exclude
            ),
        )
        return [peer for _, peer in ranked]


# ---------------------------------------------------------------------------- provider store


@dataclass(slots=True)
class _Provider:
    addrs: list[str]
    expires: float


class ProviderStore:
    """Provider records by key location, each with an expiry; bounded per key and in keys."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        per_key: int = MAX_PEERS,
        max_keys: int = MAX_PROVIDER_KEYS,
    ) -> None:
        self._clock = clock
        self.per_key = per_key
        self.max_keys = max_keys
        self._records: dict[bytes, OrderedDict[PeerId, _Provider]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def add(self, location: bytes, peer: PeerId, addrs: list[str], ttl_s: float) -> bool:
        """Store (or refresh) a record; False when the store is full of live records. A key
        with :attr:`per_key` providers already loses its oldest record."""
        records = self._records.get(location)
        if records is None:
            if len(self._records) >= self.max_keys:
                self.purge()
                if len(self._records) >= self.max_keys:
                    return False
            records = self._records[location] = OrderedDict()
        records.pop(peer, None)
        records[peer] = _Provider(list(addrs), self._clock() + ttl_s)
        while len(records) > self.per_key:
            records.popitem(last=False)
        return True

    def remove(self, location: bytes, peer: PeerId) -> None:
        records = self._records.get(location)
        if records is not None:
            records.pop(peer, None)
            if not records:
                del self._records[location]

    def remove_peer(self, peer: PeerId) -> int:
        """Drop every record of ``peer`` (it left); returns how many."""
        dropped = 0
        for location in list(self._records):
            if peer in self._records[location]:
                self.remove(location, peer)
                dropped += 1
        return dropped

    def get(self, location: bytes) -> list[PeerInfo]:
        """The live providers of a key, most recently announced first."""
        records = self._records.get(location)
        if records is None:
            return []
        now = self._clock()
        for peer in [peer for peer, record in records.items() if record.expires <= now]:
            del records[peer]
        if not records:
            del self._records[location]
            return []
        return [(peer, list(record.addrs)) for peer, record in reversed(records.items())]

    def purge(self) -> int:
        """Drop every expired record; returns how many."""
        now = self._clock()
        dropped = 0
        for location in list(self._records):
            records = self._records[location]
            for peer in [peer for peer, record in records.items() if record.expires <= now]:
                del records[peer]
                dropped += 1
            if not records:
                del self._records[location]
        return dropped


# ------------------------------------------------------------------------------- wire parsing


class _Malformed(ValueError):
    pass


def _peer_id(value: Value) -> PeerId:
    if type(value) is not str or not 0 < len(value) <= MAX_PEER_ID_LENGTH:
        raise _Malformed(f"a peer id is a string of 1-{MAX_PEER_ID_LENGTH} characters")
    return PeerId(value)


def _addrs(value: Value, peer: PeerId) -> list[str]:
    """The addresses of ``peer`` from a message: checked, those not ending in its
    ``/p2p/<peer id>`` ignored, duplicates dropped."""
    if type(value) is not list or len(value) > MAX_ADDRS:
        raise _Malformed(f"addresses are a list of at most {MAX_ADDRS}")
    suffix = f"/p2p/{peer}"
    kept: list[str] = []
    for addr in value:
        if type(addr) is not str or len(addr) > MAX_ADDR_LENGTH:
            raise _Malformed(f"an address is a string of at most {MAX_ADDR_LENGTH} characters")
        if addr.endswith(suffix) and addr not in kept:
            kept.append(addr)
    return kept


def _location(value: Value) -> bytes:
    if type(value) is not bytes or len(value) != LOCATION_SIZE:
        raise _Malformed(f"a target is {LOCATION_SIZE} bytes")
    return value


def _count(value: Value) -> int:
    if type(value) is not int or not 1 <= value <= MAX_PEERS:
        raise _Malformed(f"a count is an integer in 1..{MAX_PEERS}")
    return value


def _peer_list(value: Value) -> list[PeerInfo]:
    if type(value) is not list or len(value) > MAX_PEERS:
        raise _Malformed(f"a peer list has at most {MAX_PEERS} entries")
    peers: dict[PeerId, list[str]] = {}
    for item in value:
        if type(item) is not list or len(item) != 2:
            raise _Malformed("a peer list entry is [peer_id, [addrs]]")
        peer = _peer_id(item[0])
        peers.setdefault(peer, _addrs(item[1], peer))
    return list(peers.items())


def _kind(value: Value) -> Kind:
    if type(value) is int:
        with contextlib.suppress(ValueError):
            return Kind(value)
    raise _Malformed(f"unknown request kind {value!r}")


def _arity(args: list[Value], n: int, kind: Kind) -> list[Value]:
    if len(args) != n:
        raise _Malformed(f"{kind.name} has {n} arguments, not {len(args)}")
    return args


def _message(data: bytes) -> list[Value]:
    value = decode(data, max_size=MAX_MESSAGE)
    if type(value) is not list or not value:
        raise _Malformed("a message is a non-empty array")
    return value


# ------------------------------------------------------------------------------ the protocol


class _QueryFailed(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass
class KademliaStats:
    served: int = 0  # well-formed requests answered
    refused: int = 0  # malformed requests refused
    queries: int = 0  # requests sent
    failures: int = 0  # requests that timed out, were unreachable, refused or answered badly
    records_placed: int = 0  # provider records accepted by other peers


_WAITING, _ASKING, _ANSWERED, _FAILED = range(4)


@dataclass(slots=True)
class _Candidate:
    peer: PeerId
    distance: int
    state: int = _WAITING
    attempts: int = 0


class Kademlia(Routing):
    """One DHT (one namespace, i.e. one DNA) on one node. Use as an async context manager, or
    ``await start()`` … ``await close()``. The network must be started first."""

    def __init__(
        self,
        network: Network,
        namespace: str,
        *,
        k: int = 20,
        alpha: int = 3,
        request_timeout_s: float = 5.0,
        provider_ttl_s: float = 24 * 3600,
        clock: Callable[[], float] | None = None,
        refresh_interval_s: float | None = 600.0,
    ) -> None:
        if not 1 <= k <= MAX_PEERS:
            raise ValueError(f"k is in 1..{MAX_PEERS}")
        if not 1 <= alpha <= MAX_PEERS:
            raise ValueError(f"alpha is in 1..{MAX_PEERS}")
        if request_timeout_s <= 0 or provider_ttl_s <= 0:
            raise ValueError("timeouts and TTLs are positive")
        if refresh_interval_s is not None and refresh_interval_s <= 0:
            raise ValueError("the refresh interval is positive (or None for no refresh)")
        self.network = network
        self.namespace = namespace
        self.protocol = protocol_id(namespace)
        self.k = k
        self.alpha = alpha
        self.request_timeout_s = request_timeout_s
        self.provider_ttl_s = provider_ttl_s
        self.refresh_interval_s = refresh_interval_s
        self._clock = clock or time.monotonic
        self.peer_id = network.peer_id
        self.table = RoutingTable(self.peer_id, k, self._clock)
        self.providers = ProviderStore(self._clock)
        self.stats = KademliaStats()
        self._provided: dict[bytes, float] = {}  # location -> when last announced
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pinging: set[PeerId] = set()
        self._checking: set[int] = set()  # buckets whose least recently seen peer is pinged
        self._rng = random.Random()
        self._state = "new"

    async def __aenter__(self) -> Kademlia:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Kademlia {self.protocol} at {self.peer_id}: {len(self.table)} peers>"

    # ---------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Answer on the protocol, follow peer events, and join: ping the connected peers, then
        look up our own location."""
        if self._state == "closed":
            raise NetworkError("a closed Kademlia cannot be started again; make a new one")
        if self._state == "running":
            return
        self._state = "running"
        self.network.set_handler(self.protocol, self._handle)
        self._spawn(self._watch(self.network.peer_events()), "peer-events")
        if self.refresh_interval_s is not None:
            self._spawn(self._maintain(self.refresh_interval_s), "maintenance")
        await self.bootstrap()

    async def close(self) -> None:
        if self._state == "closed":
            return
        was_running = self._state == "running"
        self._state = "closed"
        if was_running:
            # the interface cannot remove a handler: leave one that refuses
            self.network.set_handler(self.protocol, _refuse_closed)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def bootstrap(self) -> None:
        """Ping the connected peers (those on this DHT join the table; at most
        :data:`MAX_PENDING_PINGS`), then look up our own location, which fills the buckets near
        us and tells the peers near us about us."""
        self._check_running()
        peers = [peer for peer in self.network.connected_peers() if peer not in self.table]
        peers = peers[:MAX_PENDING_PINGS]
        await asyncio.gather(*(self.ping(peer) for peer in peers))
        await self._lookup_nodes(self.table.location, self.k)

    async def refresh(self) -> None:
        """Refresh the routing table: a lookup of our own location, then of a random location
        in each bucket up to the deepest non-empty one (at most :data:`MAX_REFRESH_BUCKETS`)."""
        self._check_running()
        await self._lookup_nodes(self.table.location, self.k)
        deepest = self.table.deepest_bucket()
        if deepest is None:
            return
        targets = [
            random_location_in_bucket(self.table.location, index, self._rng)
            for index in range(min(deepest + 1, MAX_REFRESH_BUCKETS))
        ]
        await asyncio.gather(*(self._lookup_nodes(target, self.k) for target in targets))

    def _check_running(self) -> None:
        if self._state != "running":
            raise NetworkError(f"Kademlia on {self.protocol} is {self._state}, not running")

    def _spawn(self, job: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=f"kad {self.namespace} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, events: AsyncIterator[PeerEvent]) -> None:
        async for event in events:
            if event.kind is not PeerEventKind.CONNECTED:
                continue
            peer = event.peer
            if peer in self.table or peer in self._pinging:
                continue
            if len(self._pinging) >= MAX_PENDING_PINGS:
                log.debug("%s: too many pings in flight, not pinging %s", self.protocol, peer)
                continue
            self._pinging.add(peer)
            self._spawn(self._ping_connected(peer), f"ping {peer}")

    async def _ping_connected(self, peer: PeerId) -> None:
        try:
            await self._ping_quietly(peer)
        finally:
            self._pinging.discard(peer)

    async def _ping_quietly(self, peer: PeerId) -> bool:
        try:
            return await self.ping(peer)
        except NetworkError:  # closed meanwhile
            return False

    async def _maintain(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.providers.purge()
            try:
                await self.refresh()
                await self._republish()
            except NetworkError as exc:
                log.debug("%s: maintenance: %s", self.protocol, exc)
            except Exception:  # a bug must not stop the maintenance for good
                log.exception("%s: maintenance failed", self.protocol)

    async def _republish(self) -> None:
        now = self._clock()
        for location, when in list(self._provided.items()):
            if now - when >= self.provider_ttl_s / 2 and location in self._provided:
                self._provided[location] = now
                with contextlib.suppress(NetworkError):
                    await self._provide_location(location)

    # ---------------------------------------------------------------------------- the API

    async def ping(self, peer: PeerId) -> bool:
        """Whether ``peer`` answers on this DHT's protocol (if it does, it joins the table)."""
        self._check_running()
        try:
            await self._request(peer, Kind.PING, [], lambda results: _arity(results, 0, Kind.PING))
        except _QueryFailed:
            return False
        return True

    async def closest_peers(self, key: bytes, count: int) -> list[PeerId]:
        """Up to ``count`` peers of this DHT nearest ``key_location(key)``, nearest first; each
        answered during the lookup, so it was alive. This node is never among them."""
        self._check_running()
        _check_count(count)
        found = await self._lookup_nodes(key_location(key), max(count, self.k))
        return found[:count]

    async def provide(self, key: bytes) -> None:
        """Store a provider record for this node at the ``k`` peers nearest ``key`` (and here).
        Records last ``provider_ttl_s`` and are announced again by the maintenance task.
        :class:`NetworkError` if no other peer took the record."""
        self._check_running()
        location = key_location(key)
        self._provided[location] = self._clock()
        self.providers.add(location, self.peer_id, self._own_addrs(), self.provider_ttl_s)
        await self._provide_location(location)

    def forget(self, peer: PeerId) -> None:
        """``peer`` left this DHT for good (its agents departed): out of the routing table and
        of the provider records kept here, so lookups stop asking it and nobody is pointed to
        it from here. It comes back like any newcomer, by contacting a peer."""
        self.table.remove(peer)
        self.providers.remove_peer(peer)

    def stop_providing(self, key: bytes) -> None:
        """Stop announcing ``key``; the records at other peers expire on their own."""
        location = key_location(key)
        self._provided.pop(location, None)
        self.providers.remove(location, self.peer_id)

    async def find_providers(self, key: bytes, count: int) -> list[PeerId]:
        """Up to ``count`` providers of ``key``: those stored here first, then from an
        iterative lookup that stops as soon as ``count`` are known. Their addresses go to
        ``network.add_peer_addrs``. This node is included if it provides ``key``."""
        self._check_running()
        _check_count(count)
        location = key_location(key)
        found: dict[PeerId, list[str]] = dict(self.providers.get(location))
        if len(found) >= count:
            return list(found)[:count]
        width = max(count, self.k)

        def parse(results: list[Value]) -> tuple[list[PeerInfo], list[PeerInfo]]:
            providers, closer = _arity(results, 2, Kind.GET_PROVIDERS)
            return _peer_list(providers), _peer_list(closer)

        async def query(peer: PeerId) -> list[PeerInfo]:
            providers, closer = await self._request(
                peer, Kind.GET_PROVIDERS, [location, width], parse
            )
            for provider, addrs in providers:
                if provider not in found:
                    found[provider] = addrs
                    self._learn(provider, addrs)
            return closer

        await self._lookup(location, width, query, lambda: len(found) >= count)
        return list(found)[:count]

    # ----------------------------------------------------------------------- the lookups

    async def _lookup_nodes(self, target: bytes, width: int) -> list[PeerId]:
        async def query(peer: PeerId) -> list[PeerInfo]:
            return await self._request(
                peer,
                Kind.FIND_NODE,
                [target, width],
                lambda results: _peer_list(_arity(results, 1, Kind.FIND_NODE)[0]),
            )

        return await self._lookup(target, width, query, None)

    async def _lookup(
        self,
        target: bytes,
        width: int,
        query: Callable[[PeerId], Coroutine[Any, Any, list[PeerInfo]]],
        done: Callable[[], bool] | None,
    ) -> list[PeerId]:
        """Iterative lookup: keep ``alpha`` queries in flight to the nearest not yet asked among
        the ``width`` nearest live candidates, until those ``width`` have all answered (or
        ``done()``, or the query budget is spent). Returns the answered peers, nearest first."""
        t = int.from_bytes(target, "big")
        candidates: dict[PeerId, _Candidate] = {}

        def consider(peer: PeerId) -> None:
            if peer != self.peer_id and peer not in candidates:
                candidates[peer] = _Candidate(peer, int.from_bytes(peer_location(peer), "big") ^ t)

        for peer in self.table.closest(target, width):
            consider(peer)
        if not candidates:  # an empty table (alone, or every contact refused): try neighbours
            for peer in self.network.connected_peers()[: 4 * width]:
                consider(peer)
        budget = max(4 * width, 32)
        running: dict[asyncio.Task[list[PeerInfo]], _Candidate] = {}
        try:
            while done is None or not done():
                live = heapq.nsmallest(
                    width,
                    (c for c in candidates.values() if c.state != _FAILED),
                    key=lambda c: (c.distance, c.peer),
                )
                for candidate in live:
                    if len(running) >= self.alpha or budget <= 0:
                        break
                    if candidate.state == _WAITING:
                        candidate.state = _ASKING
                        candidate.attempts += 1
                        budget -= 1
                        running[asyncio.create_task(query(candidate.peer))] = candidate
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    candidate = running.pop(task)
                    try:
                        closer = task.result()
                    except _QueryFailed as exc:
                        again = exc.retry and candidate.attempts < MAX_ATTEMPTS
                        candidate.state = _WAITING if again else _FAILED
                        continue
                    candidate.state = _ANSWERED
                    for peer, addrs in closer:
                        if peer != self.peer_id:
                            self._learn(peer, addrs)
                            consider(peer)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        answered = [c for c in candidates.values() if c.state == _ANSWERED]
        answered.sort(key=lambda c: (c.distance, c.peer))
        return [c.peer for c in answered[:width]]

    async def _provide_location(self, location: bytes) -> None:
        peers = await self._lookup_nodes(location, self.k)
        if not peers:
            raise NetworkError(f"no peer on {self.protocol} to store the provider record")

        async def place(peer: PeerId) -> bool:
            try:
                await self._request(
                    peer,
                    Kind.ADD_PROVIDER,
                    [location],
                    lambda results: _arity(results, 0, Kind.ADD_PROVIDER),
                )
            except _QueryFailed:
                return False
            self.stats.records_placed += 1
            return True

        placed = await asyncio.gather(*(place(peer) for peer in peers))
        if not any(placed):
            raise NetworkError(f"none of {len(peers)} peers stored the provider record")

    def _learn(self, peer: PeerId, addrs: list[str]) -> None:
        if addrs and peer != self.peer_id:
            self.network.add_peer_addrs(peer, addrs)

    # ------------------------------------------------------------------------ the requests

    def _own_addrs(self) -> list[str]:
        suffix = f"/p2p/{self.peer_id}"
        addrs = [
            addr
            for addr in self.network.listen_addrs()
            if len(addr) <= MAX_ADDR_LENGTH and addr.endswith(suffix)
        ]
        return addrs[:MAX_ADDRS]

    async def _request(
        self, peer: PeerId, kind: Kind, args: list[Value], parse: Callable[[list[Value]], T]
    ) -> T:
        """Send one request; on success ``peer`` is marked seen and the parsed results returned.
        Every failure is :class:`_QueryFailed` (``retry`` for timeouts and unreachable peers)
        and is noted in the routing table."""
        self._check_running()
        payload = encode([int(kind), self._own_addrs(), *args])
        self.stats.queries += 1
        try:
            reply = await self.network.request(
                peer, self.protocol, payload, timeout=self.request_timeout_s
            )
        except (RequestTimeout, PeerUnreachable) as exc:
            self.stats.failures += 1
            self.table.failed(peer)
            raise _QueryFailed(f"{peer}: {exc}", retry=True) from exc
        except RequestRefused as exc:  # not on this DHT (or it refuses us)
            self.stats.failures += 1
            self.table.remove(peer)
            raise _QueryFailed(f"{peer} refused {kind.name}: {exc}", retry=False) from exc
        except NetworkError as exc:
            self.stats.failures += 1
            raise _QueryFailed(f"{peer}: {exc}", retry=False) from exc
        try:
            message = _message(reply)
            addrs = _addrs(message[0], peer)
            result = parse(message[1:])
        except (EncodingError, _Malformed) as exc:
            self.stats.failures += 1
            self.table.remove(peer)
            log.info("%s: malformed %s reply from %s: %s", self.protocol, kind.name, peer, exc)
            raise _QueryFailed(f"{peer}: malformed reply: {exc}", retry=False) from exc
        self._seen(peer, addrs)
        return result

    def _seen(self, peer: PeerId, addrs: list[str]) -> None:
        oldest = self.table.update(peer, addrs)
        if oldest is None or self._state != "running":
            return
        index = self.table.bucket_of(oldest)
        if index not in self._checking:
            self._checking.add(index)
            self._spawn(self._check_oldest(index, oldest), f"check {oldest}")

    async def _check_oldest(self, index: int, oldest: PeerId) -> None:
        """Ping the least recently seen peer of a full bucket; evict it if it does not answer."""
        try:
            if not await self._ping_quietly(oldest) and self._state == "running":
                self.table.remove(oldest)
        finally:
            self._checking.discard(index)

    async def _handle(self, peer: PeerId, payload: bytes) -> bytes:
        if self._state != "running":
            raise RequestRefused("this DHT is not running")
        try:
            _peer_id(peer)  # one we could not list in a reply is not let in
            message = _message(payload)
            kind = _kind(message[0])
            if len(message) < 2:
                raise _Malformed("a request carries the sender's addresses")
            addrs = _addrs(message[1], peer)
            args = message[2:]
            if kind is Kind.PING:
                _arity(args, 0, kind)
                target, count = b"", 0
            elif kind is Kind.ADD_PROVIDER:
                target, count = _location(_arity(args, 1, kind)[0]), 0
            else:
                _arity(args, 2, kind)
                target, count = _location(args[0]), _count(args[1])
        except (EncodingError, _Malformed) as exc:
            self.stats.refused += 1
            log.debug("%s: refused a malformed request from %s: %s", self.protocol, peer, exc)
            raise RequestRefused(f"malformed Kademlia request: {exc}") from None
        self.stats.served += 1
        self._seen(peer, addrs)
        results: list[Value] = []
        if kind is Kind.FIND_NODE:
            results = [self._peer_entries(target, count, peer)]
        elif kind is Kind.GET_PROVIDERS:
            providers = self.providers.get(target)[:count]
            results = [
                [[provider, provider_addrs] for provider, provider_addrs in providers],
                self._peer_entries(target, count, peer),
            ]
        elif kind is Kind.ADD_PROVIDER and not self.providers.add(
            target, peer, addrs, self.provider_ttl_s
        ):
            raise RequestRefused("the provider store is full")
        return encode([self._own_addrs(), *results])

    def _peer_entries(self, target: bytes, count: int, requester: PeerId) -> list[Value]:
        closest = self.table.closest(target, count, exclude=(requester,))
        return [[peer, self.table.addrs(peer)] for peer in closest]


def _check_count(count: int) -> None:
    if type(count) is not int or not 1 <= count <= MAX_PEERS:
        raise ValueError(f"count is in 1..{MAX_PEERS}")


async def _refuse_closed(peer: PeerId, payload: bytes) -> bytes:
    raise RequestRefused("this DHT is closed")
