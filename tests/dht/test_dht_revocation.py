"""Key revocation in the DHT workflows, on the in-memory network: once an owner publishes the
revocation of its device's key, an honest node drops what the key signed after the cutoff,
refuses its later ops (not held, not returned by gets) and its agent info, and remembers the
revocation across a restart; what the key signed before the cutoff stands."""

from __future__ import annotations

import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dht_kit import DNA, FAST, Clock, Node, eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dht.revocations import RevocationRegistry
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.dht import AgentInfo, publishable_ops
from ioe.hashing import ActionHash
from ioe.identity.revocation import KeyRevocation, key_state
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import (
    device_certificate,
    membrane_proof_for,
    owner_membership_proof,
)
from ioe.zomes.ownership.entries import REVOCATION_LINK

pytestmark = pytest.mark.anyio

ACCOUNT = OwnerAccount(bytes([42]) * 32)
CERTIFICATE = device_certificate(ACCOUNT, 1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def start(directory: Path, hub: MemoryHub, name: str, keys: KeyPair, proof: bytes) -> Node:
    clock = Clock()
    db = SqliteDatabase.open(directory / f"{name}.sqlite", dnas=[DNA])
    cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
    net = MemoryNetwork(hub, name)
    await net.start()
    dht = DnaNetwork(DNA, db, net, clock=clock, config=FAST)
    cell.reader = dht.store
    if cell.store.head() is None:
        cell.genesis(proof, now_us=clock())
    dht.add_cell(cell, proof)
    await dht.start()
    return Node(cell, net, dht, db)


@pytest.fixture
async def trio_of_nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node, Node]]:
    hub = MemoryHub()
    honest_keys = KeyPair(bytes([9]) * 32)
    owner = await start(
        tmp_path, hub, "owner", ACCOUNT.agent_key(), owner_membership_proof(ACCOUNT)
    )
    device_keys = device_agent_key(ACCOUNT.device_seed(1), 0)
    device = await start(tmp_path, hub, "device", device_keys, CERTIFICATE.to_bytes())
    honest = await start(tmp_path, hub, "honest", honest_keys, membrane_proof_for(honest_keys))
    for a, b in ((owner, device), (owner, honest), (device, honest)):
        await a.net.connect(b.net.listen_addrs()[0])
    nodes = (owner, device, honest)
    await eventually(
        lambda: all(len(n.dht.members()) == 3 for n in nodes), what="members did not meet"
    )
    yield nodes
    for node in nodes:
        await node.close()


def set_profile(node: Node, name: str) -> ActionHash:
    action = node.cell.call("profile", "set_profile", {"name": name, "zone": "au"}, now_us=0 + 1)
    node.dht.notify_commit()
    return action


def revoke(owner: Node, device: Node, last_valid_seq: int) -> KeyRevocation:
    revocation = KeyRevocation.new(
        CERTIFICATE.keyset,
        device.cell.agent,
        last_valid_seq=last_valid_seq,
        issued_us=owner.dht.clock(),
        reason="stolen",
    ).signed_by(ACCOUNT.authorization_key())
    payload = {
        "revocation": revocation.to_bytes(),
        "certificate": CERTIFICATE.to_bytes(),
        "enrolled_at": bytes(device.cell.query()[1].action_hash),
    }
    owner.cell.call("ownership", "revoke", payload, now_us=owner.dht.clock())
    owner.dht.notify_commit()
    return revocation


async def test_an_honest_node_refuses_what_a_revoked_key_signs_after_its_cutoff(
    trio_of_nodes: tuple[Node, Node, Node], tmp_path: Path
) -> None:
    owner, device, honest = trio_of_nodes
    agent = device.cell.agent
    early = set_profile(device, "kettle")  # seq 4 (and its link at 5): after the cutoff
    await eventually(
        lambda: honest.dht.store.get_record(early) is not None, what="profile not held"
    )
    genesis_end = device.cell.query()[3].action_hash  # InitZomesComplete, seq 3: stands
    revocation = revoke(owner, device, last_valid_seq=3)
    await eventually(
        lambda: honest.dht.revocations.revoked(agent), what="the revocation did not arrive"
    )
    assert [r.id for r in honest.dht.revocations.of(agent)] == [revocation.id]

    # What the honest node held beyond the cutoff is dropped; what came before stands.
    assert honest.dht.store.get_record(early) is None
    assert await honest.dht.get_record(early) is None  # nor fetched (the device would serve it)
    assert honest.dht.store.get_record(genesis_end) is not None
    refusal = honest.dht.revocations.refusal(device.cell.query()[4].signed_action)
    assert refusal is not None
    assert f"signed by {agent.to_text()} after its revocation" in refusal
    assert "stolen" in refusal

    # Later ops of the key are refused (its node is no member: its publishing is turned
    # away), not held, and not returned by gets.
    refused = honest.dht.stats.refused_peers
    late = set_profile(device, "still the kettle")
    await eventually(
        lambda: honest.dht.stats.refused_peers > refused, what="the late op never arrived"
    )
    assert honest.dht.store.get_record(late) is None
    assert await honest.dht.get_record(late) is None
    # ... and so is the op itself, when someone else passes it on.
    late_record = device.cell.get(late)
    assert late_record is not None
    rejected = honest.dht.stats.rejected_ops
    for op in publishable_ops(late_record):
        assert await honest.dht.hold(op, [honest.cell.agent]) == []
    assert honest.dht.stats.rejected_ops > rejected
    assert honest.dht.store.get_record(late) is None
    activity = await honest.dht.get_agent_activity(agent)
    assert max(s.action.seq for s in activity) == 3

    # The revoked key is no member any more, and its fresh agent info is refused.
    assert agent not in honest.dht.members()
    info = AgentInfo.sign(
        device.cell.keys,
        dna_hash=DNA.hash,
        peer_id=device.net.peer_id,
        addrs=device.net.listen_addrs(),
        now_us=honest.dht.clock(),
        ttl_us=60_000_000,
        membrane_proof=CERTIFICATE.to_bytes(),
    )
    problem = honest.dht.revocations.info_refusal(info)
    assert problem is not None and "is revoked" in problem
    assert honest.dht._accept_infos([info.to_bytes()]) == []

    # The revocation is found by its link from the revoked key, and survives a restart.
    links = await honest.dht.get_links(agent, REVOCATION_LINK)
    assert [link.author for link in links] == [owner.cell.agent]
    assert RevocationRegistry(honest.db, DNA).revoked(agent)


async def test_a_revocation_keeps_the_actions_up_to_its_cutoff(
    trio_of_nodes: tuple[Node, Node, Node],
) -> None:
    owner, device, honest = trio_of_nodes
    kept = set_profile(device, "kettle")
    await eventually(lambda: honest.dht.store.get_record(kept) is not None, what="not held")
    head = device.cell.head()
    assert head is not None
    revoke(owner, device, last_valid_seq=head.seq)
    await eventually(lambda: honest.dht.revocations.revoked(device.cell.agent), what="no news")
    assert honest.dht.store.get_record(kept) is not None
    assert await honest.dht.get_record(kept) is not None
    late = set_profile(device, "later")
    signed = device.cell.query()[-1].signed_action
    assert honest.dht.revocations.refusal(signed) is not None
    assert await honest.dht.get_record(late) is None


@settings(max_examples=30, deadline=None)
@given(
    cutoffs=st.lists(st.integers(min_value=-1, max_value=12), min_size=1, max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_the_registry_is_order_independent_and_survives_a_restart(
    cutoffs: list[int], order: random.Random
) -> None:
    agent = device_agent_key(ACCOUNT.device_seed(1), 0).agent
    revocations = [
        KeyRevocation.new(
            CERTIFICATE.keyset, agent, last_valid_seq=seq, issued_us=i, reason=f"r{i}"
        ).signed_by(ACCOUNT.authorization_key())
        for i, seq in enumerate(cutoffs)
    ]
    shuffled = list(revocations)
    order.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as directory:
        db = SqliteDatabase.open(Path(directory) / "r.sqlite", dnas=[DNA])
        try:
            registry = RevocationRegistry(db, DNA)
            assert all(registry.learn(r) for r in shuffled)
            assert not registry.learn(shuffled[0])  # known already
            state = registry.state(agent)
            assert state == key_state(agent, revocations)
            assert state.last_valid_seq == min(cutoffs)
            assert RevocationRegistry(db, DNA).state(agent) == state
            assert registry.member_refusal(agent) is not None
            assert registry.member_refusal(ACCOUNT.agent_key().agent) is None
        finally:
            db.close()
