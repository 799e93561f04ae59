"""Warrants and blocking in the DHT workflows, on the in-memory network: a fork is found by the
author's activity authorities and everyone blocks the forker; a false warrant blocks its signer;
garbage blocks nobody; late joiners learn warrants by gossip; blocks survive a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dht_kit import DNA, FAST, Clock, Node, eventually, start_node

from ioe.crypto.keys import KeyPair
from ioe.dht.service import DnaNetwork
from ioe.dnas import core_dna
from ioe.engine.dht import DhtOp, publishable_ops
from ioe.engine.ops import OpType
from ioe.engine.records import InitZomesComplete, Record, SignedAction
from ioe.engine.warrants import MAX_WARRANT_BYTES, Warrant, WarrantKind
from ioe.net.interface import PeerUnreachable, RequestRefused
from ioe.net.memory import MemoryHub
from ioe.store.dht import blocked_agents
from ioe.testing.membership import membrane_proof_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Make = Callable[..., object]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[Node] = []
    clock = Clock()

    async def make(hub: MemoryHub, count: int, first: int = 0) -> list[Node]:
        nodes = [
            await start_node(tmp_path, hub, i, clock, f"node-{i}")
            for i in range(first, first + count)
        ]
        made.extend(nodes)
        return nodes

    yield make
    for node in made:
        await node.close()


async def join(nodes: list[Node], via: Node) -> None:
    for node in nodes:
        if node is not via:
            await node.net.connect(via.net.listen_addrs()[0])


async def started(make: Make, count: int) -> list[Node]:
    nodes: list[Node] = await make(MemoryHub(), count)  # type: ignore[misc]
    await join(nodes, nodes[0])
    await eventually(lambda: all(len(n.dht.members()) == count for n in nodes))
    return nodes


def fork(node: Node) -> SignedAction:
    """A second action at the head's sequence number (same previous action), queued for
    publishing as if the chain had it: what a cheating conductor would do."""
    head = node.cell.query()[-1]
    alt = dataclasses.replace(head.action, timestamp=head.action.timestamp + 1)
    signed = SignedAction.sign(alt, node.cell.keys)
    node.dht.store.enqueue(publishable_ops(Record(signed, head.entry)), node.dht.clock())
    node.dht.notify_commit()
    return signed


async def test_a_forker_is_warranted_and_blocked_by_every_other_node(cluster: Make) -> None:
    nodes = await started(cluster, 5)
    forker, honest = nodes[2], [n for n in nodes if n is not nodes[2]]
    fork(forker)
    agent = forker.cell.agent
    await eventually(lambda: all(n.dht.is_blocked(agent) for n in honest))
    for node in honest:
        assert agent not in node.dht.members()
        assert node.dht.blocked_peer(forker.net.peer_id)
        (blocked,) = blocked_agents(node.db)
        assert blocked.agent == agent and blocked.reason.startswith("fork: ")
        assert await node.dht.get_agent_activity(agent) == []
        assert node.dht.store.warrant_counts()[0] >= 1
    assert sum(n.dht.stats.warrants_signed for n in nodes) >= 1
    # The forker's requests are refused and its connections dropped.
    # (refused, or hung up on as soon as its redial connects)
    with pytest.raises((RequestRefused, PeerUnreachable)):
        await forker.net.request(
            honest[0].net.peer_id, honest[0].dht.protocol_get, b"\xa0", timeout=2
        )
    await eventually(lambda: honest[0].net.peer_id not in forker.net.connected_peers())
    assert not forker.dht.is_blocked(agent)  # a node never blocks its own agents


async def test_an_invalid_op_gets_its_author_blocked(cluster: Make) -> None:
    nodes = await started(cluster, 4)
    cheat = nodes[1]
    head = cheat.cell.query()[-1].signed_action
    bad = InitZomesComplete(cheat.cell.agent, head.action.timestamp + 5, 3, head.action.prev)
    signed = SignedAction.sign(bad, cheat.cell.keys)  # seq 3 again, after record #2: a fork,
    wrong = dataclasses.replace(bad, seq=7, timestamp=bad.timestamp + 1)  # and an invalid one
    ops = [DhtOp(OpType.REGISTER_AGENT_ACTIVITY, SignedAction.sign(wrong, cheat.cell.keys))]
    cheat.dht.store.enqueue(ops, cheat.dht.clock())
    cheat.dht.notify_commit()
    others = [n for n in nodes if n is not cheat]
    await eventually(lambda: all(n.dht.is_blocked(cheat.cell.agent) for n in others))
    reasons = {blocked_agents(n.db)[0].reason for n in others}
    assert all(r.startswith("invalid op: ") for r in reasons), reasons
    assert signed.signature_valid()


async def test_a_false_warrant_blocks_its_signer_and_not_the_accused(cluster: Make) -> None:
    nodes = await started(cluster, 4)
    liar, victim = nodes[3], nodes[0]
    action = victim.cell.query()[-1].signed_action
    same = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, action)
    lie = Warrant.sign(
        liar.cell.keys,
        kind=WarrantKind.FORK,
        dna_hash=DNA.hash,
        author=victim.cell.agent,
        evidence=(same, same),
        reason="forked (not really)",
        now_us=liar.dht.clock(),
    )
    others = nodes[:3]
    # Each receiver hangs up on the liar once it has judged the warrant (and passes it on), so
    # the replies may be lost: what counts is what the receivers did.
    await asyncio.gather(
        *(
            liar.net.request(n.net.peer_id, liar.dht.protocol_warrant, lie.to_bytes(), timeout=5)
            for n in others
        ),
        return_exceptions=True,
    )
    await eventually(lambda: all(n.dht.is_blocked(liar.cell.agent) for n in others))
    for node in others:
        assert node.dht.is_blocked(liar.cell.agent)
        assert not node.dht.is_blocked(victim.cell.agent)
        (blocked,) = blocked_agents(node.db)
        assert blocked.reason == "false fork warrant: the same action twice is not a fork"
        assert blocked.blamed_by == liar.cell.agent
        assert node.dht.store.warrant_counts() == (0, 1)


async def test_garbled_oversized_and_unattributable_warrants_block_nobody(cluster: Make) -> None:
    nodes = await started(cluster, 3)
    sender, receiver = nodes[0], nodes[1]
    action = nodes[2].cell.query()[-1].signed_action
    alt = SignedAction.sign(
        dataclasses.replace(action.action, timestamp=action.action.timestamp + 1),
        nodes[2].cell.keys,
    )
    true = Warrant.sign(
        sender.cell.keys,
        kind=WarrantKind.FORK,
        dna_hash=DNA.hash,
        author=nodes[2].cell.agent,
        evidence=(
            DhtOp(OpType.REGISTER_AGENT_ACTIVITY, action),
            DhtOp(OpType.REGISTER_AGENT_ACTIVITY, alt),
        ),
        reason="fork",
        now_us=sender.dht.clock(),
    )
    data = true.to_bytes()
    bad_signature = dataclasses.replace(true, signature=bytes(64)).to_bytes()
    other_dna = Warrant.sign(
        sender.cell.keys,
        kind=WarrantKind.FORK,
        dna_hash=core_dna(network_seed="elsewhere").hash,
        author=nodes[2].cell.agent,
        evidence=true.evidence,
        reason="fork",
        now_us=sender.dht.clock(),
    ).to_bytes()
    for payload in (
        b"",
        b"garbage",
        b"\x00" * (MAX_WARRANT_BYTES + 1),
        data[:-3],
        data + b"\x00",
        bad_signature,
        other_dna,
    ):
        with pytest.raises(RequestRefused):
            await sender.net.request(
                receiver.net.peer_id, sender.dht.protocol_warrant, payload, timeout=5
            )
    assert blocked_agents(receiver.db) == []
    assert receiver.dht.stats.warrants_refused == 7
    # The genuine warrant still works afterwards.
    answer = await sender.net.request(
        receiver.net.peer_id, sender.dht.protocol_warrant, data, timeout=5
    )
    assert b"upheld" in answer
    assert receiver.dht.is_blocked(nodes[2].cell.agent)


async def test_late_joiners_learn_warrants_by_gossip_and_blocks_survive_restart(
    cluster: Make, tmp_path: Path
) -> None:
    hub = MemoryHub()
    nodes: list[Node] = await cluster(hub, 4)  # type: ignore[assignment]
    await join(nodes, nodes[0])
    await eventually(lambda: all(len(n.dht.members()) == 4 for n in nodes))
    forker = nodes[3]
    fork(forker)
    await eventually(lambda: all(n.dht.is_blocked(forker.cell.agent) for n in nodes[:3]))
    (late,) = await cluster(hub, 1, first=4)  # type: ignore[misc]
    await late.net.connect(nodes[0].net.listen_addrs()[0])
    await eventually(lambda: late.dht.is_blocked(forker.cell.agent), timeout=30)
    assert late.dht.stats.warrants_upheld >= 1

    # Restart one honest node's DHT on the same database: the block is still there.
    node = nodes[1]
    await node.dht.close()
    again = DnaNetwork(DNA, node.db, node.net, clock=node.dht.clock, config=FAST)
    again.add_cell(node.cell, membrane_proof_for(node.cell.keys))
    assert again.is_blocked(forker.cell.agent)
    assert again.blocked_peer(forker.net.peer_id)
    node.dht = again
    await again.start()


async def test_a_warrant_signed_by_a_non_member_is_dropped_unjudged(cluster: Make) -> None:
    """Anyone can mint keys: a false warrant from a key that is not a member blocks nobody and
    is neither kept nor passed on (else one peer could fill every node with junk)."""
    nodes = await started(cluster, 3)
    sender, receiver, victim = nodes
    stranger = KeyPair(b"\x77" * 32)
    action = victim.cell.query()[-1].signed_action
    same = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, action)
    junk = Warrant.sign(
        stranger,
        kind=WarrantKind.FORK,
        dna_hash=DNA.hash,
        author=victim.cell.agent,
        evidence=(same, same),
        reason="junk",
        now_us=sender.dht.clock(),
    )
    await sender.net.request(
        receiver.net.peer_id, sender.dht.protocol_warrant, junk.to_bytes(), timeout=5
    )
    assert not receiver.dht.is_blocked(stranger.agent)
    assert not receiver.dht.is_blocked(victim.cell.agent)
    assert not receiver.dht.store.has_warrant(junk.hash)
    assert receiver.dht.stats.warrants_refused >= 1


async def test_one_peer_cannot_flood_a_node_with_warrants(cluster: Make) -> None:
    nodes = await started(cluster, 2)
    sender, receiver = nodes
    refused = 0
    for n in range(80):  # bounded: more than a minute's budget
        try:
            await sender.net.request(
                receiver.net.peer_id, sender.dht.protocol_warrant, b"\xff" * (n + 1), timeout=5
            )
        except RequestRefused as exc:
            refused += "too many warrants" in str(exc)
    assert refused == 80 - 64
