"""Revocations and transfers reach every member, not only the revoked key's authorities: on an
in-memory network of 10 nodes with a replication factor of 2, every node comes to refuse the
revoked key's later ops and its agent info; forged revocations passed around are learnt by no
one; a network without revocations pays a constant per gossip round. Also the pure parts: the
self-proving check, and the decoders of what a node receives (fuzzed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dht_kit import DNA, FAST, Clock, Node, eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dht.revocation_gossip import (
    MAX_PROOF_BYTES,
    MAX_PROOFS_PER_MESSAGE,
    RevocationMessage,
    RevocationProof,
    proof_problem,
)
from ioe.dht.service import DnaNetwork
from ioe.encoding import Value, encode
from ioe.engine.cell import Cell
from ioe.engine.dht import AgentInfo, DhtOp
from ioe.engine.ops import OpType
from ioe.engine.records import (
    AgentValidationPkg,
    AppEntryType,
    Create,
    Entry,
    Record,
    SignedAction,
)
from ioe.engine.schema import decode_as, to_value
from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.revocation import KeyRevocation
from ioe.identity.transfer import TransferCertificate
from ioe.net.interface import NetworkError, PeerId
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import (
    device_certificate,
    membrane_proof_for,
    owner_membership_proof,
)
from ioe.zomes.ownership.entries import KeyRevocationEntry

pytestmark = pytest.mark.anyio

NODES = 10
CONFIG = replace(FAST, replication=2)
SPREAD_TIMEOUT_S = 30.0
ACCOUNT = OwnerAccount(bytes([42]) * 32)
NEW_OWNER = OwnerAccount(bytes([43]) * 32)
STRANGER = OwnerAccount(bytes([44]) * 32)
CERTIFICATE = device_certificate(ACCOUNT, 1)
DEVICE_KEYS = device_agent_key(ACCOUNT.device_seed(1), 0)
NOW = 1_800_000_000_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------------------- network


@dataclass
class Net:
    owner: Node
    device: Node
    honest: list[Node]

    @property
    def all(self) -> list[Node]:
        return [self.owner, self.device, *self.honest]

    @property
    def members(self) -> list[Node]:
        """Every node but the device's (which is the one revoked)."""
        return [self.owner, *self.honest]


async def start(directory: Path, hub: MemoryHub, name: str, keys: KeyPair, proof: bytes) -> Node:
    clock = Clock()
    db = SqliteDatabase.open(directory / f"{name}.sqlite", dnas=[DNA])
    cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
    net = MemoryNetwork(hub, name)
    await net.start()
    dht = DnaNetwork(DNA, db, net, clock=clock, config=CONFIG)
    cell.reader = dht.store
    if cell.store.head() is None:
        cell.genesis(proof, now_us=clock())
    dht.add_cell(cell, proof)
    await dht.start()
    return Node(cell, net, dht, db)


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Net]:
    """10 nodes in a ring (each connected to the next only): A's owner agent, A's device 1 and
    eight honest members; replication 2, so most nodes hold none of a given key's ops."""
    hub = MemoryHub()
    owner = await start(
        tmp_path, hub, "owner", ACCOUNT.agent_key(), owner_membership_proof(ACCOUNT)
    )
    device = await start(tmp_path, hub, "device", DEVICE_KEYS, CERTIFICATE.to_bytes())
    honest = []
    for i in range(NODES - 2):
        keys = KeyPair(bytes([60 + i]) * 32)
        honest.append(await start(tmp_path, hub, f"honest{i}", keys, membrane_proof_for(keys)))
    net = Net(owner, device, honest)
    ring = net.all
    for a, b in zip(ring, [*ring[1:], ring[0]], strict=True):
        await a.net.connect(b.net.listen_addrs()[0])
    await eventually(
        lambda: all(len(n.dht.members()) == NODES for n in ring),
        timeout=SPREAD_TIMEOUT_S,
        what="the members did not meet",
    )
    yield net
    for node in ring:
        await node.close()


def set_profile(node: Node, name: str) -> ActionHash:
    action = node.cell.call("profile", "set_profile", {"name": name, "zone": "au"}, now_us=1)
    node.dht.notify_commit()
    return action


async def fetch_enrollment(net: Net) -> ActionHash:
    """The device's ``AgentValidationPkg``, fetched by the owner's node (which, with R = 2, may
    hold none of the device's chain): its zome call cites it."""
    enrolled_at = net.device.cell.query()[1].action_hash
    for _ in range(100):
        if await net.owner.dht.get_record(enrolled_at) is not None:
            return enrolled_at
        await asyncio.sleep(0.1)
    raise AssertionError("the owner's node cannot fetch the device's enrollment")


async def revoke(net: Net, last_valid_seq: int) -> tuple[KeyRevocation, ActionHash]:
    revocation = KeyRevocation.new(
        CERTIFICATE.keyset,
        net.device.cell.agent,
        last_valid_seq=last_valid_seq,
        issued_us=net.owner.dht.clock(),
        reason="stolen",
    ).signed_by(ACCOUNT.authorization_key())
    payload = {
        "revocation": revocation.to_bytes(),
        "certificate": CERTIFICATE.to_bytes(),
        "enrolled_at": bytes(await fetch_enrollment(net)),
    }
    action = net.owner.cell.call("ownership", "revoke", payload, now_us=net.owner.dht.clock())
    net.owner.dht.notify_commit()
    return revocation, action


def device_info(net: Net, node: Node) -> AgentInfo:
    """A fresh agent info of the device, as its node would sign it now."""
    return AgentInfo.sign(
        net.device.cell.keys,
        dna_hash=DNA.hash,
        peer_id=net.device.net.peer_id,
        addrs=net.device.net.listen_addrs(),
        now_us=node.dht.clock(),
        ttl_us=60_000_000,
        membrane_proof=CERTIFICATE.to_bytes(),
    )


async def assert_every_member_refuses_the_device(net: Net, late: ActionHash) -> None:
    """Every member refuses the device's op ``late`` (not held, even when handed to it) and
    its agent info; the device is no member anywhere."""
    record = net.device.cell.get(late)
    assert record is not None
    agent = net.device.cell.agent
    for node in net.members:
        assert node.dht.revocations.refusal(record.signed_action) is not None
        op = DhtOp(OpType.STORE_RECORD, record.signed_action, record.entry)
        assert await node.dht.hold(op, [node.cell.agent]) == []
        assert node.dht.store.get_record(late) is None
        assert agent not in node.dht.members()
        info = device_info(net, node)
        assert node.dht.revocations.info_refusal(info) is not None
        assert node.dht._accept_infos([info.to_bytes()]) == []


async def rounds_pass(nodes: list[Node], rounds: int) -> None:
    """Wait until each node has gossiped ``rounds`` more times."""
    start = {id(n): n.dht.stats.gossip_rounds for n in nodes}
    await eventually(
        lambda: all(n.dht.stats.gossip_rounds >= start[id(n)] + rounds for n in nodes),
        timeout=SPREAD_TIMEOUT_S,
        what="gossip rounds did not happen",
    )


# ------------------------------------------------------------------------------- spreading


async def test_a_revocation_reaches_every_member_not_only_the_authorities(network: Net) -> None:
    net = network
    agent = net.device.cell.agent
    early = set_profile(net.device, "kettle")  # after the cutoff: void once revoked
    _, action = await revoke(net, last_valid_seq=3)
    await eventually(
        lambda: all(n.dht.revocations.revoked(agent) for n in net.members),
        timeout=SPREAD_TIMEOUT_S,
        what="the revocation did not reach every member",
    )
    # The revocation is learnt from ops at 3 bases (its record, its entry, its link from the
    # key), each held by R = 2 nodes; every other member learned it from a peer.
    record = net.owner.cell.get(action)
    assert record is not None and record.action.entry_hash is not None
    bases = (action, record.action.entry_hash, agent)
    holders = {info.agent for basis in bases for info in net.owner.dht.authorities_of(basis)}
    outsiders = [n for n in net.honest if n.cell.agent not in holders]
    assert len(outsiders) >= len(net.honest) - 3 * CONFIG.replication > 0
    for node in outsiders:
        assert node.dht.revocation_gossip.stats.learned == 1
    await eventually(
        lambda: all(n.dht.revocation_gossip.knows(action) for n in net.members),
        timeout=SPREAD_TIMEOUT_S,
        what="the proof did not reach every member",
    )
    for node in net.members:
        assert await node.dht.get_record(early) is None  # voided everywhere: not returned
        assert node.dht.revocation_gossip.stats.refused == 0
    late = set_profile(net.device, "still the kettle")
    await assert_every_member_refuses_the_device(net, late)

    # The proofs are kept across a restart (a late joiner still gets them).
    again = DnaNetwork(DNA, net.honest[0].db, net.honest[0].net, clock=Clock(), config=CONFIG)
    assert again.revocation_gossip.knows(action)
    assert again.revocations.revoked(agent)


async def test_a_transfer_reaches_every_member(network: Net) -> None:
    net = network
    agent = net.device.cell.agent
    new = device_certificate(NEW_OWNER, 3, now_us=1)
    head = net.device.cell.query()[-1]
    transfer = (
        TransferCertificate.between(
            CERTIFICATE,
            new,
            old_last_seq=head.action.seq,
            old_head=head.action_hash,
            issued_us=net.owner.dht.clock(),
        )
        .signed_by_old(ACCOUNT.authorization_key())
        .signed_by_new(NEW_OWNER.authorization_key())
    )
    payload = {
        "transfer": transfer.to_bytes(),
        "old_certificate": CERTIFICATE.to_bytes(),
        "new_certificate": new.to_bytes(),
        "old_enrolled_at": bytes(await fetch_enrollment(net)),
    }
    net.owner.cell.call("ownership", "record_transfer", payload, now_us=net.owner.dht.clock())
    net.owner.dht.notify_commit()
    await eventually(
        lambda: all(
            [t.id for t in n.dht.revocations.transfers_of(agent)] == [transfer.id]
            for n in net.members
        ),
        timeout=SPREAD_TIMEOUT_S,
        what="the transfer did not reach every member",
    )
    assert any(n.dht.revocation_gossip.stats.learned for n in net.members)
    for node in net.members:
        assert node.dht.revocations.history(agent) == (agent, new.device)
    late = set_profile(net.device, "after the transfer")
    await assert_every_member_refuses_the_device(net, late)


async def test_forged_revocations_are_learnt_by_no_one(network: Net) -> None:
    net = network
    agent = net.device.cell.agent
    forged = forgeries(net.device.cell.query()[1].signed_action)
    liar, others = net.honest[0], [n for n in net.all if n is not net.honest[0]]
    # Pushed straight at every other node: each refuses the request, and says why.
    for node in others:
        message = RevocationMessage(give=(forged[0].to_bytes(),)).to_bytes()
        with pytest.raises(NetworkError, match="invalid revocation proof"):
            await liar.net.request(node.net.peer_id, liar.dht.revocation_gossip.protocol, message)
    # Kept by the liar, so that its gossip hands them to everyone it meets.
    for proof in forged:
        liar.dht.revocation_gossip._proofs[proof.hash] = proof.to_bytes()
    await rounds_pass(net.all, 10)
    for node in net.all:
        assert not node.dht.revocations.revoked(agent)
        assert agent in node.dht.members()
    for node in others:
        assert not any(node.dht.revocation_gossip.knows(p.hash) for p in forged)
        assert node.dht.revocation_gossip.stats.learned == 0
    refused = sum(n.dht.revocation_gossip.stats.refused for n in others)
    assert refused >= len(others)


async def test_without_revocations_gossip_costs_a_constant_per_round(network: Net) -> None:
    net = network
    sizes: list[tuple[int, int]] = []
    for node in net.all:
        gossip = node.dht.revocation_gossip
        node.net.set_handler(gossip.protocol, recording(gossip.handle, sizes))
    sent_before = sum(n.dht.revocation_gossip.stats.exchanges for n in net.all)
    await rounds_pass(net.all, 5)
    await asyncio.sleep(CONFIG.request_timeout_s)  # requests in flight arrive
    sent = sum(n.dht.revocation_gossip.stats.exchanges for n in net.all) - sent_before
    request = len(RevocationMessage(have=()).to_bytes())
    answer = len(RevocationMessage().to_bytes())
    assert sizes, "no exchange happened"
    assert len(sizes) <= sent + NODES * CONFIG.gossip_fanout  # one per partner and round
    assert set(sizes) == {(request, answer)}
    assert request <= 16 and answer <= 16
    for node in net.all:
        assert node.dht.revocation_gossip.proofs() == []
        assert node.dht.revocation_gossip.stats.pushed == 0


def recording(
    handler: Callable[[PeerId, bytes], Awaitable[bytes]], sizes: list[tuple[int, int]]
) -> Callable[[PeerId, bytes], Awaitable[bytes]]:
    async def handle(peer: PeerId, payload: bytes) -> bytes:
        reply = await handler(peer, payload)
        sizes.append((len(payload), len(reply)))
        return reply

    return handle


# ------------------------------------------------------------------------------- pure parts


def entry_type(name: str) -> AppEntryType:
    for zome_index, zome in enumerate(DNA.integrity_zomes):
        for entry_index, entry_def in enumerate(zome.entry_defs):
            if zome.name == "ownership" and entry_def.name == name:
                return AppEntryType(zome_index, entry_index)
    raise AssertionError(f"no {name} entry")


def record_of(entry: KeyRevocationEntry, author: KeyPair) -> Record:
    """A record of ``entry`` signed by ``author``, as if committed on its chain."""
    content = Entry.app(encode(to_value(entry)))
    action = Create(
        author=author.agent,
        timestamp=NOW,
        seq=5,
        prev=ActionHash(bytes(32)),
        app_entry_type=entry_type("key_revocation"),
        created_entry=content.hash(),
    )
    return Record(SignedAction.sign(action, author), content)


def enrolled_action(certificate: EnrollmentCertificate = CERTIFICATE) -> SignedAction:
    """The device's own ``AgentValidationPkg`` carrying ``certificate``."""
    action = AgentValidationPkg(
        author=DEVICE_KEYS.agent,
        timestamp=NOW,
        seq=1,
        prev=ActionHash(bytes([1]) * 32),
        membrane_proof=certificate.to_bytes(),
    )
    return SignedAction.sign(action, DEVICE_KEYS)


def genuine(enrolled: SignedAction) -> RevocationProof:
    revocation = KeyRevocation.new(
        CERTIFICATE.keyset, DEVICE_KEYS.agent, last_valid_seq=-1, issued_us=NOW, reason="lost"
    ).signed_by(ACCOUNT.authorization_key())
    entry = KeyRevocationEntry(revocation.to_bytes(), CERTIFICATE.to_bytes(), enrolled.hash)
    return RevocationProof(record_of(entry, ACCOUNT.agent_key()), enrolled)


def forgeries(enrolled: SignedAction) -> list[RevocationProof]:
    """Three revocations of the device that must not pass: a bad signature, a record that is
    not its owner's, and a certificate of the device issued by another owner."""
    real = genuine(enrolled)
    signed = real.record.signed_action
    bad_signature = replace(
        signed, signature=bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    )
    stranger_entry = decode_entry(real.record)
    by_stranger = record_of(stranger_entry, STRANGER.agent_key())
    theirs = device_certificate(STRANGER, 1)
    theirs = replace(theirs, device=DEVICE_KEYS.agent)
    theirs = replace(theirs, signatures=()).signed_by(STRANGER.authorization_key())
    their_revocation = KeyRevocation.new(
        theirs.keyset, DEVICE_KEYS.agent, last_valid_seq=-1, issued_us=NOW, reason="lost"
    ).signed_by(STRANGER.authorization_key())
    their_entry = KeyRevocationEntry(their_revocation.to_bytes(), theirs.to_bytes(), enrolled.hash)
    return [
        RevocationProof(Record(bad_signature, real.record.entry), enrolled),
        RevocationProof(by_stranger, enrolled),
        RevocationProof(record_of(their_entry, STRANGER.agent_key()), enrolled),
    ]


def decode_entry(record: Record) -> KeyRevocationEntry:
    assert record.entry is not None
    return decode_as(KeyRevocationEntry, record.entry.payload)


def is_document(record: Record) -> bool:
    return record.action.entry_type == entry_type("key_revocation")


def test_a_genuine_proof_proves_itself_and_forgeries_do_not() -> None:
    enrolled = enrolled_action()
    real = genuine(enrolled)
    assert proof_problem(real, DNA, is_document) is None
    reasons = [proof_problem(p, DNA, is_document) for p in forgeries(enrolled)]
    assert reasons[0] == "signature does not verify"
    assert reasons[1] is not None and "only the owner agent" in reasons[1]
    assert reasons[2] is not None and "enrolled_at is not the revoked key's" in reasons[2]
    # The enrollment action must be the device's own, signed, carrying that very certificate.
    other = enrolled_action(device_certificate(ACCOUNT, 2))
    assert proof_problem(RevocationProof(real.record, other), DNA, is_document) is not None
    unsigned = replace(enrolled, signature=bytes(64))
    problem = proof_problem(RevocationProof(real.record, unsigned), DNA, is_document)
    assert problem == "the cited enrollment action is not signed by its author"
    assert proof_problem(real, DNA, lambda _: False) is not None


def test_a_proof_round_trips_through_its_wire_form() -> None:
    real = genuine(enrolled_action())
    data = real.to_bytes()
    assert len(data) <= MAX_PROOF_BYTES
    assert RevocationProof.from_bytes(data) == real
    with pytest.raises(EncodingError):
        RevocationProof.from_bytes(encode([data, data]))
    with pytest.raises(EncodingError):  # the cited action is no AgentValidationPkg
        RevocationProof.from_bytes(encode([encode([0]), real.record.signed_action.to_bytes()]))


hashes = st.lists(st.binary(min_size=32, max_size=32).map(ActionHash), max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    have=st.none() | hashes,
    give=st.lists(st.binary(max_size=64), max_size=MAX_PROOFS_PER_MESSAGE),
    want=hashes.map(lambda h: h[:MAX_PROOFS_PER_MESSAGE]),
)
def test_messages_round_trip(
    have: list[ActionHash] | None, give: list[bytes], want: list[ActionHash]
) -> None:
    message = RevocationMessage(None if have is None else tuple(have), tuple(give), tuple(want))
    assert RevocationMessage.from_bytes(message.to_bytes()) == message


values: st.SearchStrategy[Value] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.binary(max_size=40)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=10)
        | st.dictionaries(st.sampled_from(["have", "give", "want", "x"]), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512) | values.map(encode))
def test_garbage_never_decodes_into_anything_but_an_encoding_error(data: bytes) -> None:
    for decoder in (RevocationMessage.from_bytes, RevocationProof.from_bytes):
        with contextlib.suppress(EncodingError):
            decoder(data)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_of_a_proof_never_passes_for_it(position: int, flip: int) -> None:
    real = genuine(enrolled_action())
    data = bytearray(real.to_bytes())
    data[position % len(data)] ^= flip
    try:
        proof = RevocationProof.from_bytes(bytes(data))
    except EncodingError:
        return
    assert proof == real or proof_problem(proof, DNA, is_document) is not None
