"""Who may trade: an owner agent, or a device whose enrollment certificate's policy says
``may_trade``. A device its owner enrolled with ``--no-trade``, and an agent with neither a
certificate nor an owner membership, never pays, is paid, claims energy or takes part in a
consumption receipt: its own record of such an entry is invalid on every node, and its own zome
functions say so before anything is signed.

Devices join with real enrollment certificates, on one in-memory database with the currency
kit's cast (owner agents, each with an owner membership: see ``currency_kit``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from currency_kit import HOUR, World, session_id, world
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.engine.cell import CallContext, Cell, Scratch
from ioe.engine.countersigning import CountersignedEntry, commit_session
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, OpType, Valid
from ioe.engine.validation import SourceHost
from ioe.errors import ValidationError, ZomeCallError
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import ENROLLED_DEFAULT_POLICY, EnrollmentCertificate, issue
from ioe.identity.membership import trade_problem
from ioe.sim.in_process import commit_in_process
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.vocabulary import DeviceType
from ioe.zomes.currency.entries import ConsumptionReceipt, Kind, Transfer
from ioe.zomes.currency.ledger import START, Position, next_transfer

ZONE = "au/nsw/newtown/king-st/14"
CORE = {"network": "ioe-core"}
NO_TRADE = "its enrollment does not allow trading (its owner enrolled it with --no-trade)"
OWNER = OwnerAccount.from_root_seed(bytes([9]) * 32)
KEYSET = Keyset(single_owner(OWNER.authorization_key().agent, OWNER.revocation_key().agent))


def certificate(
    device: KeyPair, *, may_trade: bool, device_type: DeviceType = DeviceType.CONSUMPTION
) -> EnrollmentCertificate:
    """The owner's certificate for ``device``: the enrolled default policy, trading or not."""
    return issue(
        keyset=KEYSET,
        owner_agent=OWNER.agent_key(),
        device=device.agent,
        device_type=device_type,
        name=str(device_type),
        zone=ZONE,
        networks=("ioe-core",),
        issued_us=1,
        serial=1,
        policy=dataclasses.replace(ENROLLED_DEFAULT_POLICY, may_trade=may_trade),
    ).signed_by(OWNER.authorization_key())


def join(w: World, name: str, keys: KeyPair, proof: bytes | None) -> Cell:
    """Add a cell to ``w`` on the same database, joined with ``proof``."""
    db = w["home"].store.db  # type: ignore[attr-defined]
    cell = Cell(w.dna, keys, db.chain(w.dna.hash, keys.agent))
    cell.genesis(proof, now_us=w.now - HOUR)
    w.cells[name] = cell
    return cell


@pytest.fixture
def w() -> World:
    """The kit's owners; the owner's plug (enrolled to trade, the default), its quiet plug
    and its quiet solar panel (both enrolled with --no-trade)."""
    w = world()
    devices = {"plug": (1, True), "quiet": (2, False), "quiet_pv": (3, False)}
    for name, (index, may_trade) in devices.items():
        keys = device_agent_key(OWNER.device_seed(index), 0)
        kind = DeviceType.GENERATOR if name == "quiet_pv" else DeviceType.CONSUMPTION
        join(w, name, keys, certificate(keys, may_trade=may_trade, device_type=kind).to_bytes())
    return w


def head(w: World, name: str) -> Position:
    position: Position = w.call(name, "ledger_head")
    return position


def unchecked(w: World, spender: str, receiver: str, amount_mc: int) -> Transfer:
    """The transfer ``spender``'s chain and ``receiver``'s head give, built without anyone's
    checks (as a node that skips its own would)."""
    return next_transfer(
        w[spender].agent,
        head(w, spender),
        w[receiver].agent,
        head(w, receiver),
        amount_mc=amount_mc,
        kind=Kind.TRANSFER,
    )


def store_verdicts(cell: Cell, entry: CountersignedEntry, w: World) -> list[Any]:
    """What an authority holding ``cell``'s chain says of ``cell``'s record of ``entry``, the
    record built as its author would have, without the author's own validation."""
    scratch = Scratch(cell.store)
    ctx = CallContext(cell, scratch, entry.preflight.session_time_us, cell.head())
    ctx.create(entry)
    [record] = scratch.records
    host = SourceHost(w.dna, cell.store)
    return [
        validate_op(op, w.dna, host)
        for op in publishable_ops(record)
        if op.op_type in (OpType.STORE_RECORD, OpType.STORE_ENTRY)
    ]


def test_a_no_trade_device_that_pays_is_refused_by_its_own_chain_and_every_authority(
    w: World,
) -> None:
    with pytest.raises(ZomeCallError) as refused:
        w.prepare("quiet", "home", amount_mc=1_000)
    assert str(refused.value) == f"this agent may not trade: {NO_TRADE}"
    entry = w.forced_set(unchecked(w, "quiet", "home", 1_000), ["quiet", "home"])
    with pytest.raises(ValidationError) as invalid:
        commit_session(w["quiet"], entry)
    assert str(invalid.value) == f"the spender may not trade: {NO_TRADE}"
    verdicts = store_verdicts(w["quiet"], entry, w)
    assert verdicts and all(
        v == Invalid(f"the spender may not trade: {NO_TRADE}") for v in verdicts
    )
    assert w.balance("quiet") == 0


def test_a_no_trade_device_is_not_paid(w: World) -> None:
    transfer = unchecked(w, "home", "quiet", 1_000)
    assert w.call("quiet", "accept_payment", transfer) == f"this agent may not trade: {NO_TRADE}"
    entry = w.forced_set(transfer, ["home", "quiet"])
    with pytest.raises(ValidationError) as invalid:
        commit_session(w["quiet"], entry)
    assert str(invalid.value) == f"the receiver may not trade: {NO_TRADE}"
    verdicts = store_verdicts(w["quiet"], entry, w)
    assert verdicts and all(
        v == Invalid(f"the receiver may not trade: {NO_TRADE}") for v in verdicts
    )


def test_owners_and_a_device_enrolled_to_trade_pay_each_other(w: World) -> None:
    spent, received = w.pay("plug", "home", amount_mc=1_500, kind="donation")
    w.pay("home", "shop", amount_mc=400)
    w.pay("shop", "plug", amount_mc=250)
    # plug: -1500 + 250; home: +1500 - 400; shop: +400 - 250
    assert [w.balance(n) for n in ("plug", "home", "shop")] == [-1_250, 1_100, 150]
    for name, action in (("plug", spent), ("home", received)):
        record = w[name].get(action)
        assert record is not None
        host = SourceHost(w.dna, w[name].store)
        assert all(
            isinstance(validate_op(op, w.dna, host), Valid) for op in publishable_ops(record)
        )


def test_an_agent_with_no_certificate_or_membership_never_trades() -> None:
    """On a DNA whose membrane admits anyone, an agent that joined with no proof is still no
    trader: the currency asks for a certificate or an owner membership itself."""
    base = world().dna
    open_door = DnaDef(
        name=base.name,
        integrity_zomes=tuple(dataclasses.replace(z, membrane=None) for z in base.integrity_zomes),
        coordinator_zomes=base.coordinator_zomes,
        properties=base.properties,
        network_seed="no membrane",
    )
    db = MemoryDatabase()
    owner_keys, bare_keys = KeyPair(bytes([61]) * 32), KeyPair(bytes([62]) * 32)
    owner = Cell(open_door, owner_keys, db.chain(open_door.hash, owner_keys.agent))
    owner.genesis(membrane_proof_for(owner_keys), now_us=1)
    bare = Cell(open_door, bare_keys, db.chain(open_door.hash, bare_keys.agent))
    bare.genesis(None, now_us=1)
    unenrolled = (
        "it is not enrolled (no membrane proof: an agent joins with an enrollment certificate"
        " or an owner membership): an unenrolled device never trades"
    )
    payload = {"to": owner.agent, "amount_mc": 10, "receiver_head": START}
    with pytest.raises(ZomeCallError, match="this agent may not trade: it is not enrolled"):
        bare.call("currency", "prepare_payment", payload, now_us=2)
    transfer = next_transfer(bare.agent, START, owner.agent, START, amount_mc=10, kind=Kind.FEE)
    with pytest.raises(ValidationError) as invalid:
        commit_in_process(bare, owner, transfer, session_id=session_id(), now_us=3)
    assert str(invalid.value) == f"the spender may not trade: {unenrolled}"


def test_a_claim_by_a_no_trade_device_is_invalid(w: World) -> None:
    generation = {
        "energy_wh": 2_000,
        "source": "solar",
        "zone": ZONE,
        "start_us": w.now - HOUR,
        "end_us": w.now,
    }
    with pytest.raises(ValidationError) as invalid:
        w.call("quiet_pv", "claim_generation", generation)
    assert str(invalid.value) == f"the claimant may not trade: {NO_TRADE}"
    reduction = {
        "avoided_wh": 400,
        "zone": ZONE,
        "start_us": w.now - 300_000_000,
        "end_us": w.now - 1,
        "price_cents": 30_000,
        "average_cents": 12_000,
    }
    with pytest.raises(ValidationError, match=r"the claimant may not trade: .*--no-trade"):
        w.call("quiet", "claim_reduction", reduction)
    assert w.call("plug", "claim_reduction", reduction) is not None  # enrolled to trade


def test_a_receipt_for_a_no_trade_consumer_is_refused(w: World) -> None:
    attestation = w.attest(w.claim("pv", 5_000))
    receipt: ConsumptionReceipt = w.call(
        "grid",
        "prepare_receipt",
        {
            "attestation": attestation,
            "consumer": w["quiet"].agent,
            "energy_wh": 1_000,
            "consumer_zone": ZONE,
        },
    )
    assert w.call("quiet", "accept_receipt", receipt) == f"this agent may not trade: {NO_TRADE}"
    entry = w.forced_set(receipt, ["grid", "quiet"])
    with pytest.raises(ValidationError) as invalid:
        commit_session(w["quiet"], entry)
    assert str(invalid.value) == f"the consumer may not trade: {NO_TRADE}"


# ------------------------------------------------------------------------- the rule itself


def test_who_may_trade_by_the_proof_it_joined_with() -> None:
    device = KeyPair(bytes([71]) * 32)
    stranger = KeyPair(bytes([72]) * 32)
    trading = certificate(device, may_trade=True).to_bytes()
    quiet = certificate(device, may_trade=False).to_bytes()
    assert trade_problem(device.agent, trading, CORE) is None
    assert trade_problem(device.agent, quiet, CORE) == NO_TRADE
    assert trade_problem(device.agent, membrane_proof_for(device), CORE) is None  # an owner
    assert trade_problem(stranger.agent, trading, CORE) == (
        "it is not enrolled (the enrollment certificate is for another agent):"
        " an unenrolled device never trades"
    )
    assert "not enrolled" in str(trade_problem(device.agent, None, CORE))
    assert "not enrolled" in str(trade_problem(device.agent, trading, {"network": "elsewhere"}))


@settings(max_examples=25, deadline=None)
@given(
    may_trade=st.booleans(),
    device_type=st.sampled_from(list(DeviceType)),
    controllers=st.lists(st.sampled_from(["owner"]), max_size=1),
)
def test_a_device_trades_exactly_when_its_certificate_says_so(
    may_trade: bool, device_type: DeviceType, controllers: list[str]
) -> None:
    device = KeyPair(bytes([73]) * 32)
    cert = issue(
        keyset=KEYSET,
        owner_agent=OWNER.agent_key(),
        device=device.agent,
        device_type=device_type,
        name="any",
        zone=ZONE,
        networks=("ioe-core",),
        issued_us=1,
        serial=1,
        policy=dataclasses.replace(
            ENROLLED_DEFAULT_POLICY, may_trade=may_trade, remote_control=tuple(controllers)
        ),
    ).signed_by(OWNER.authorization_key())
    assert (trade_problem(device.agent, cert.to_bytes(), CORE) is None) is may_trade


@settings(max_examples=50, deadline=None)
@given(junk=st.binary(max_size=300))
def test_no_made_up_proof_trades(junk: bytes) -> None:
    assert trade_problem(KeyPair(bytes([74]) * 32).agent, junk, CORE) is not None
