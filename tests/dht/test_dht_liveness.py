"""Liveness: a member node that vanishes without a word is reported absent within the bound,
present again when it comes back; one that answers is never reported absent. The tracker's
bound is checked with simulated time; the DHT-level tests run on the in-memory network."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from dht_kit import FAST, Clock, eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dht.liveness import PING, LivenessTracker
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.hashing import AgentPubKey
from ioe.net.interface import PeerId, RequestRefused
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.zomes import profile

pytestmark = pytest.mark.anyio

# Liveness does not depend on who may join, so these nodes use a DNA without a membrane rule.
DNA = DnaDef("liveness-test", (profile.integrity,), (profile.coordinator,))
LIVE = dataclasses.replace(FAST, liveness_timeout_s=0.6, request_timeout_s=0.3)
P = PeerId("peer")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------- the pure tracker


def run_silent(timeout: float, tick: float, phase: float, answers: bool) -> float | None:
    """Simulate a watched peer heard last at 0 whose probes answer (or fail) at once, ticking
    every ``tick`` from ``phase``; the time it is first reported absent (None: never, within
    20 timeouts). Bounded: at most a few hundred ticks."""
    tracker = LivenessTracker(timeout)
    tracker.watch({P}, 0.0)
    now = phase
    for _ in range(int(20 * timeout / tick) + 2):
        for peer in tracker.due(now, limit=4):
            tracker.probe_done(peer, answers, now)
        if tracker.expire(now):
            return now
        now += tick
    return None


@given(
    timeout=st.floats(min_value=0.1, max_value=100.0),
    phase=st.floats(min_value=0.0, max_value=1.0),
)
@settings(max_examples=200, deadline=None)
def test_a_silent_peer_is_reported_absent_within_one_and_a_half_timeouts(
    timeout: float, phase: float
) -> None:
    tick = timeout / 6
    gone_at = run_silent(timeout, tick, phase * tick, answers=False)
    assert gone_at is not None
    assert timeout <= gone_at <= 1.5 * timeout


@given(
    timeout=st.floats(min_value=0.1, max_value=100.0),
    phase=st.floats(min_value=0.0, max_value=1.0),
)
@settings(max_examples=200, deadline=None)
def test_a_peer_that_answers_is_never_reported_absent(timeout: float, phase: float) -> None:
    tick = timeout / 6
    assert run_silent(timeout, tick, phase * tick, answers=True) is None


@given(
    events=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5.0),  # time step
            st.sampled_from(["heard", "probe-ok", "probe-fail", "tick"]),
            st.integers(min_value=0, max_value=5),  # which peer
        ),
        max_size=60,
    ),
    limit=st.integers(min_value=1, max_value=4),
)
@settings(max_examples=300, deadline=None)
def test_tracker_invariants(events: list[tuple[float, str, int]], limit: int) -> None:
    """Whatever happens: probes in flight never exceed the limit, nobody heard from within the
    timeout is absent, nobody is judged while probed, and an absent peer becomes present the
    moment it is heard."""
    timeout = 3.0
    tracker = LivenessTracker(timeout)
    peers = [PeerId(f"p{i}") for i in range(6)]
    now = 0.0
    tracker.watch(set(peers), now)
    heard_at = dict.fromkeys(peers, now)
    in_flight: set[PeerId] = set()
    for step, kind, index in events:
        now += step
        peer = peers[index]
        if kind == "heard":
            tracker.heard(peer, now)
            heard_at[peer] = now
            assert not tracker.is_absent(peer)
        elif kind.startswith("probe") and peer in in_flight:
            in_flight.discard(peer)
            ok = kind == "probe-ok"
            tracker.probe_done(peer, ok, now)
            if ok:
                heard_at[peer] = now
                assert not tracker.is_absent(peer)
        else:
            started = tracker.due(now, limit)
            assert not set(started) & in_flight
            in_flight.update(started)
            assert len(in_flight) <= limit
            assert not set(tracker.expire(now)) & in_flight  # never judged mid-probe
        for p in tracker.absent():
            assert now - heard_at[p] >= timeout


def test_watching_a_new_peer_gives_it_a_full_timeout_and_unwatched_ones_are_forgotten() -> None:
    tracker = LivenessTracker(1.0)
    tracker.watch({P}, 0.0)
    tracker.probe_done(tracker.due(0.4, 1)[0], False, 0.4)
    assert tracker.expire(0.9) == []
    assert tracker.expire(1.0) == [P]
    assert tracker.absent() == {P}
    tracker.watch(set(), 1.1)
    assert tracker.absent() == set() and tracker.watched() == set()
    assert tracker.heard(P, 1.2) is False  # not watched: nothing to report
    with pytest.raises(ValueError, match="positive"):
        LivenessTracker(0)


def test_an_absent_peer_answering_a_probe_is_back() -> None:
    tracker = LivenessTracker(1.0)
    tracker.watch({P}, 0.0)
    assert tracker.due(0.2, 1) == []  # not silent long enough to probe
    assert tracker.due(0.4, 1) == [P]
    assert tracker.due(0.8, 1) == []  # one probe in flight at a time
    assert tracker.expire(2.0) == []  # in flight: not judged yet
    assert tracker.probe_done(P, False, 2.0) is False
    assert tracker.expire(2.0) == [P]
    assert tracker.expire(2.5) == []  # reported once
    assert tracker.due(2.5, 1) == [P]
    assert tracker.probe_done(P, True, 2.6) is True
    assert not tracker.is_absent(P)


# ------------------------------------------------------------------- the DHT, in memory


@dataclasses.dataclass
class LiveNode:
    index: int
    cell: Cell
    net: MemoryNetwork
    dht: DnaNetwork
    db: SqliteDatabase
    seen: list[tuple[AgentPubKey, bool]]

    @property
    def agent(self) -> AgentPubKey:
        return self.cell.agent

    async def vanish(self) -> None:
        """Stop without a word (no departure), as a crash or an unplugged device would."""
        await self.dht.close()
        await self.net.close()

    async def close(self) -> None:
        await self.dht.close()
        await self.net.close()
        self.db.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    made: list[LiveNode] = []
    clock = Clock()

    async def start(hub: MemoryHub, index: int, config: DhtConfig = LIVE) -> LiveNode:
        keys = KeyPair(bytes([index + 1]) * 32)
        path = tmp_path / f"n{index}.sqlite"
        old = [n for n in made if n.index == index]
        db = old[0].db if old else SqliteDatabase.open(path, dnas=[DNA])
        cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
        if cell.store.head() is None:
            cell.genesis(None, now_us=clock())
        net = MemoryNetwork(hub, f"node-{index}")
        await net.start()
        dht = DnaNetwork(DNA, db, net, clock=clock, config=config)
        dht.add_cell(cell)
        seen: list[tuple[AgentPubKey, bool]] = []
        dht.on_presence = lambda agent, present: seen.append((agent, present))
        await dht.start()
        node = LiveNode(index, cell, net, dht, db, seen)
        made[:] = [n for n in made if n.index != index] + [node]
        return node

    async def make(hub: MemoryHub, count: int, config: DhtConfig = LIVE) -> list[LiveNode]:
        nodes = [await start(hub, i, config) for i in range(count)]
        for node in nodes[1:]:
            await node.net.connect(nodes[0].net.listen_addrs()[0])
        await eventually(lambda: all(len(n.dht.members()) == count for n in nodes))
        return nodes

    make.restart = start  # type: ignore[attr-defined]
    yield make
    for node in made:
        await node.close()


async def test_a_vanished_node_is_absent_then_present_again_and_a_live_one_never_absent(
    cluster: Any,
) -> None:
    hub = MemoryHub()
    watcher, live, gone = await cluster(hub, 3)
    await eventually(lambda: {(live.agent, True), (gone.agent, True)} <= set(watcher.seen))
    watcher.seen.clear()
    await gone.vanish()
    await eventually(lambda: (gone.agent, False) in watcher.seen, what="never reported absent")
    assert not watcher.dht.present(gone.agent)
    assert gone.agent in watcher.dht.members()  # its own signed word still stands
    assert [i for i in watcher.dht.store.agent_infos(0) if i.departed] == []  # none forged
    # a few more timeouts: the live node keeps answering, the gone one is reported once
    await asyncio.sleep(LIVE.liveness_timeout_s * 3)
    assert watcher.seen == [(gone.agent, False)]
    assert watcher.dht.present(live.agent)
    assert watcher.dht.liveness.probes_sent > 0
    back = await cluster.restart(hub, gone.index)
    await back.net.connect(live.net.listen_addrs()[0])
    await eventually(lambda: watcher.seen[-1:] == [(gone.agent, True)], what="never back")
    assert watcher.dht.present(gone.agent)
    assert watcher.seen == [(gone.agent, False), (gone.agent, True)]
    assert watcher.dht.last_seen_us(gone.agent) is not None


async def test_a_partitioned_node_is_absent_until_the_partition_heals(cluster: Any) -> None:
    hub = MemoryHub()
    a, b, c = await cluster(hub, 3)
    await eventually(lambda: (c.agent, True) in a.seen)
    a.seen.clear()
    hub.partition([[a.net, b.net], [c.net]])
    await eventually(lambda: (c.agent, False) in a.seen)
    await eventually(lambda: (a.agent, False) in c.seen)  # each side's own view
    assert (b.agent, False) not in a.seen
    hub.heal()
    await eventually(lambda: a.seen[-1:] == [(c.agent, True)])
    assert a.seen == [(c.agent, False), (c.agent, True)]


async def test_an_owner_watches_its_devices_even_far_away(cluster: Any) -> None:
    """With no neighbours watched, only explicitly watched agents' nodes are probed: the
    watched one is reported absent, the unwatched one is not (its info is still valid)."""
    config = dataclasses.replace(LIVE, liveness_neighbours=0)
    owner, device, stranger = await cluster(MemoryHub(), 3, config)
    owner.dht.watch({device.agent})
    await device.vanish()
    await stranger.vanish()
    await eventually(lambda: (device.agent, False) in owner.seen)
    await asyncio.sleep(config.liveness_timeout_s * 3)
    assert (stranger.agent, False) not in owner.seen
    assert owner.dht.present(stranger.agent) and not owner.dht.present(device.agent)


async def test_ping_answers_members_only(cluster: Any) -> None:
    hub = MemoryHub()
    a, _ = await cluster(hub, 2)
    outsider = MemoryNetwork(hub, "outsider")
    await outsider.start()
    try:
        await outsider.connect(a.net.listen_addrs()[0])
        with pytest.raises(RequestRefused, match="not a member"):
            await outsider.request(a.net.peer_id, a.dht.protocol_ping, PING, timeout=2)
    finally:
        await outsider.close()


def test_default_bound_is_documented() -> None:
    assert DhtConfig().liveness_timeout_s == 30.0
    assert math.isclose(LivenessTracker(30.0).probe_interval_s, 10.0)
