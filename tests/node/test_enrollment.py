"""The enrollment protocol between an owner's node and a plugged-in device on the in-memory
network: pending list and signal, forged and replayed messages, wrong codes and lockout, and a
full enrollment whose certificate passes the membrane rule (the multi-process version is
tests/net/test_net_enrollment.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ioe.conductor import KEYSTORE_FILE, Conductor
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, create_device_key_file, write_keystore
from ioe.dht.service import DhtConfig
from ioe.dnas import core_dna
from ioe.encoding import decode, encode
from ioe.engine.integrity import VALID
from ioe.identity.certificate import membrane_check
from ioe.identity.device_account import DeviceAccount
from ioe.identity.pairing import LOCKOUT_US, MAX_FAILURES, generate_code
from ioe.identity.service import enrollment
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service.enrollment import DeviceEnrollment, OwnerEnrollment, PlugIn
from ioe.net.interface import PeerId
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.vocabulary import NodeType

pytestmark = pytest.mark.anyio
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)
CODE = generate_code(b"\x01\x02\x03\x04\x05\x06\x07")
WRONG = generate_code(b"\x07\x06\x05\x04\x03\x02\x01")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Setup:
    owner: Node
    device: Node
    owner_role: OwnerEnrollment
    device_role: DeviceEnrollment
    device_dir: Path
    unlock: Unlock


async def eventually(check: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setattr(enrollment, "REQUEST_INTERVAL_S", 0.05)
    hub = MemoryHub()
    conductors = {}
    for name in ("owner", "device"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductors[name], _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
    # The owner is on a network of its own: the devices it enrolls must join that one.
    conductors["owner"].use_network({"network_seed": "enrollment tests", "properties": {}})
    unlock = Unlock(key_file=tmp_path / "device.key")
    device_dir = tmp_path / "device"

    def persist(account: DeviceAccount) -> None:
        write_keystore(device_dir / KEYSTORE_FILE, account.to_secrets(), unlock, overwrite=True)

    owner_role = OwnerEnrollment()
    device_role = DeviceEnrollment(PlugIn("Kettle", "consumption", "au/nsw", CODE), persist)
    owner = Node(conductors["owner"], NodeConfig(dht=FAST), network=MemoryNetwork(hub))
    device = Node(
        conductors["device"],
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub),
        enrollment=device_role,
    )
    owner.enrollment = owner_role
    await owner.start()
    await device.start()
    await device.network.connect(owner.network.listen_addrs()[0])
    try:
        yield Setup(owner, device, owner_role, device_role, device_dir, unlock)
    finally:
        for node in (device, owner):
            await node.close()
            node.conductor.close()


def _device_key(s: Setup) -> str:
    return s.device.conductor.owner_cell.agent.to_text()


async def _pending(s: Setup) -> None:
    await eventually(lambda: s.device.conductor.owner_cell.agent in s.owner_role.pending)


async def test_request_is_listed_pending_with_a_signal(setup: Setup) -> None:
    async with setup.owner.signals.listen() as listener:
        await _pending(setup)
        for _ in range(10):  # other events share the stream (a member's presence)
            event = await asyncio.wait_for(listener.next(), 5)
            if event["type"] != "presence":
                break
    assert event["type"] == "enrollment_pending"
    assert event["device_type"] == "consumption"
    assert event["device"] == _device_key(setup)
    assert setup.owner_role.pending_list() == [
        {"device": _device_key(setup), "name": "Kettle", "type": "consumption", "zone": "au/nsw"}
    ]


async def test_a_device_that_stopped_asking_is_no_longer_pending(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug that was stopped (or enrolled by someone else) drops out of the list once it has
    not asked for PENDING_FORGET_S, instead of waiting there until the owner's node restarts."""
    await _pending(setup)
    later = setup.owner.conductor.clock() + int(enrollment.PENDING_FORGET_S * 1_000_000) + 1
    monkeypatch.setattr(setup.owner_role, "_now", lambda: later)
    assert setup.owner_role.pending_list() == []
    assert setup.device.conductor.owner_cell.agent not in setup.owner_role.pending


async def test_forged_request_refused(setup: Setup) -> None:
    raw = setup.device_role.request_message()
    outer = decode(raw)
    assert isinstance(outer, dict)
    stranger = KeyPair(os.urandom(32))
    body = decode(outer["body"])  # type: ignore[arg-type]
    assert isinstance(body, dict)
    forged = encode({**outer, "body": encode({**body, "from": bytes(stranger.agent)})})
    reply = await setup.owner_role._handle(PeerId("x"), forged)
    with pytest.raises(m.EnrollmentError, match="forged"):
        m.read_reply(reply)
    flipped = encode({**outer, "sig": bytes(64)})
    with pytest.raises(m.EnrollmentError, match="forged"):
        m.read_reply(await setup.owner_role._handle(PeerId("x"), flipped))
    assert stranger.agent not in setup.owner_role.pending


async def test_stale_request_refused(setup: Setup) -> None:
    keys = setup.device.conductor.owner_cell.keys
    body = {
        "peer": "p",
        "addrs": [],
        "name": "Old",
        "type": "storage",
        "zone": None,
        "nonce": os.urandom(32),
        "time_us": setup.owner.conductor.clock() - m.MAX_SKEW_US - 1,
    }
    reply = await setup.owner_role._handle(PeerId("p"), m.sign_message("request", body, keys))
    with pytest.raises(m.EnrollmentError, match="stale"):
        m.read_reply(reply)


async def test_wrong_codes_refused_then_locked_out(setup: Setup) -> None:
    await _pending(setup)
    device = _device_key(setup)
    for left in range(MAX_FAILURES - 1, 0, -1):
        with pytest.raises(m.EnrollmentError, match=f"wrong pairing code \\({left} attempt"):
            await setup.owner_role.enroll(device, WRONG)
    with pytest.raises(m.EnrollmentError, match="locked for"):
        await setup.owner_role.enroll(device, WRONG)
    with pytest.raises(m.EnrollmentError, match="too many wrong pairing codes"):
        await setup.owner_role.enroll(device, CODE)
    state = setup.device_role.pairing_state()
    assert state.locked_until_us > setup.device.conductor.clock() + LOCKOUT_US // 2
    assert not setup.device_role.enrolled.is_set()


async def test_malformed_code_is_refused_before_contacting_the_device(setup: Setup) -> None:
    await _pending(setup)
    with pytest.raises(m.EnrollmentError, match="not a pairing code"):
        await setup.owner_role.enroll(_device_key(setup), "ABCD")
    assert setup.device_role.pairing_state().failures == 0


async def _challenge(s: Setup, owner: KeyPair) -> bytes:
    device = s.device.conductor.owner_cell.agent
    now = s.device.conductor.clock()
    msg = m.sign_message("challenge", {"device": bytes(device), "time_us": now}, owner)
    reply = m.read_reply(await s.device_role._handle(PeerId("o"), msg))
    assert isinstance(reply, dict)
    challenge = reply["challenge"]
    assert isinstance(challenge, bytes)
    return challenge


def _pair_message(s: Setup, owner: KeyPair, challenge: bytes, code: str = CODE) -> bytes:
    device = s.device.conductor.owner_cell.agent
    nonce = bytes(32)
    proof = m.pairing_proof(
        code, "owner", device=device, owner=owner.agent, challenge=challenge, owner_nonce=nonce
    )
    body = {
        "device": bytes(device),
        "challenge": challenge,
        "owner_nonce": nonce,
        "time_us": s.device.conductor.clock(),
        "proof": proof,
    }
    return m.sign_message("pair", body, owner)


async def test_replayed_pairing_refused(setup: Setup) -> None:
    owner = KeyPair(os.urandom(32))
    message = _pair_message(setup, owner, await _challenge(setup, owner))
    paired = m.read_reply(await setup.device_role._handle(PeerId("o"), message))
    assert isinstance(paired, bytes)
    assert m.open_message(paired, expect="paired").signer == setup.device.conductor.owner_cell.agent
    with pytest.raises(m.EnrollmentError, match="already used challenge"):
        m.read_reply(await setup.device_role._handle(PeerId("o"), message))
    # The code works once: a fresh challenge with the right code is refused too.
    again = _pair_message(setup, owner, await _challenge(setup, owner))
    with pytest.raises(m.EnrollmentError, match="already paired"):
        m.read_reply(await setup.device_role._handle(PeerId("o"), again))


async def test_unknown_challenge_refused(setup: Setup) -> None:
    owner = KeyPair(os.urandom(32))
    message = _pair_message(setup, owner, os.urandom(32))
    with pytest.raises(m.EnrollmentError, match="unknown, expired"):
        m.read_reply(await setup.device_role._handle(PeerId("o"), message))
    assert setup.device_role.pairing_state().failures == 0


async def test_provision_from_another_key_than_the_pairing_owner_refused(setup: Setup) -> None:
    owner, stranger = KeyPair(os.urandom(32)), KeyPair(os.urandom(32))
    message = _pair_message(setup, owner, await _challenge(setup, owner))
    m.read_reply(await setup.device_role._handle(PeerId("o"), message))
    device = setup.device.conductor.owner_cell.agent
    body = {
        "device": bytes(device),
        "owner_nonce": bytes(32),
        "sealed": m.seal_to(device, b"junk"),
        "time_us": setup.device.conductor.clock(),
    }
    provision = m.sign_message("provision", body, stranger)
    with pytest.raises(m.EnrollmentError, match="only the owner that paired"):
        m.read_reply(await setup.device_role._handle(PeerId("o"), provision))
    junk = m.sign_message("provision", body, owner)
    with pytest.raises(m.EnrollmentError, match="bad provisioning"):
        m.read_reply(await setup.device_role._handle(PeerId("o"), junk))
    assert not setup.device_role.enrolled.is_set()


def test_sealed_box_opens_only_for_its_key() -> None:
    key, other = KeyPair(os.urandom(32)), KeyPair(os.urandom(32))
    sealed = m.seal_to(key.agent, b"device seed")
    assert m.unseal(key, sealed) == b"device seed"
    with pytest.raises(m.EnrollmentError, match="not sealed to this device"):
        m.unseal(other, sealed)


async def test_enrollment_provisions_seed_and_certificate(setup: Setup) -> None:
    await _pending(setup)
    result = await setup.owner_role.enroll(_device_key(setup), CODE, private=True)
    assert setup.device_role.enrolled.is_set()
    account = setup.device_role.account
    assert account is not None
    assert result == {"agent": account.agent_key().agent.to_text(), "index": 1, "name": "Kettle"}
    owner_account = setup.owner.conductor.account
    assert account.device_seed(1) == owner_account.device_seed(1)
    cert = account.certificate
    assert cert.owner == owner_account.agent_key().agent
    assert cert.zone == "au/nsw" and cert.visibility.value == "private"
    assert cert.policy.may_trade and cert.policy.remote_control == ("owner",)
    assert membrane_check(cert.device, cert.to_bytes(), {"network": "ioe-core"}) is VALID
    assert setup.owner_role.pending_list() == []
    [record] = setup.owner_role.devices()
    assert record["agent"] == result["agent"] and record["index"] == 1
    # The keystore now holds the device account; reopening joins the core DNA with the proof.
    with Conductor.open(setup.device_dir, setup.unlock) as reopened:
        assert isinstance(reopened.account, DeviceAccount)
        assert reopened.owner_cell.agent == cert.device
        assert reopened.owner_agent == cert.owner
        assert [c.agent for c in reopened.cells()] == [cert.device]
        assert reopened.core_dna.hash == setup.owner.conductor.core_dna.hash
        assert reopened.core_dna.hash != core_dna().hash  # the owner's network, not the default


async def test_an_owner_enrolls_a_device_that_never_trades(setup: Setup) -> None:
    await _pending(setup)
    await setup.owner_role.enroll(_device_key(setup), CODE, trade=False)
    account = setup.device_role.account
    assert account is not None
    policy = account.certificate.policy
    assert not policy.may_trade
    assert policy.remote_control == ("owner",) and policy.grid_safety and policy.reports


async def test_enrolled_device_forwards_requests_to_its_owner(setup: Setup, tmp_path: Path) -> None:
    """The proxy look-up: a new device reaches only an enrolled device, which forwards its
    request to the owner's node; the owner can then enroll it directly."""
    hub_net = setup.owner.network
    assert isinstance(hub_net, MemoryNetwork)
    made = []
    for name in ("relay", "newcomer"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
        made.append(conductor)
    relay_conductor, new_conductor = made
    relay_conductor.db.put_setting(enrollment.OWNER_PEER_SETTING, str(setup.owner.network.peer_id))
    relay = Node(
        relay_conductor,
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub_net.hub),
        enrollment=enrollment.EnrolledDeviceRole(NodeType.MONITOR),
    )
    code = generate_code(os.urandom(7))
    newcomer_role = DeviceEnrollment(PlugIn("Meter", "monitor", None, code), lambda _: None)
    newcomer = Node(
        new_conductor,
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub_net.hub),
        enrollment=newcomer_role,
    )
    try:
        await relay.start()
        await newcomer.start()
        await relay.network.connect(setup.owner.network.listen_addrs()[0])
        await newcomer.network.connect(relay.network.listen_addrs()[0])
        agent = new_conductor.owner_cell.agent
        await eventually(lambda: agent in setup.owner_role.pending)
        assert setup.owner_role.pending[agent].peer == newcomer.network.peer_id
        result = await setup.owner_role.enroll(agent.to_text(), code)
        assert newcomer_role.enrolled.is_set()
        assert result["index"] == 1
    finally:
        for node in (newcomer, relay):
            await node.close()
            node.conductor.close()
