"""Kademlia per DNA over the Network interface: keyspace maths, routing table, lookups, provider
records, namespaces kept apart, hostile input, loss, and one run over real libp2p sockets."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.encoding import encode
from ioe.hashing import DnaHash
from ioe.net.interface import NetworkError, PeerId, RequestRefused, Routing
from ioe.net.kademlia import (
    KEY_BITS,
    MAX_FAILURES,
    MAX_MESSAGE,
    MAX_PEERS,
    Kademlia,
    Kind,
    RoutingTable,
    bucket_index,
    distance,
    key_location,
    peer_location,
    protocol_id,
    random_location_in_bucket,
)
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.net.p2p import P2PNetwork

pytestmark = pytest.mark.anyio

NS_A = DnaHash.of(b"dna a").to_text()
NS_B = DnaHash.of(b"dna b").to_text()
locations = st.binary(min_size=32, max_size=32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def brute_force_closest(key: bytes, peers: Sequence[str], count: int) -> list[str]:
    target = key_location(key)
    return sorted(peers, key=lambda peer: distance(target, peer_location(peer)))[:count]


@dataclass
class Cluster:
    nets: list[MemoryNetwork] = field(default_factory=list)
    kads: dict[str, list[Kademlia | None]] = field(default_factory=dict)

    def kad(self, namespace: str, i: int) -> Kademlia:
        kad = self.kads[namespace][i]
        assert kad is not None
        return kad

    def members(self, namespace: str) -> list[PeerId]:
        return [kad.peer_id for kad in self.kads[namespace] if kad is not None]


@asynccontextmanager
async def cluster(
    n: int,
    *,
    topology: str = "line",
    hub: MemoryHub | None = None,
    namespaces: dict[str, range] | None = None,
    **options: Any,
) -> AsyncIterator[Cluster]:
    """``n`` nodes joined one at a time, each knowing only one other (the previous one in a
    line, node 0 in a star), each starting its DHTs right after connecting."""
    hub = hub or MemoryHub(seed=1)
    namespaces = namespaces if namespaces is not None else {NS_A: range(n)}
    options = {"refresh_interval_s": None, "request_timeout_s": 1.0, **options}
    result = Cluster(kads={namespace: [] for namespace in namespaces})
    async with AsyncExitStack() as stack:
        for i in range(n):
            net = await stack.enter_async_context(MemoryNetwork(hub))
            result.nets.append(net)
            if i > 0:
                known = result.nets[i - 1 if topology == "line" else 0]
                await net.connect(known.listen_addrs()[0])
            for namespace, members in namespaces.items():
                kad = None
                if i in members:
                    kad = await stack.enter_async_context(Kademlia(net, namespace, **options))
                result.kads[namespace].append(kad)
        yield result


# ---------------------------------------------------------------------------- keyspace maths


def common_prefix_bits(a: bytes, b: bytes) -> int:
    bits_a = "".join(f"{byte:08b}" for byte in a)
    bits_b = "".join(f"{byte:08b}" for byte in b)
    n = 0
    while n < len(bits_a) and bits_a[n] == bits_b[n]:
        n += 1
    return n


@settings(max_examples=300, deadline=None)
@given(a=locations, b=locations, c=locations)
def test_distance_and_bucket_index_properties(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, a) == 0
    assert distance(a, b) == distance(b, a)
    assert distance(a, b) ^ distance(b, c) == distance(a, c)
    assert bucket_index(a, b) == bucket_index(b, a) == common_prefix_bits(a, b)
    if a == b:
        assert bucket_index(a, b) == KEY_BITS
    else:
        cpl = bucket_index(a, b)
        assert 0 <= cpl < KEY_BITS
        assert 2 ** (KEY_BITS - 1 - cpl) <= distance(a, b) < 2 ** (KEY_BITS - cpl)
        # everything in a nearer bucket is nearer
        if bucket_index(a, c) > cpl:
            assert distance(a, c) < distance(a, b)


@settings(max_examples=200, deadline=None)
@given(own=locations, index=st.integers(0, KEY_BITS - 1), seed=st.integers(0, 2**32))
def test_random_location_lands_in_its_bucket(own: bytes, index: int, seed: int) -> None:
    location = random_location_in_bucket(own, index, random.Random(seed))
    assert len(location) == 32
    assert bucket_index(own, location) == index


@settings(max_examples=100, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=60, unique=True),
    k=st.integers(1, 6),
    target=locations,
    count=st.integers(1, MAX_PEERS),
)
def test_routing_table_buckets_and_closest(
    names: list[str], k: int, target: bytes, count: int
) -> None:
    table = RoutingTable(PeerId("me"), k)
    for name in names:
        oldest = table.update(PeerId(name), [])
        if name == "me":
            assert oldest is None and name not in table
        elif oldest is not None:  # the bucket was full: the newcomer waits as a replacement
            assert table.bucket_of(oldest) == table.bucket_of(name)
            assert table.bucket(table.bucket_of(name))[0] == oldest
            assert name in table.replacements(table.bucket_of(name))
    for index in range(KEY_BITS):
        assert len(table.bucket(index)) <= k
        assert all(table.bucket_of(peer) == index for peer in table.bucket(index))
    expected = sorted(
        table.peers(), key=lambda peer: (distance(target, peer_location(peer)), peer)
    )[:count]
    assert table.closest(target, count) == expected
    assert len(table) == len(set(table.peers()))


def peers_in_bucket(own: str, index: int, n: int, prefix: str = "p") -> list[PeerId]:
    own_location = peer_location(own)
    found = []
    for i in range(10_000):
        name = f"{prefix}{i}"
        if bucket_index(own_location, peer_location(name)) == index:
            found.append(PeerId(name))
            if len(found) == n:
                return found
    raise AssertionError("not enough names in that bucket")


def test_full_bucket_keeps_the_old_until_it_fails() -> None:
    table = RoutingTable(PeerId("me"), 2)
    p1, p2, p3, p4 = peers_in_bucket("me", 0, 4)
    assert table.update(p1, []) is None
    assert table.update(p2, []) is None
    assert table.update(p3, []) == p1  # full: ping the least recently seen
    assert table.bucket(0) == [p1, p2] and table.replacements(0) == [p3]
    assert table.update(p1, []) is None  # p1 answered the ping: it is the most recent now
    assert table.bucket(0) == [p2, p1]
    assert table.update(p4, []) == p2
    table.remove(p2)  # p2 did not answer: the newest replacement takes its place
    assert table.bucket(0) == [p1, p4] and table.replacements(0) == [p3]
    assert not table.failed(p1)  # a failure is forgiven…
    assert table.update(p1, []) is None  # …and forgotten when it answers again
    for _ in range(MAX_FAILURES - 1):
        assert not table.failed(p1)
    assert table.failed(p1)  # too many in a row: stale, and p3 is there to replace it
    assert table.bucket(0) == [p4, p3] and table.replacements(0) == []
    for _ in range(MAX_FAILURES):
        assert not table.failed(p3)  # stale, but kept: nobody to replace it
    assert table.stale(p3) and p3 in table and not table.stale(p4)


def test_parameters_are_checked() -> None:
    hub = MemoryHub()
    net = MemoryNetwork(hub)
    for bad in ["", "a/b", "x" * 129, "spaces are not allowed"]:
        with pytest.raises(ValueError):
            Kademlia(net, bad)
    with pytest.raises(ValueError):
        Kademlia(net, NS_A, k=MAX_PEERS + 1)
    with pytest.raises(ValueError):
        Kademlia(net, NS_A, alpha=0)
    assert protocol_id(NS_A) == f"/ioe/{NS_A}/kad/1.0.0"
    assert isinstance(Kademlia(net, NS_A), Routing)


# --------------------------------------------------------------------- lookups and providers


@pytest.mark.parametrize(
    ("topology", "n", "k"), [("line", 25, 20), ("star", 25, 20), ("line", 30, 4)]
)
async def test_closest_peers_are_the_truly_closest(topology: str, n: int, k: int) -> None:
    rng = random.Random(7)
    with anyio.fail_after(60):
        async with cluster(n, topology=topology, k=k) as c:
            everyone = c.members(NS_A)
            for trial in range(6):
                key = rng.randbytes(rng.randint(0, 40))
                asker = c.kad(NS_A, rng.randrange(n))
                count = [1, 3, k][trial % 3]
                others = [peer for peer in everyone if peer != asker.peer_id]
                got = await asker.closest_peers(key, count)
                assert got == brute_force_closest(key, others, count), (trial, asker.peer_id)


async def test_provide_at_one_end_find_at_the_other() -> None:
    with anyio.fail_after(30):
        async with cluster(25, k=8) as c:
            first, last = c.kad(NS_A, 0), c.kad(NS_A, 24)
            key = b"charging-station:42"
            assert await last.find_providers(key, 1) == []
            await first.provide(key)
            assert first.stats.records_placed >= 1
            before = last.stats.queries
            assert await last.find_providers(key, 1) == [first.peer_id]
            find_queries = last.stats.queries - before
            before = last.stats.queries
            await last.closest_peers(key, 8)
            assert find_queries < last.stats.queries - before  # it stopped at the first find
            assert await first.find_providers(key, 5) == [first.peer_id]  # from its own store
            # the finder can reach the provider directly (its address was learnt)
            assert await last.ping(first.peer_id)
            # a second provider: both found, from a node in the middle
            await c.kad(NS_A, 17).provide(key)
            found = await c.kad(NS_A, 12).find_providers(key, 5)
            assert sorted(found) == sorted([first.peer_id, c.nets[17].peer_id])
            assert await c.kad(NS_A, 12).find_providers(b"nobody provides this", 3) == []


async def test_provider_records_expire() -> None:
    now = [1000.0]
    with anyio.fail_after(30):
        async with cluster(10, clock=lambda: now[0], provider_ttl_s=60.0) as c:
            await c.kad(NS_A, 0).provide(b"k")
            assert await c.kad(NS_A, 9).find_providers(b"k", 1) == [c.nets[0].peer_id]
            now[0] += 61
            assert await c.kad(NS_A, 9).find_providers(b"k", 1) == []
            await c.kad(NS_A, 0).provide(b"k")  # announced again
            assert await c.kad(NS_A, 9).find_providers(b"k", 1) == [c.nets[0].peer_id]


async def test_maintenance_refreshes_and_republishes() -> None:
    now = [1000.0]
    with anyio.fail_after(30):
        async with cluster(
            10, clock=lambda: now[0], provider_ttl_s=60.0, refresh_interval_s=0.05
        ) as c:
            provider = c.kad(NS_A, 0)
            await provider.provide(b"k")
            placed = provider.stats.records_placed
            now[0] += 31  # past half the TTL: the next maintenance tick announces it again
            for _ in range(200):
                if provider.stats.records_placed > placed:
                    break
                await anyio.sleep(0.01)
            assert provider.stats.records_placed > placed
            now[0] += 31  # the first records have expired, the new ones have not
            assert await c.kad(NS_A, 9).find_providers(b"k", 1) == [provider.peer_id]
            provider.stop_providing(b"k")
            now[0] += 61
            assert await c.kad(NS_A, 9).find_providers(b"k", 1) == []


async def test_a_lone_node_cannot_provide() -> None:
    with anyio.fail_after(10):
        async with cluster(1) as c:
            alone = c.kad(NS_A, 0)
            with pytest.raises(NetworkError):
                await alone.provide(b"k")
            assert await alone.closest_peers(b"k", 3) == []
            assert await alone.find_providers(b"k", 1) == [alone.peer_id]
            alone.stop_providing(b"k")
            assert await alone.find_providers(b"k", 1) == []
            with pytest.raises(ValueError):
                await alone.closest_peers(b"k", 0)


async def test_ping_before_evicting_the_least_recently_seen() -> None:
    hub = MemoryHub(seed=3)
    own = PeerId("owner")
    first, second, newcomer, later = peers_in_bucket(own, 0, 4, prefix="peer-")
    with anyio.fail_after(20):
        async with AsyncExitStack() as stack:
            owner_net = await stack.enter_async_context(MemoryNetwork(hub, own))
            owner = await stack.enter_async_context(
                Kademlia(owner_net, NS_A, k=2, request_timeout_s=0.3, refresh_interval_s=None)
            )
            kads = {}
            for name in [first, second, newcomer, later]:
                net = await stack.enter_async_context(MemoryNetwork(hub, name))
                net.add_peer_addrs(own, owner_net.listen_addrs())
                kads[name] = await stack.enter_async_context(
                    Kademlia(net, NS_A, k=2, refresh_interval_s=None)
                )
            table = owner.table

            async def settle(predicate: Callable[[], bool]) -> None:
                for _ in range(200):
                    if predicate():
                        return
                    await anyio.sleep(0.01)

            assert await kads[first].ping(own)
            assert await kads[second].ping(own)
            assert table.bucket(0) == [first, second]
            # full bucket: the newcomer waits while the least recently seen (first) is pinged;
            # first answers, so it stays (and becomes the most recently seen)
            assert await kads[newcomer].ping(own)
            await settle(lambda: table.bucket(0) == [second, first])
            assert table.bucket(0) == [second, first]
            assert newcomer in table.replacements(0)
            # second is now the least recently seen, and stops answering on this DHT
            await kads[second].close()
            assert await kads[later].ping(own)
            await settle(lambda: second not in table)
            assert second not in table
            assert table.bucket(0) == [first, later]  # the newest replacement moved in
            assert table.replacements(0) == [newcomer]


# ------------------------------------------------------------------------------- namespaces


async def test_two_namespaces_on_the_same_nodes_stay_separate() -> None:
    n = 16
    b_members = range(8)  # every node runs A; the first 8 also run B
    with anyio.fail_after(30):
        async with cluster(n, namespaces={NS_A: range(n), NS_B: b_members}) as c:
            assert c.kad(NS_A, 0).protocol != c.kad(NS_B, 0).protocol
            served_b = [c.kad(NS_B, i).stats.served for i in b_members]
            key = b"meter:7"
            await c.kad(NS_A, 3).provide(key)
            assert await c.kad(NS_A, 15).find_providers(key, 1) == [c.nets[3].peer_id]
            for i in range(n):
                await c.kad(NS_A, i).closest_peers(key, 5)
            # none of A's traffic reached B's handlers or tables
            assert [c.kad(NS_B, i).stats.served for i in b_members] == served_b
            b_peers = set(c.members(NS_B))
            for i in b_members:
                assert set(c.kad(NS_B, i).table.peers()) <= b_peers
                assert len(c.kad(NS_B, i).providers) == 0
            # node 7 is connected to node 8 (A only), which never entered its B table
            assert c.nets[8].peer_id in c.nets[7].connected_peers()
            assert c.nets[8].peer_id in c.kad(NS_A, 7).table
            # the provider in A is not one in B; B's lookups see B's members only
            assert await c.kad(NS_B, 6).find_providers(key, 1) == []
            asker = c.kad(NS_B, 0)
            others = [peer for peer in b_peers if peer != asker.peer_id]
            assert await asker.closest_peers(key, 3) == brute_force_closest(key, others, 3)


# ---------------------------------------------------------------------------- hostile input


def bad_requests() -> list[bytes]:
    target = bytes(32)
    return [
        b"",
        b"\xff",
        os.urandom(64),
        encode([]),
        encode({"kind": 0}),
        encode([99, []]),
        encode([True, []]),
        encode([-1, []]),
        encode([int(Kind.PING)]),
        encode([int(Kind.PING), "not a list"]),
        encode([int(Kind.PING), [], "extra"]),
        encode([int(Kind.PING), ["x" * 300]]),
        encode([int(Kind.PING), [1, 2]]),
        encode([int(Kind.PING), ["/memory/1/p2p/a"] * 9]),
        encode([int(Kind.FIND_NODE), [], b"short", 3]),
        encode([int(Kind.FIND_NODE), [], target, 0]),
        encode([int(Kind.FIND_NODE), [], target, MAX_PEERS + 1]),
        encode([int(Kind.FIND_NODE), [], target, True]),
        encode([int(Kind.FIND_NODE), [], target]),
        encode([int(Kind.ADD_PROVIDER), [], target, 1]),
        encode([int(Kind.ADD_PROVIDER), [], "target"]),
        encode([int(Kind.GET_PROVIDERS), [], target, 2**40]),
        b"\x82\x18\x00\x80",  # [0, []] with a long-form integer: not canonical
        encode([int(Kind.PING), []]) + b"\x00",  # trailing bytes
        b"\x81" * 200 + b"\x80",  # nested too deep
        encode([int(Kind.PING), [], b"x" * MAX_MESSAGE]),  # over the size limit
    ]


async def test_malformed_requests_are_refused_and_the_node_keeps_working() -> None:
    with anyio.fail_after(30):
        async with cluster(8) as c:
            victim = c.kad(NS_A, 3)
            hub = c.nets[0].hub
            async with MemoryNetwork(hub, "attacker") as attacker:
                await attacker.connect(c.nets[3].listen_addrs()[0])
                for payload in bad_requests():
                    with pytest.raises(RequestRefused):
                        await attacker.request(victim.peer_id, victim.protocol, payload, timeout=5)
                assert victim.stats.refused == len(bad_requests())
                assert "attacker" not in victim.table
                # still serving, and still right
                key = b"after the attack"
                others = [peer for peer in c.members(NS_A) if peer != victim.peer_id]
                assert await victim.closest_peers(key, 3) == brute_force_closest(key, others, 3)
                assert await c.kad(NS_A, 0).ping(victim.peer_id)
                # a well-formed request from the same peer is answered
                reply = await attacker.request(
                    victim.peer_id, victim.protocol, encode([int(Kind.PING), []]), timeout=5
                )
                assert reply == encode([victim.network.listen_addrs()])


async def test_a_peer_with_malformed_replies_is_dropped() -> None:
    with anyio.fail_after(30):
        async with cluster(8) as c:
            hub = c.nets[0].hub
            async with MemoryNetwork(hub, "liar") as liar:

                async def lie(peer: PeerId, payload: bytes) -> bytes:
                    if payload.startswith(b"\x82\x00"):  # [0, addrs]: a PING
                        return encode([liar.listen_addrs()])  # a proper PONG
                    return encode([[], [["z" * 500, []]]])  # an over-long peer id

                liar.set_handler(protocol_id(NS_A), lie)
                await liar.connect(c.nets[0].listen_addrs()[0])
                asker = c.kad(NS_A, 0)
                for _ in range(100):
                    if "liar" in asker.table:
                        break
                    await anyio.sleep(0.01)
                assert "liar" in asker.table  # it answered the ping on connect
                key = b"whatever"
                others = [peer for peer in c.members(NS_A) if peer != asker.peer_id]
                assert await asker.closest_peers(key, 5) == brute_force_closest(key, others, 5)
                assert "liar" not in asker.table


# ------------------------------------------------------------------------------------- loss


async def test_providers_are_found_despite_loss() -> None:
    hub = MemoryHub(loss=0.1, seed=5)  # a request or its reply is lost 19% of the time
    with anyio.fail_after(60):
        async with cluster(20, hub=hub, k=8, request_timeout_s=0.1) as c:
            await c.kad(NS_A, 0).provide(b"flex-offer")
            for i in (19, 16, 13, 10):
                found = await c.kad(NS_A, i).find_providers(b"flex-offer", 1)
                assert found == [c.nets[0].peer_id], i
            assert hub.stats.lost > 0


# ------------------------------------------------------------------------------ real libp2p


async def test_over_libp2p() -> None:
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            nets = [await stack.enter_async_context(P2PNetwork(os.urandom(32))) for _ in range(4)]
            kads = []
            for i, net in enumerate(nets):
                if i > 0:
                    await net.connect(nets[i - 1].listen_addrs()[0])
                kads.append(
                    await stack.enter_async_context(
                        Kademlia(net, NS_A, request_timeout_s=3.0, refresh_interval_s=None)
                    )
                )
            everyone = [net.peer_id for net in nets]
            key = b"libp2p key"
            others = everyone[:3]
            assert await kads[3].closest_peers(key, 3) == brute_force_closest(key, others, 3)
            await kads[0].provide(key)
            assert await kads[3].find_providers(key, 1) == [nets[0].peer_id]
