"""Key rotation of an enrolled device on the in-memory network: the whole exchange (the device
moves to agent j+1 of its seed, the old key's later records are refused by another node, history
links the keys, the owner still controls the device), and each refusal leaving nothing adopted
(the multi-process version is tests/net/test_net_rotation.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.conductor import KEYSTORE_FILE, Conductor, owner_keyset
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, create_device_key_file, read_keystore
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.encoding import Value, encode
from ioe.hashing import AgentPubKey
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.device_account import DeviceAccount
from ioe.identity.revocation import KeyRevocation
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service import rotation_messages as r
from ioe.identity.service.enrollment import DEVICES_SETTING, EnrolledDeviceRole
from ioe.identity.service.transfer import key_history_of, keystore_writer
from ioe.net.interface import PeerId
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.services.remote import RemoteCallError
from ioe.testing.membership import device_certificate
from ioe.vocabulary import NodeType

pytestmark = pytest.mark.anyio
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def eventually(check: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@dataclass
class Setup:
    hub: MemoryHub
    owner: Node
    other: Node
    device: Node
    device_dir: Path
    unlock: Unlock
    started: list[Node] = field(default_factory=list)

    @property
    def old(self) -> AgentPubKey:
        return self.device.conductor.owner_cell.agent

    @property
    def account(self) -> OwnerAccount:
        account = self.owner.conductor.account
        assert isinstance(account, OwnerAccount)
        return account

    def owner_agent(self) -> AgentPubKey:
        return self.account.agent_key().agent

    def keystore(self) -> DeviceAccount:
        return DeviceAccount.from_secrets(
            read_keystore(self.device_dir / KEYSTORE_FILE, self.unlock)
        )

    async def restart_device(self) -> Node:
        """What the device's runner does once it adopted: reopen the directory, start again."""
        await self.device.close()
        self.device.conductor.close()
        conductor = Conductor.open(self.device_dir, self.unlock)
        self.device = _device_node(self.hub, conductor, self.device_dir, self.unlock)
        await self.device.start()
        self.started.append(self.device)
        await self.device.network.connect(self.owner.network.listen_addrs()[0])
        return self.device


def _device_node(hub: MemoryHub, conductor: Conductor, data_dir: Path, unlock: Unlock) -> Node:
    node = Node(
        conductor,
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub),
        enrollment=EnrolledDeviceRole(NodeType.CONSUMPTION),
    )
    node.transfers.persist = keystore_writer(data_dir, unlock)
    return node


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """The owner's node with its device 1 (enrolled as `ioe owner enroll` would), another
    owner's node and the device's node, all connected."""
    hub = MemoryHub()
    conductors = []
    for name in ("owner", "other"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
        conductors.append(conductor)
    account = conductors[0].account
    assert isinstance(account, OwnerAccount)
    cert = device_certificate(account, 1, now_us=conductors[0].clock())
    record = {"agent": cert.device.to_text(), "index": 1, "name": cert.name, "type": "consumption"}
    conductors[0].db.put_setting(DEVICES_SETTING, [record])
    conductors[0].db.put_setting("next_device_index", 2)
    device_dir = tmp_path / "device"
    device_dir.mkdir()
    unlock = Unlock(key_file=tmp_path / "device.key")
    create_device_key_file(tmp_path / "device.key")
    device_conductor = Conductor.adopt_device(
        device_dir, unlock, DeviceAccount.of(account.device_seed(1), 1, cert)
    )
    owner, other = (Node(c, NodeConfig(dht=FAST), network=MemoryNetwork(hub)) for c in conductors)
    device = _device_node(hub, device_conductor, device_dir, unlock)
    s = Setup(hub, owner, other, device, device_dir, unlock, [owner, other, device])
    for node in s.started:
        await node.start()
    try:
        for node in (other, device):
            await node.network.connect(owner.network.listen_addrs()[0])
        nodes = (owner, other, device)
        await eventually(
            lambda: all(len(n.dht_for(n.conductor.owner_cell).members()) == 3 for n in nodes)
        )
        yield s
    finally:
        for node in s.started:
            await node.close()
            node.conductor.close()


def _dht(node: Node) -> DnaNetwork:
    return node.dht_for(node.conductor.owner_cell)


def _devices(node: Node) -> list[Any]:
    stored = node.conductor.db.get_setting(DEVICES_SETTING)
    assert isinstance(stored, list)
    return stored


# ---------------------------------------------------------------------------------- the whole


async def test_a_device_moves_to_its_next_agent_key(setup: Setup) -> None:
    s = setup
    old = s.old
    async with s.owner.signals.listen() as listener:
        result = await s.owner.rotation.rotate(old.to_text(), reason="yearly")
        for _ in range(50):
            event = await asyncio.wait_for(listener.next(), 5)
            if event["type"] == "device_rotated":
                break
    new = AgentPubKey.from_text(result["agent"])
    assert new == device_agent_key(s.account.device_seed(1), 1).agent
    assert (result["index"], result["agent_index"], result["previous"]) == (1, 1, old.to_text())
    assert event["agent"] == new.to_text() and event["previous"] == old.to_text()
    assert s.device.transfers.adopted.is_set()
    stored = s.keystore()  # the keystore holds the next key, before any restart
    assert (stored.index, stored.agent) == (1, 1)
    assert stored.agent_key().agent == new == stored.certificate.device
    assert stored.certificate.name == "device 1" and stored.certificate.owner == s.owner_agent()

    [record] = _devices(s.owner)
    assert record["agent"] == new.to_text() and record["agent_index"] == 1
    assert record["index"] == 1 and record["rotated_from"]["agent"] == old.to_text()
    revocation = result["revocation"]
    head = s.device.conductor.owner_cell.query()[-1]
    assert revocation["replacement"] == new.to_text() and revocation["reason"] == "yearly"
    assert (revocation["last_valid_seq"], revocation["head"]) == (
        head.action.seq,
        head.signed_action.hash.to_text(),
    )

    # A record the old key signs after the cut-off (this node still runs it: its runner
    # restarts it) is refused by another owner's node once it learns the revocation.
    old_cell = s.device.conductor.owner_cell
    before = old_cell.query()[-1].signed_action
    s.device.call(old_cell, "profile", "set_profile", {"name": "late", "zone": "au"})
    after = old_cell.query()[-1].signed_action
    history = await key_history_of(_dht(s.other), old)  # asks the network for the links
    assert history["history"] == [old.to_text(), new.to_text()]
    registry = _dht(s.other).revocations
    assert registry.refusal(before) is None
    refusal = registry.refusal(after)
    assert refusal is not None and "after its revocation" in refusal
    assert registry.member_refusal(old) is not None

    # Restarted as the new agent, the device still obeys its owner (and no one else).
    device = await s.restart_device()
    assert device.conductor.owner_cell.agent == new
    assert [c.agent for c in device.conductor.cells()] == [new]

    async def describe(fn: str, payload: Value, caller: AgentPubKey) -> Value:
        return {"fn": fn, "caller": bytes(caller)}

    device.remote.services["device"] = describe
    await eventually(lambda: new in _dht(s.owner).members() and new in _dht(s.other).members())
    owner_cell = s.owner.conductor.owner_cell
    answer = await s.owner.remote.call(owner_cell, new, "device", "describe")
    assert answer["fn"] == "describe"
    with pytest.raises(RemoteCallError):
        await s.other.remote.call(s.other.conductor.owner_cell, new, "device", "describe")


# ---------------------------------------------------------------------------------- refusals


def _documents(
    s: Setup,
    *,
    owner: OwnerAccount | None = None,
    seed_index: int = 1,
    agent: int = 1,
    replacement: AgentPubKey | None = None,
    cut_back: int = 0,
) -> tuple[EnrollmentCertificate, KeyRevocation]:
    """A certificate for ``agent`` of ``owner``'s device seed ``seed_index`` and a revocation of
    the device's current key by ``owner`` (default: a valid rotation by the device's owner)."""
    owner = owner or s.account
    now = s.owner.conductor.clock()
    cert = device_certificate(owner, seed_index, agent, now_us=now)
    head = s.device.conductor.owner_cell.head()
    assert head is not None
    revocation = KeyRevocation.new(
        owner_keyset(owner),
        s.old,
        last_valid_seq=head.seq - cut_back,
        head=head.hash if cut_back == 0 else None,
        issued_us=now,
        reason="test",
        replacement=replacement or cert.device,
    ).signed_by(owner.authorization_key())
    return cert, revocation


async def _send(
    s: Setup, cert: EnrollmentCertificate, revocation: KeyRevocation, signer: KeyPair
) -> Value:
    body: dict[str, Value] = {
        "device": bytes(s.old),
        "certificate": cert.to_bytes(),
        "revocation": revocation.to_bytes(),
        "time_us": s.device.conductor.clock(),
    }
    reply = await s.device.rotation._handle(PeerId("x"), r.sign_message("rotate", body, signer))
    return m.read_reply(reply)


def _nothing_adopted(s: Setup) -> None:
    assert not s.device.transfers.adopted.is_set()
    stored = s.keystore()
    assert stored.agent == 0 and stored.agent_key().agent == s.old


async def test_a_valid_rotation_sent_directly_is_adopted(setup: Setup) -> None:
    """The refusals below differ from this one in one thing each."""
    s = setup
    cert, revocation = _documents(s)
    reply = await _send(s, cert, revocation, s.account.agent_key())
    assert type(reply) is bytes
    assert r.open_message(reply, expect="rotated").signer == cert.device
    assert s.device.transfers.adopted.is_set() and s.keystore().agent == 1


async def test_a_rotation_not_signed_by_the_owner_is_refused(setup: Setup) -> None:
    s = setup
    cert, revocation = _documents(s)
    for signer in (KeyPair(os.urandom(32)), s.device.conductor.owner_cell.keys):
        with pytest.raises(m.EnrollmentError, match="not signed by this device's owner"):
            await _send(s, cert, revocation, signer)
    _nothing_adopted(s)


async def test_a_forged_rotation_is_refused(setup: Setup) -> None:
    s = setup
    cert, revocation = _documents(s)
    body: dict[str, Value] = {
        "device": bytes(s.old),
        "certificate": cert.to_bytes(),
        "revocation": revocation.to_bytes(),
        "time_us": s.device.conductor.clock(),
        "from": bytes(s.owner_agent()),
    }
    stranger = KeyPair(os.urandom(32))
    raw = encode(body)
    forged = encode({"kind": "rotate", "body": raw, "sig": stranger.sign(r.context("rotate"), raw)})
    with pytest.raises(m.EnrollmentError, match="does not verify"):
        m.read_reply(await s.device.rotation._handle(PeerId("x"), forged))
    _nothing_adopted(s)


async def test_a_revocation_naming_another_replacement_is_refused(setup: Setup) -> None:
    s = setup
    other_key = device_agent_key(s.account.device_seed(1), 2).agent
    cert, revocation = _documents(s, replacement=other_key)
    with pytest.raises(m.EnrollmentError, match="new certificate's key as its replacement"):
        await _send(s, cert, revocation, s.account.agent_key())
    _nothing_adopted(s)


async def test_a_certificate_for_another_seeds_key_is_refused(setup: Setup) -> None:
    s = setup
    for seed_index, agent in ((2, 1), (1, 2)):  # a sibling's key; this seed's key after next
        cert, revocation = _documents(s, seed_index=seed_index, agent=agent)
        with pytest.raises(m.EnrollmentError, match="not for agent 1 of this device's seed"):
            await _send(s, cert, revocation, s.account.agent_key())
    _nothing_adopted(s)


async def test_a_strangers_rotation_is_refused(setup: Setup) -> None:
    s = setup
    stranger = OwnerAccount(os.urandom(32))
    cert, revocation = _documents(s, owner=stranger)
    with pytest.raises(m.EnrollmentError, match="not signed by this device's owner"):
        await _send(s, cert, revocation, stranger.agent_key())
    # Even sent by the owner agent, a stranger's keyset revokes nothing here.
    with pytest.raises(m.EnrollmentError, match="revocation does not stand"):
        await _send(s, cert, revocation, s.account.agent_key())
    _nothing_adopted(s)


async def test_a_cut_off_before_the_devices_head_is_refused(setup: Setup) -> None:
    s = setup
    cert, revocation = _documents(s, cut_back=1)  # would void the device's latest action
    with pytest.raises(m.EnrollmentError, match="not this device's latest action"):
        await _send(s, cert, revocation, s.account.agent_key())
    _nothing_adopted(s)


async def test_the_owner_rotates_only_its_own_devices(setup: Setup) -> None:
    s = setup
    with pytest.raises(r.RotationError, match="not a device this owner enrolled"):
        await s.other.rotation.rotate(s.old.to_text())
    with pytest.raises(r.RotationError, match="only an owner's node"):
        await s.device.rotation.rotate(s.old.to_text())
    _nothing_adopted(s)
    assert _dht(s.owner).revocations.of(s.old) == []


async def test_an_unreachable_device_is_not_revoked(setup: Setup) -> None:
    """Nothing is published unless the device confirmed: it would be cut off otherwise."""
    s = setup
    s.device.transfers.persist = None  # this device cannot take a new key
    with pytest.raises(m.EnrollmentError, match="cannot take a new key"):
        await s.owner.rotation.rotate(s.old.to_text())
    assert _dht(s.owner).revocations.of(s.old) == []
    [record] = _devices(s.owner)
    assert record["agent"] == s.old.to_text() and "agent_index" not in record


# --------------------------------------------------------------------------------- fuzzing


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_garbage_is_refused_as_a_rotation_error(data: bytes) -> None:
    with pytest.raises(r.RotationError):
        r.open_message(data, expect="rotate")


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12), st.binary(max_size=40) | st.integers(-(2**63), 2**63 - 1), max_size=6
    )
)
def test_signed_bodies_of_any_shape_open_or_are_refused(body: dict[str, Value]) -> None:
    keys = KeyPair(bytes(32))
    message = r.open_message(r.sign_message("rotate", body, keys), expect="rotate")
    assert message.signer == keys.agent
    with pytest.raises(r.RotationError, match="expected a rotated message"):
        r.open_message(r.sign_message("rotate", body, keys), expect="rotated")
