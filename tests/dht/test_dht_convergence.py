"""The DHT workflows on the in-memory network: publishing reaches the authorities, gets find
records, and gossip repairs what a partition, loss or delay kept from them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dht_kit import FAST, Clock, Node, eventually, start_node

from ioe.engine.dht import authorities, publishable_ops
from ioe.engine.ops import OpType
from ioe.hashing import to_typed_bytes
from ioe.net.memory import MemoryHub, jitter
from ioe.store.dht import OpStatus
from ioe.zomes.profile.validation import PROFILE_LINK

pytestmark = pytest.mark.anyio
COUNT = 6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    made: list[Node] = []

    async def make(hub: MemoryHub, count: int = COUNT) -> list[Node]:
        clock = Clock()
        nodes = [await start_node(tmp_path, hub, i, clock) for i in range(count)]
        for node in nodes[1:]:
            await node.net.connect(nodes[0].net.listen_addrs()[0])
        await eventually(lambda: all(len(n.dht.members()) == count for n in nodes))
        made.extend(nodes)
        return nodes

    yield make
    for node in made:
        await node.close()


def fully_held(nodes: list[Node], author: Node) -> bool:
    """Every op of ``author``'s chain is held as valid by each of its R authorities."""
    by_agent = {n.cell.agent: n for n in nodes}
    for record in author.cell.query():
        for op in publishable_ops(record):
            for agent in authorities(op.basis(), by_agent, FAST.replication):
                if by_agent[agent].dht.store.op_status(op.hash) is not OpStatus.VALID:
                    return False
    return True


def set_profile(node: Node, name: str) -> object:
    action = node.cell.call(
        "profile", "set_profile", {"name": name, "zone": "au/nsw/newtown"}, now_us=node.dht.clock()
    )
    node.dht.notify_commit()
    return action


async def test_published_ops_reach_their_authorities_and_gets_find_them(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = await cluster(MemoryHub())
    author, reader = nodes[0], nodes[-1]
    action = set_profile(author, "Ann")
    await eventually(lambda: fully_held(nodes, author))
    links = await reader.dht.get_links(author.cell.agent, PROFILE_LINK)
    assert [link.target for link in links] == [action]
    record = await reader.dht.get_record(action)  # type: ignore[arg-type]
    assert record is not None and record.action_hash == action
    activity = await reader.dht.get_agent_activity(author.cell.agent)
    assert [a.action.seq for a in activity] == list(range(len(author.cell.query())))
    entry = await reader.dht.get_entry(record.action.entry_hash)  # type: ignore[arg-type]
    assert entry is not None and entry.hash() == record.action.entry_hash


async def test_a_partition_heals_into_convergence(cluster) -> None:  # type: ignore[no-untyped-def]
    hub = MemoryHub()
    nodes = await cluster(hub)
    hub.partition([[n.net for n in nodes[:3]], [n.net for n in nodes[3:]]])
    author = nodes[0]
    set_profile(author, "Bo")
    await asyncio.sleep(1.0)
    assert not fully_held(nodes, author) or all(
        set(authorities(op.basis(), {n.cell.agent for n in nodes}, 3))
        <= {n.cell.agent for n in nodes[:3]}
        for record in author.cell.query()
        for op in publishable_ops(record)
    )
    hub.heal()
    await eventually(lambda: fully_held(nodes, author), timeout=30)


async def test_loss_and_delay_still_converge(cluster) -> None:  # type: ignore[no-untyped-def]
    hub = MemoryHub(delay=jitter(0.001, 0.02), loss=0.2, seed=7)
    nodes = await cluster(hub)
    authors = nodes[:2]
    for i, author in enumerate(authors):
        set_profile(author, f"Cy{i}")
    await eventually(lambda: all(fully_held(nodes, a) for a in authors), timeout=40)


async def test_ops_are_done_once_held_though_another_authority_never_answers(
    tmp_path: Path,
) -> None:
    """One silent authority must not hold up the ops the others have already taken: they are
    marked done as their receipts come in, not at their next attempt after the round ends."""
    hub, clock = MemoryHub(), Clock()
    patient = dataclasses.replace(FAST, request_timeout_s=60.0)  # the silent send outlives the test
    author = await start_node(tmp_path, hub, 0, clock, config=patient)
    others = [await start_node(tmp_path, hub, i, clock) for i in range(1, 5)]
    nodes = [author, *others]
    try:
        for node in others:
            await node.net.connect(author.net.listen_addrs()[0])
        await eventually(lambda: all(len(n.dht.members()) == len(nodes) for n in nodes))
        await eventually(lambda: author.dht.store.queue_size()[0] == 0)  # genesis is out
        set_profile(author, "Ann")  # nothing is sent before the next await
        by_agent = {n.cell.agent: n for n in nodes}
        ops = [op for record in author.cell.query()[-2:] for op in publishable_ops(record)]
        held_by = [set(authorities(op.basis(), by_agent, FAST.replication)) for op in ops]
        # a silent authority of some ops but not of all: hashes depend on the clock, so choose
        silent = next(
            n
            for n in others
            if any(n.cell.agent in h for h in held_by)
            and not all(n.cell.agent in h for h in held_by)
        )
        hub.set_link(author.net, silent.net, delay=600.0)
        free = [op for op, h in zip(ops, held_by, strict=True) if silent.cell.agent not in h]
        assert free and len(free) < len(ops)
        _, done_before = author.dht.store.queue_size()
        await eventually(
            lambda: author.dht.store.queue_size()[1] >= done_before + len(free), timeout=15
        )
        assert author.dht.store.queue_size()[0] >= len(ops) - len(free)  # the rest still wait
    finally:
        for node in nodes:
            await node.close()


async def test_a_node_that_leaves_says_so_and_a_return_supersedes_it(tmp_path: Path) -> None:
    """A closing node signs infos with no addresses; its peers stop counting it (and pass the
    word on), tell their presence listener, and count it again when it announces anew."""
    hub, clock = MemoryHub(), Clock()
    nodes = [await start_node(tmp_path, hub, i, clock) for i in range(3)]
    first, second, leaver = nodes
    seen: list[tuple[object, bool]] = []
    first.dht.on_presence = lambda agent, present: seen.append((agent, present))
    try:
        await second.net.connect(first.net.listen_addrs()[0])
        await leaver.net.connect(second.net.listen_addrs()[0])  # not connected to ``first``
        await eventually(lambda: all(len(n.dht.members()) == 3 for n in nodes))
        assert (leaver.cell.agent, True) in seen
        seen.clear()
        await leaver.dht.depart()
        await eventually(lambda: leaver.cell.agent not in second.dht.members())
        await second.dht.exchange_agent_infos(first.net.peer_id)  # the word passes on
        await eventually(lambda: leaver.cell.agent not in first.dht.members())
        assert seen == [(leaver.cell.agent, False)]
        assert [i.agent for i in first.dht.store.agent_infos(clock()) if i.departed] == [
            leaver.cell.agent
        ]
        leaver.dht.announce()  # back again: a newer info with addresses
        await leaver.dht.exchange_agent_infos(second.net.peer_id)
        await second.dht.exchange_agent_infos(first.net.peer_id)
        await eventually(lambda: leaver.cell.agent in first.dht.members())
        assert seen[-1] == (leaver.cell.agent, True)
    finally:
        for node in nodes:
            await node.close()


async def test_a_record_known_only_by_its_action_is_fetched_with_its_entry(cluster) -> None:  # type: ignore[no-untyped-def]
    """Walking an author's chain caches its actions; a later get of one of its records must
    still bring the entry (from the record's authorities), not the bare action."""
    nodes = await cluster(MemoryHub())
    author, reader = nodes[0], nodes[-1]
    action = set_profile(author, "Ann")
    await eventually(lambda: fully_held(nodes, author))
    await reader.dht.get_agent_activity(author.cell.agent)
    entry_hash = author.cell.get(action).action.entry_hash  # type: ignore[arg-type, union-attr]
    # the reader knows the action from the author's activity, and nothing else of the record
    # (whatever it held as an authority or by gossip is dropped)
    with reader.db.transaction() as conn:
        conn.execute(
            "DELETE FROM dht_ops WHERE op_type IN (?, ?) AND basis IN (?, ?)",
            (
                int(OpType.STORE_RECORD),
                int(OpType.STORE_ENTRY),
                to_typed_bytes(action),  # type: ignore[arg-type]
                to_typed_bytes(entry_hash),  # type: ignore[arg-type]
            ),
        )
    known = reader.dht.store.get_record(action)  # type: ignore[arg-type]
    assert known is not None and known.entry is None
    record = await reader.dht.get_record(action)  # type: ignore[arg-type]
    assert record is not None and record.entry is not None
    assert record.entry.hash() == record.action.entry_hash
