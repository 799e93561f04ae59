"""Enterprise M-of-N keysets: the pure rule (2 of 3), the signing-request messages (fuzzed), and
a portfolio node with two other officers' nodes and a device on the in-memory network: an
enrollment waits for the second approval, a refused or absent approval fails clearly, a forged
signature is not counted, and a revocation needs two approvals as well (the multi-process
version is tests/net/test_net_keyset.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.conductor import KEYSTORE_FILE, Conductor, owner_keyset
from ioe.crypto.derivation import OwnerAccount
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, create_device_key_file, write_keystore
from ioe.dht.service import DhtConfig
from ioe.encoding import decode, encode
from ioe.engine.integrity import VALID
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity.authority import AuthoritySpec, Keyset, check_authorized, valid_signers
from ioe.identity.certificate import CERTIFICATE_CONTEXT, certificate_problem, membrane_check
from ioe.identity.device_account import DeviceAccount
from ioe.identity.document import sign
from ioe.identity.pairing import generate_code
from ioe.identity.revocation import REVOCATION_CONTEXT
from ioe.identity.service import enrollment, keyset_signing
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service.enrollment import (
    DeviceEnrollment,
    EnrolledDeviceRole,
    OwnerEnrollment,
    PlugIn,
)
from ioe.identity.service.keyset import KeysetError, create_keyset, node_keyset, stored_keyset
from ioe.identity.service.keyset_signing import (
    RequestRefused,
    SigningError,
    SigningRequest,
    open_request,
    request_message,
    sign_with_keyset,
    summary,
)
from ioe.identity.service.revocations import revoke_device
from ioe.net.interface import PeerId
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.vocabulary import NodeType

pytestmark = pytest.mark.anyio
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)
CODE = generate_code(b"\x01\x02\x03\x04\x05\x06\x07")
MESSAGE = b"a certificate body"
OFFICERS = [KeyPair(bytes([i]) * 32) for i in (1, 2, 3)]
STRANGER = KeyPair(bytes([9]) * 32)
TWO_OF_THREE = AuthoritySpec.of(2, [k.agent for k in OFFICERS])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ----------------------------------------------------------------------------- the pure rule


def _sig(keys: KeyPair) -> object:
    return sign(keys, CERTIFICATE_CONTEXT, MESSAGE)


def test_two_of_three_needs_two_distinct_officers() -> None:
    one, two, _ = OFFICERS
    assert check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, [_sig(one)]) is not None
    both = [_sig(one), _sig(two)]
    assert check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, both) is None
    repeated = [_sig(one), _sig(one)]
    assert check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, repeated) is not None
    stranger = [_sig(one), _sig(STRANGER)]
    assert check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, stranger) is not None
    other_context = [_sig(one), sign(two, REVOCATION_CONTEXT, MESSAGE)]
    assert check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, other_context) is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["o0", "o1", "o2", "stranger", "bad"]), max_size=8))
def test_authorized_iff_two_distinct_valid_officers(picks: list[str]) -> None:
    signatures = []
    for pick in picks:
        if pick.startswith("o"):
            signatures.append(_sig(OFFICERS[int(pick[1])]))
        elif pick == "stranger":
            signatures.append(_sig(STRANGER))
        else:  # an officer's name on a signature of something else
            wrong = sign(OFFICERS[0], CERTIFICATE_CONTEXT, b"another body")
            signatures.append(wrong)
    distinct = {p for p in picks if p.startswith("o")}
    verdict = check_authorized(TWO_OF_THREE, MESSAGE, CERTIFICATE_CONTEXT, signatures)  # type: ignore[arg-type]
    assert (verdict is None) == (len(distinct) >= 2)


# ----------------------------------------------------------------------------- the messages


def _request(**changes: object) -> SigningRequest:
    base = SigningRequest(
        os.urandom(16),
        STRANGER.agent,
        CERTIFICATE_CONTEXT,
        MESSAGE,
        ExternalHash.of(b"keyset"),
        TWO_OF_THREE.signers,
        2,
        "enroll a kettle",
        1_000_000,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_request_round_trip_and_refusals() -> None:
    request = _request()
    assert open_request(request_message(request, STRANGER), 1_000_000) == request
    with pytest.raises(RequestRefused, match="stale"):
        open_request(request_message(request, STRANGER), 1_000_000 + 6 * 60_000_000)
    with pytest.raises(RequestRefused, match="unknown context"):
        open_request(request_message(_request(context=b"anything"), STRANGER), 1_000_000)
    outer = decode(request_message(request, STRANGER))
    assert isinstance(outer, dict)
    body = decode(outer["body"])  # type: ignore[arg-type]
    assert isinstance(body, dict)
    forged = encode({**outer, "body": encode({**body, "document": b"something else"})})
    with pytest.raises(RequestRefused, match="forged"):
        open_request(forged, 1_000_000)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_requests_never_crash(data: bytes) -> None:
    with pytest.raises(RequestRefused):
        open_request(data, 0)
    assert "document_id" in summary(CERTIFICATE_CONTEXT, data)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_fuzz_flipped_bytes_of_a_request_are_refused(position: int, flip: int) -> None:
    data = bytearray(request_message(_request(), STRANGER))
    data[position % len(data)] ^= flip or 1
    try:
        request = open_request(bytes(data), 1_000_000)
    except RequestRefused:
        return
    # A flip that still decodes must not change what was signed (e.g. CBOR re-encodings).
    assert request.document == MESSAGE and request.requester == STRANGER.agent


# ----------------------------------------------------------------------------- the nodes


@dataclass
class Portfolio:
    portfolio: Node
    officers: list[Node]  # B and C
    device: Node
    device_role: DeviceEnrollment
    device_dir: Path
    device_unlock: Unlock
    keyset: Keyset
    hub: MemoryHub


def _authz(node: Node) -> AgentPubKey:
    account = node.conductor.account
    assert isinstance(account, OwnerAccount)
    return account.authorization_key().agent


async def eventually(check: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Portfolio]:
    monkeypatch.setattr(enrollment, "REQUEST_INTERVAL_S", 0.05)
    monkeypatch.setattr(keyset_signing, "POLL_S", 0.05)
    hub = MemoryHub()
    conductors = {}
    for name in ("portfolio", "b", "c", "device"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductors[name], _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
    device_unlock = Unlock(key_file=tmp_path / "device.key")
    device_dir = tmp_path / "device"

    def persist(account: DeviceAccount) -> None:
        write_keystore(
            device_dir / KEYSTORE_FILE, account.to_secrets(), device_unlock, overwrite=True
        )

    device_role = DeviceEnrollment(PlugIn("Kettle", "consumption", "au/nsw", CODE), persist)
    nodes = {
        name: Node(conductors[name], NodeConfig(dht=FAST), network=MemoryNetwork(hub))
        for name in ("portfolio", "b", "c")
    }
    device = Node(
        conductors["device"],
        NodeConfig(dht=FAST),
        network=MemoryNetwork(hub),
        enrollment=device_role,
    )
    started = [*nodes.values(), device]
    for node in started:
        await node.start()
    portfolio = nodes["portfolio"]
    for node in (nodes["b"], nodes["c"], device):
        await node.network.connect(portfolio.network.listen_addrs()[0])
    await eventually(lambda: len(portfolio.dht_for(portfolio.conductor.owner_cell).members()) == 3)
    keyset = create_keyset(portfolio.conductor, [_authz(n) for n in nodes.values()], 2)
    try:
        yield Portfolio(
            portfolio,
            [nodes["b"], nodes["c"]],
            device,
            device_role,
            device_dir,
            device_unlock,
            keyset,
            hub,
        )
    finally:
        for node in reversed(started):
            await node.close()
            node.conductor.close()


def _role(node: Node) -> OwnerEnrollment:
    assert isinstance(node.enrollment, OwnerEnrollment)
    return node.enrollment


def _device_key(s: Portfolio) -> str:
    return s.device.conductor.owner_cell.agent.to_text()


async def _pending_device(s: Portfolio) -> None:
    await eventually(lambda: s.device.conductor.owner_cell.agent in _role(s.portfolio).pending)


def _waiting(officer: Node, kind: str) -> list[str]:
    return [
        a.id
        for a in officer.keyset_signing.approvals.values()
        if a.state == "pending" and summary(a.request.context, a.request.document)["kind"] == kind
    ]


async def _approval_id(officer: Node, kind: str = "enrollment certificate") -> str:
    await eventually(lambda: _waiting(officer, kind))
    [approval_id] = _waiting(officer, kind)
    return approval_id


async def test_create_keyset_refusals(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    create_device_key_file(key)
    conductor, _ = Conductor.init(tmp_path / "home", Unlock(key_file=key))
    try:
        account = conductor.account
        assert isinstance(account, OwnerAccount)
        assert node_keyset(conductor) == owner_keyset(account)  # a single owner by default
        a, b = OFFICERS[0].agent, OFFICERS[1].agent
        with pytest.raises(KeysetError, match="twice"):
            create_keyset(conductor, [a, a], 1)
        with pytest.raises(KeysetError, match="sigs_required"):
            create_keyset(conductor, [a, b], 3)
        with pytest.raises(KeysetError, match="owner agent"):
            create_keyset(conductor, [a, account.agent_key().agent], 1)
        assert stored_keyset(conductor) is None
        made = create_keyset(conductor, [b, a], 2)
        assert made.current == AuthoritySpec.of(2, [a, b]) and made.current.revoker is None
        assert node_keyset(conductor) == made
        with pytest.raises(KeysetError, match="already"):
            create_keyset(conductor, [a], 1)
    finally:
        conductor.close()


async def test_single_owner_signs_alone_without_asking(setup: Portfolio) -> None:
    officer = setup.officers[0]
    signatures = await sign_with_keyset(officer, CERTIFICATE_CONTEXT, MESSAGE, timeout_s=0)
    spec = node_keyset(officer.conductor).current
    assert spec.sigs_required == 1
    assert check_authorized(spec, MESSAGE, CERTIFICATE_CONTEXT, signatures) is None


async def test_enrollment_waits_for_the_second_approval(setup: Portfolio) -> None:
    await _pending_device(setup)
    officer_b = setup.officers[0]
    async with officer_b.signals.listen() as listener:
        task = asyncio.create_task(_role(setup.portfolio).enroll(_device_key(setup), CODE))
        approval_id = await _approval_id(officer_b)
        for _ in range(20):
            event = await asyncio.wait_for(listener.next(), 5)
            if event["type"] == "approval_pending":
                break
    assert event["id"] == approval_id
    assert event["document"]["kind"] == "enrollment certificate"
    assert event["document"]["name"] == "Kettle" and event["document"]["zone"] == "au/nsw"
    await asyncio.sleep(0.3)  # several polls: one signature (the portfolio's own) is not enough
    assert not task.done() and not setup.device_role.enrolled.is_set()
    officer_b.keyset_signing.decide(approval_id, True)
    result = await asyncio.wait_for(task, 10)
    assert setup.device_role.enrolled.is_set()
    account = setup.device_role.account
    assert account is not None and result["agent"] == account.agent_key().agent.to_text()
    cert = account.certificate
    assert cert.keyset == setup.keyset and cert.keyset.current.sigs_required == 2
    assert certificate_problem(cert) is None
    assert membrane_check(cert.device, cert.to_bytes(), {"network": "ioe-core"}) is VALID
    spec, body = cert.keyset.current, cert.message()
    signers = valid_signers(spec, body, CERTIFICATE_CONTEXT, cert.signatures)
    assert signers == {_authz(setup.portfolio), _authz(officer_b)}


async def test_refusals_fail_the_enrollment_before_pairing(setup: Portfolio) -> None:
    await _pending_device(setup)
    task = asyncio.create_task(_role(setup.portfolio).enroll(_device_key(setup), CODE))
    for officer in setup.officers:
        officer.keyset_signing.decide(await _approval_id(officer), False)
    with pytest.raises(m.EnrollmentError, match=r"cannot be authorized.*refused by"):
        await asyncio.wait_for(task, 10)
    assert not setup.device_role.enrolled.is_set()
    assert not setup.device_role.pairing_state().spent  # its code still works
    with pytest.raises(RequestRefused, match="already refused"):
        setup.officers[0].keyset_signing.decide(await _approval_id_any(setup.officers[0]), True)


async def _approval_id_any(officer: Node) -> str:
    [approval] = list(officer.keyset_signing.approvals.values())
    return approval.id


async def test_absent_approvals_time_out_with_a_clear_message(setup: Portfolio) -> None:
    await _pending_device(setup)
    b, c = (_authz(o).to_text() for o in setup.officers)
    with pytest.raises(m.EnrollmentError) as caught:
        await _role(setup.portfolio).enroll(_device_key(setup), CODE, timeout_s=0.3)
    text = str(caught.value)
    assert "1 of 2 required signatures; waiting for approvals from" in text
    assert b in text and c in text
    assert not setup.device_role.pairing_state().spent


async def test_a_forged_signature_is_not_counted(setup: Portfolio) -> None:
    officer_b, officer_c = setup.officers
    task = asyncio.create_task(
        sign_with_keyset(setup.portfolio, CERTIFICATE_CONTEXT, MESSAGE, timeout_s=10)
    )
    approval = officer_b.keyset_signing.approvals[await _approval_id(officer_b)]
    # B's node answers "approved" with a signature of something else: it must not count.
    approval.state, approval.signature = "approved", OFFICERS[0].sign(CERTIFICATE_CONTEXT, MESSAGE)
    await asyncio.sleep(0.3)
    assert not task.done()
    officer_c.keyset_signing.decide(await _approval_id(officer_c), True)
    signatures = await asyncio.wait_for(task, 10)
    spec = setup.keyset.current
    assert check_authorized(spec, MESSAGE, CERTIFICATE_CONTEXT, signatures) is None
    assert {s.signer for s in signatures} == {_authz(setup.portfolio), _authz(officer_c)}


async def test_only_a_forged_signature_times_out_naming_it(setup: Portfolio) -> None:
    officer_b = setup.officers[0]
    task = asyncio.create_task(
        sign_with_keyset(setup.portfolio, CERTIFICATE_CONTEXT, MESSAGE, timeout_s=1.0)
    )
    approval = officer_b.keyset_signing.approvals[await _approval_id(officer_b)]
    approval.state, approval.signature = "approved", bytes(64)
    with pytest.raises(SigningError, match="invalid signatures \\(not counted\\) from"):
        await asyncio.wait_for(task, 10)


async def test_a_request_from_a_stranger_node_names_no_key_of_this_officer(
    setup: Portfolio,
) -> None:
    officer_b = setup.officers[0]
    request = _request(time_us=officer_b.conductor.clock())  # signers: the test officers
    with pytest.raises(RequestRefused, match="not one of the signers"):
        officer_b.keyset_signing.receive(PeerId("x"), request_message(request, STRANGER))
    assert officer_b.keyset_signing.approvals == {}


async def test_revocation_needs_two_approvals(setup: Portfolio) -> None:
    await _pending_device(setup)
    officer_b, officer_c = setup.officers
    task = asyncio.create_task(_role(setup.portfolio).enroll(_device_key(setup), CODE))
    officer_b.keyset_signing.decide(await _approval_id(officer_b), True)
    result = await asyncio.wait_for(task, 10)
    await setup.device.close()
    setup.device.conductor.close()
    reopened = Conductor.open(setup.device_dir, setup.device_unlock)
    device = Node(
        reopened,
        NodeConfig(dht=FAST),
        network=MemoryNetwork(setup.hub),
        enrollment=EnrolledDeviceRole(NodeType.CONSUMPTION),
    )
    await device.start()
    try:
        await device.network.connect(setup.portfolio.network.listen_addrs()[0])
        agent = AgentPubKey.from_text(result["agent"])
        dht = setup.portfolio.dht_for(setup.portfolio.conductor.owner_cell)
        await eventually(lambda: agent in dht.members())  # a member by the enterprise certificate
        revoking = asyncio.create_task(
            revoke_device(setup.portfolio, result["agent"], everything=True, reason="stolen")
        )
        approval_id = await _approval_id(officer_c, "key revocation")
        [pending] = [a for a in officer_c.keyset_signing.pending() if a["id"] == approval_id]
        assert pending["document"]["kind"] == "key revocation"
        assert pending["document"]["revoked"] == result["agent"]
        await asyncio.sleep(0.3)
        assert not revoking.done()
        officer_c.keyset_signing.decide(approval_id, True)
        revoked = await asyncio.wait_for(revoking, 10)
        assert revoked["revoked"] == result["agent"] and revoked["last_valid_seq"] == -1
        assert dht.revocations.of(agent)
        [revocation] = dht.revocations.of(agent)
        spec = setup.keyset.current
        body = revocation.message()
        assert check_authorized(spec, body, REVOCATION_CONTEXT, revocation.signatures) is None
    finally:
        await device.close()
        reopened.close()
