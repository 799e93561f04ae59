"""Ownership transfer between two owners' nodes and a device on the in-memory network: the whole
exchange, and each refusal (an offer not by the device's owner, an accept without an offer, a
countersign of something never offered, a provisioning the device must not adopt) leaving
nothing adopted (the multi-process version is tests/net/test_net_transfer.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.conductor import KEYSTORE_FILE, Conductor
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, create_device_key_file, read_keystore
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.encoding import encode
from ioe.hashing import AgentPubKey
from ioe.identity.device_account import DeviceAccount
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service import transfer_messages as t
from ioe.identity.service.enrollment import DEVICES_SETTING, EnrolledDeviceRole
from ioe.identity.service.transfer import key_history_of, keystore_writer
from ioe.identity.transfer import TransferCertificate
from ioe.net.interface import PeerId
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
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
    a: Node
    b: Node
    device: Node
    device_dir: Path
    unlock: Unlock

    @property
    def old(self) -> AgentPubKey:
        return self.device.conductor.owner_cell.agent

    @property
    def owner_b(self) -> OwnerAccount:
        account = self.b.conductor.account
        assert isinstance(account, OwnerAccount)
        return account

    def keystore(self) -> DeviceAccount:
        return DeviceAccount.from_secrets(
            read_keystore(self.device_dir / KEYSTORE_FILE, self.unlock)
        )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """Owner A's node with its device 1 (enrolled as `ioe owner enroll` would), owner B's node
    and the device's node, all connected."""
    hub = MemoryHub()
    conductors = []
    for name in ("a", "b"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
        conductors.append(conductor)
    owner_a = conductors[0].account
    assert isinstance(owner_a, OwnerAccount)
    cert = device_certificate(owner_a, 1, now_us=conductors[0].clock())
    conductors[0].db.put_setting(
        DEVICES_SETTING,
        [{"agent": cert.device.to_text(), "index": 1, "name": cert.name, "type": "consumption"}],
    )
    conductors[0].db.put_setting("next_device_index", 2)
    device_dir = tmp_path / "device"
    device_dir.mkdir()
    unlock = Unlock(key_file=tmp_path / "device.key")
    create_device_key_file(tmp_path / "device.key")
    account = DeviceAccount.of(owner_a.device_seed(1), 1, cert)
    device_conductor = Conductor.adopt_device(device_dir, unlock, account)
    a, b = (Node(c, NodeConfig(dht=FAST), network=MemoryNetwork(hub)) for c in conductors)
    device = Node(
        device_conductor,
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub),
        enrollment=EnrolledDeviceRole(NodeType.CONSUMPTION),
    )
    device.transfers.persist = keystore_writer(device_dir, unlock)
    nodes = (a, b, device)
    for node in nodes:
        await node.start()
    try:
        for node in (b, device):
            await node.network.connect(a.network.listen_addrs()[0])
        await eventually(
            lambda: all(len(n.dht_for(n.conductor.owner_cell).members()) == 3 for n in nodes)
        )
        yield Setup(a, b, device, device_dir, unlock)
    finally:
        for node in nodes:
            await node.close()
            node.conductor.close()


async def _offer(s: Setup) -> None:
    await s.a.transfers.offer(s.old.to_text(), s.owner_b.agent_key().agent.to_text())


def _dht(node: Node) -> DnaNetwork:
    return node.dht_for(node.conductor.owner_cell)


def _devices(node: Node) -> list[Any]:
    stored = node.conductor.db.get_setting(DEVICES_SETTING)
    assert isinstance(stored, list)
    return stored


# ---------------------------------------------------------------------------------- the whole


async def test_a_device_moves_to_its_new_owner_and_is_rekeyed(setup: Setup) -> None:
    s = setup
    b_agent = s.owner_b.agent_key().agent
    async with s.b.signals.listen() as listener:
        await _offer(s)
        for _ in range(20):
            event = await asyncio.wait_for(listener.next(), 5)
            if event["type"] == "transfer_pending":
                break
    assert event["device"] == s.old.to_text()
    [pending] = s.b.transfers.pending_list()
    assert pending["device"] == s.old.to_text() and pending["type"] == "consumption"
    assert pending["from"] == s.a.conductor.owner_cell.agent.to_text()

    result = await s.b.transfers.accept(s.old.to_text(), zone="au/vic")
    new = AgentPubKey.from_text(result["agent"])
    assert new == device_agent_key(s.owner_b.device_seed(result["index"]), 0).agent
    assert result["index"] == 1  # B's first device index, never handed out before
    assert s.device.transfers.adopted.is_set()
    adopted = s.keystore()  # the keystore holds the new account, before any restart
    assert adopted.agent_key().agent == new
    assert adopted.owner == b_agent and adopted.certificate.zone == "au/vic"
    assert adopted.certificate.name == "device 1"
    assert s.b.transfers.pending_list() == []

    [b_device] = _devices(s.b)
    assert b_device["agent"] == new.to_text()
    assert b_device["transferred_from"]["agent"] == s.old.to_text()
    [a_device] = _devices(s.a)
    assert a_device["transferred"]["to"] == b_agent.to_text()
    assert a_device["transferred"]["agent"] == new.to_text()

    # The old key is cut off at its latest action, and history links old and new keys.
    state = _dht(s.b).revocations.state(s.old)
    assert state.last_valid_seq == s.device.conductor.owner_cell.query()[-1].action.seq
    assert _dht(s.b).revocations.member_refusal(s.old) is not None
    history = await key_history_of(_dht(s.a), s.old)  # A asks the network for the links
    assert history["history"] == [s.old.to_text(), new.to_text()]
    assert history["transfers"][0]["id"] == result["transfer"]

    # A record the old key signs after the cut-off is refused (this device node still runs the
    # old key: its runner restarts it); one before the cut-off stands.
    old_cell = s.device.conductor.owner_cell
    before = old_cell.query()[-1].signed_action
    s.device.call(old_cell, "profile", "set_profile", {"name": "late", "zone": "au"})
    after = old_cell.query()[-1].signed_action
    for registry in (_dht(s.b).revocations, _dht(s.a).revocations):
        assert registry.refusal(before) is None
        refusal = registry.refusal(after)
        assert refusal is not None and "now " + new.to_text() in refusal


# ---------------------------------------------------------------------------------- refusals


async def test_an_offer_not_signed_by_the_devices_owner_is_refused(setup: Setup) -> None:
    s = setup
    proof = s.device.conductor.membrane_proof(s.device.conductor.owner_cell)
    assert proof is not None
    for signer in (KeyPair(os.urandom(32)), s.device.conductor.owner_cell.keys):
        body = {
            "to": bytes(s.owner_b.agent_key().agent),
            "device": bytes(s.old),
            "certificate": proof,
            "time_us": s.b.conductor.clock(),
        }
        reply = await s.b.transfers._handle(PeerId("x"), t.sign_message("offer", body, signer))
        with pytest.raises(m.EnrollmentError, match="only the device's owner may offer it"):
            m.read_reply(reply)
    assert s.b.transfers.pending_list() == []


async def test_an_offer_of_a_device_not_enrolled_here_is_refused(setup: Setup) -> None:
    s = setup
    with pytest.raises(t.TransferError, match="not a device this owner enrolled"):
        await s.b.transfers.offer(s.old.to_text(), s.a.conductor.owner_cell.agent.to_text())


async def test_accept_without_an_offer_is_refused(setup: Setup) -> None:
    s = setup
    with pytest.raises(t.TransferError, match="no transfer"):
        await s.b.transfers.accept(s.old.to_text())
    assert not s.device.transfers.adopted.is_set()
    assert s.keystore().agent_key().agent == s.old
    assert s.b.conductor.db.get_setting("next_device_index") is None  # no index spent


async def test_the_old_owner_countersigns_only_what_it_offered(setup: Setup) -> None:
    s = setup
    old = s.device.conductor.account
    assert isinstance(old, DeviceAccount)
    new = device_certificate(s.owner_b, 1, now_us=s.b.conductor.clock())
    draft = TransferCertificate.between(
        old.certificate, new, old_last_seq=3, issued_us=s.b.conductor.clock()
    ).signed_by_new(s.owner_b.authorization_key())
    body = {
        "transfer": draft.to_bytes(),
        "new_certificate": new.to_bytes(),
        "time_us": s.a.conductor.clock(),
    }
    message = t.sign_message("countersign", body, s.owner_b.agent_key())
    with pytest.raises(m.EnrollmentError, match="offered that device to nobody"):
        m.read_reply(await s.a.transfers._handle(PeerId("x"), message))
    await _offer(s)
    stranger = OwnerAccount(os.urandom(32))
    other = device_certificate(stranger, 1, now_us=s.b.conductor.clock())
    body["new_certificate"] = other.to_bytes()
    message = t.sign_message("countersign", body, stranger.agent_key())
    with pytest.raises(m.EnrollmentError, match="offered to another owner"):
        m.read_reply(await s.a.transfers._handle(PeerId("x"), message))
    body["new_certificate"] = new.to_bytes()  # offered, but not at the device's latest action
    message = t.sign_message("countersign", body, s.owner_b.agent_key())
    with pytest.raises(m.EnrollmentError, match="latest action"):
        m.read_reply(await s.a.transfers._handle(PeerId("x"), message))
    [a_device] = _devices(s.a)
    assert "transferred" not in a_device


def _provision(
    s: Setup, transfer: TransferCertificate, new_cert: bytes, signer: KeyPair, index: int = 1
) -> bytes:
    payload = encode(
        {
            "seed": s.owner_b.device_seed(index),
            "index": index,
            "certificate": new_cert,
            "transfer": transfer.to_bytes(),
        }
    )
    body = {
        "device": bytes(s.old),
        "sealed": m.seal_to(s.old, payload),
        "time_us": s.device.conductor.clock(),
    }
    return t.sign_message("provision", body, signer)


async def _refused_by_device(s: Setup, message: bytes, match: str) -> None:
    with pytest.raises(m.EnrollmentError, match=match):
        m.read_reply(await s.device.transfers._handle(PeerId("x"), message))
    assert not s.device.transfers.adopted.is_set()
    assert s.keystore().agent_key().agent == s.old  # nothing adopted


async def test_the_device_adopts_nothing_its_owner_did_not_sign(setup: Setup) -> None:
    s = setup
    old = s.device.conductor.account
    assert isinstance(old, DeviceAccount)
    owner_a = s.a.conductor.account
    assert isinstance(owner_a, OwnerAccount)
    now = s.device.conductor.clock()
    new = device_certificate(s.owner_b, 1, now_us=now)
    unsigned = TransferCertificate.between(old.certificate, new, old_last_seq=3, issued_us=now)
    good = unsigned.signed_by_old(owner_a.authorization_key()).signed_by_new(
        s.owner_b.authorization_key()
    )
    forged_old = unsigned.signed_by_old(KeyPair(os.urandom(32))).signed_by_new(
        s.owner_b.authorization_key()
    )
    b_keys = s.owner_b.agent_key()
    await _refused_by_device(
        s, _provision(s, forged_old, new.to_bytes(), b_keys), "old owner did not sign"
    )
    revoker_only = unsigned.signed_by_old(owner_a.revocation_key()).signed_by_new(
        s.owner_b.authorization_key()
    )
    await _refused_by_device(
        s, _provision(s, revoker_only, new.to_bytes(), b_keys), "old owner did not sign"
    )
    forged_new = replace(good, new_signatures=())
    await _refused_by_device(
        s, _provision(s, forged_new, new.to_bytes(), b_keys), "new owner did not sign"
    )
    # A certificate for another key than the seed's agent 0.
    await _refused_by_device(
        s, _provision(s, good, new.to_bytes(), b_keys, index=2), "another key than this seed"
    )
    # Properly signed, but sent by someone other than the new owner agent.
    await _refused_by_device(
        s, _provision(s, good, new.to_bytes(), KeyPair(os.urandom(32))), "only the new owner"
    )
    # Sealed to another key: the device cannot read it.
    body = {
        "device": bytes(s.old),
        "sealed": m.seal_to(b_keys.agent, b"x"),
        "time_us": now,
    }
    await _refused_by_device(s, t.sign_message("provision", body, b_keys), "not sealed")
    # For another device.
    body = {"device": bytes(b_keys.agent), "sealed": b"", "time_us": now}
    await _refused_by_device(s, t.sign_message("provision", body, b_keys), "another device")
    # Stale.
    message = _provision(s, good, new.to_bytes(), b_keys)
    stale = {"device": bytes(s.old), "sealed": b"", "time_us": now - 3600 * 10**6}
    await _refused_by_device(s, t.sign_message("provision", stale, b_keys), "stale")
    # The honest one is adopted.
    reply = m.read_reply(await s.device.transfers._handle(PeerId("x"), message))
    assert isinstance(reply, bytes)
    assert t.open_message(reply, expect="adopted").signer == new.device
    assert s.keystore().agent_key().agent == new.device


async def test_an_enrollment_message_is_not_a_transfer_message(setup: Setup) -> None:
    s = setup
    body = {"device": bytes(s.old), "time_us": s.device.conductor.clock()}
    message = m.sign_message("provision", body, s.owner_b.agent_key())
    await _refused_by_device(s, message, "does not verify")  # another context


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_garbage_is_a_transfer_error(data: bytes) -> None:
    try:
        t.open_message(data, expect=("offer", "countersign", "provision"))
    except t.TransferError:
        return
    pytest.fail("garbage passed for a signed message")


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_never_passes(position: int, flip: int) -> None:
    keys = KeyPair(bytes(32))
    data = bytearray(t.sign_message("offer", {"to": b"x", "time_us": 1}, keys))
    data[position % len(data)] ^= flip
    with pytest.raises(t.TransferError):
        t.open_message(bytes(data), expect="offer")
