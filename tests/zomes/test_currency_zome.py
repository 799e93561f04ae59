"""The currency zome on real cells: countersigned transfers on both chains, and every refusal."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import pytest

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import Value, encode
from ioe.engine.cell import CallContext, Cell, Scratch
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response, commit_session
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, OpType, Unresolved, Valid
from ioe.engine.schema import to_value
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ChainError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.sim.in_process import commit_in_process
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.currency import api
from ioe.zomes.currency.entries import Kind, Provenance, Source, Transfer
from ioe.zomes.currency.ledger import START, Position
from ioe.zomes.currency.value import Verification
from ioe.zomes.profile.entries import Profile

NOW = 1_700_000_000_000_000
KEYS = [KeyPair(bytes([i + 40]) * 32) for i in range(4)]
ALICE, BOB, CAROL, RESERVE = (k.agent for k in KEYS)
SOLAR = Provenance(
    3_000, Source.SOLAR, True, "au/nsw/newtown/king-st/12", Verification.METER_ATTESTED
)
_sessions = itertools.count(1)


def new_cells(properties: Mapping[str, Value] | None = None) -> tuple[DnaDef, list[Cell]]:
    dna = core_dna(properties)
    db = MemoryDatabase()
    cells = [Cell(dna, keys, db.chain(dna.hash, keys.agent)) for keys in KEYS]
    for cell in cells:
        cell.genesis(membrane_proof_for(cell.keys), now_us=NOW)
    return dna, cells


def head_of(cell: Cell) -> Position:
    position: Position = cell.call("currency", "ledger_head", None, now_us=NOW)
    return position


def prepare(spender: Cell, receiver: Cell, amount_mc: int, **extra: object) -> Transfer:
    payload = {"to": receiver.agent, "amount_mc": amount_mc, "receiver_head": head_of(receiver)}
    transfer: Transfer = spender.call("currency", "prepare_payment", payload | extra, now_us=NOW)
    return transfer


def session_set(
    transfer: Transfer, parties: list[Cell], dna: DnaDef, when: int = NOW + 1
) -> CountersignedEntry:
    """The signed set for ``transfer`` between ``parties`` (no policy asked: tests forge)."""
    entry_type, _ = dna.entry_type_for(Transfer)
    preflight = Preflight(
        session_id=next(_sessions).to_bytes(16, "big"),
        dna_hash=dna.hash,
        parties=tuple(c.agent for c in parties),
        witness=None,
        entry_zome=entry_type.zome_index,
        entry_index=entry_type.entry_index,
        entry=encode(to_value(transfer)),
        session_time_us=when,
        expires_us=when + 10_000_000,
    )
    responses = []
    for cell in parties:
        head = cell.head()
        assert head is not None
        responses.append(Response.sign(cell.keys, preflight, head))
    return CountersignedEntry(preflight, tuple(responses))


def pay(spender: Cell, receiver: Cell, amount_mc: int, **extra: object) -> tuple[ActionHash, ...]:
    transfer = prepare(spender, receiver, amount_mc, **extra)
    session = next(_sessions).to_bytes(16, "big")
    return commit_in_process(spender, receiver, transfer, session_id=session, now_us=NOW + 1)


def refused_by_both(transfer: Transfer, spender: Cell, receiver: Cell, dna: DnaDef, match: str):
    """Neither party can commit ``transfer`` (each party's own validation refuses it)."""
    entry = session_set(transfer, [spender, receiver], dna)
    for cell in (spender, receiver):
        with pytest.raises(ValidationError, match=match):
            commit_session(cell, entry)


# ------------------------------------------------------------------------------- happy path


def test_a_payment_is_on_both_chains_and_every_authority_accepts_it() -> None:
    dna, (alice, bob, _, _) = new_cells()
    spent, received = pay(alice, bob, 1_500, kind="transfer", provenance=SOLAR, memo="3 kWh")
    assert alice.call("currency", "balance", None, now_us=NOW).balance_mc == -1_500
    balance = bob.call("currency", "balance", None, now_us=NOW)
    assert (balance.balance_mc, balance.credit_limit_mc, balance.available_mc) == (
        1_500,
        100_000,
        101_500,
    )
    assert (balance.name, balance.symbol, balance.previous) == (
        "Community Power Credit",
        "CPC",
        received,
    )
    [paid] = alice.call("currency", "history", None, now_us=NOW)
    [got] = bob.call("currency", "history", None, now_us=NOW)
    assert (paid.delta_mc, paid.counterparty, paid.balance_mc) == (-1_500, BOB, -1_500)
    assert (got.delta_mc, got.counterparty, got.balance_mc) == (1_500, ALICE, 1_500)
    assert got.provenance == paid.provenance == SOLAR and got.memo == "3 kWh"
    assert got.kind is Kind.TRANSFER
    for cell, action in ((alice, spent), (bob, received)):
        record = cell.get(action)
        assert record is not None
        host = SourceHost(dna, cell.store)
        for op in publishable_ops(record):
            assert isinstance(validate_op(op, dna, host), Valid), op.op_type
        verifier = ChainVerifier(dna, app_host=host)
        for stored in cell.query():
            verifier.feed(stored)
    assert alice.get(spent).entry == bob.get(received).entry  # type: ignore[union-attr]


def test_balances_follow_a_chain_of_payments_and_the_units_come_from_the_dna() -> None:
    properties: dict[str, Value] = {"currency": {"name": "Newtown Watt", "symbol": "NWT"}}
    _, (alice, bob, carol, _) = new_cells(properties)
    pay(alice, bob, 700)
    pay(bob, carol, 200, kind="donation")
    pay(carol, alice, 50)
    balances = [
        c.call("currency", "balance", None, now_us=NOW).balance_mc for c in (alice, bob, carol)
    ]
    assert balances == [-650, 500, 150] and sum(balances) == 0
    assert alice.call("currency", "currency", None, now_us=NOW) == {
        "name": "Newtown Watt",
        "symbol": "NWT",
    }
    assert [h.delta_mc for h in bob.call("currency", "history", None, now_us=NOW)] == [700, -200]


def test_provenance_given_as_a_map_is_parsed_and_clean_follows_from_the_source() -> None:
    _, (alice, bob, _, _) = new_cells()
    given = {
        "energy_wh": 3_000,
        "source": "solar",
        "origin_zone": SOLAR.origin_zone,
        "trust": "meter_attested",
    }
    assert prepare(alice, bob, 10, kind="donation", provenance=given).provenance == SOLAR
    with pytest.raises(ZomeCallError, match="declared"):
        prepare(alice, bob, 10, kind="donation", provenance=given | {"source": "battery"})
    battery = prepare(
        alice, bob, 10, kind="donation", provenance=given | {"source": "battery", "clean": False}
    )
    assert battery.provenance is not None and not battery.provenance.clean


def test_the_credit_limit_depends_on_the_device_type_in_the_dna_properties() -> None:
    properties: dict[str, Value] = {
        "currency": {
            "credit_limits": {"default_mc": 1_000, "by_device_type": {"generator": 5_000}},
            "device_types": {ALICE.to_text(): "generator", CAROL.to_text(): "storage"},
        }
    }
    _, (alice, bob, carol, _) = new_cells(properties)
    pay(alice, bob, 5_000)  # a generator: 5 credits
    with pytest.raises(ZomeCallError, match="credit limit"):
        prepare(bob, carol, 1_001 + 5_000)  # bob has the default (1 credit) over his 5
    pay(bob, carol, 6_000)
    with pytest.raises(ZomeCallError, match="credit limit"):
        prepare(carol, alice, 206_001)  # storage: 200 credits by default, over 6 received
    pay(carol, alice, 206_000)
    assert carol.call("currency", "balance", None, now_us=NOW).credit_limit_mc == 200_000


# -------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("amount", [0, -5])
def test_a_zero_or_negative_amount_is_refused(amount: int) -> None:
    dna, (alice, bob, _, _) = new_cells()
    with pytest.raises(ZomeCallError, match="amount"):
        prepare(alice, bob, amount)
    good = prepare(alice, bob, 10)
    bad = dataclasses.replace(
        good,
        amount_mc=amount,
        spender=dataclasses.replace(good.spender, balance_mc=-amount),
        receiver=dataclasses.replace(good.receiver, balance_mc=amount),
    )
    refused_by_both(bad, alice, bob, dna, "amount")


def test_an_over_limit_spend_is_refused_by_the_payer_the_payee_and_both_chains() -> None:
    dna, (alice, bob, _, _) = new_cells()
    pay(alice, bob, 60_000)
    with pytest.raises(ZomeCallError, match="credit limit"):
        prepare(alice, bob, 40_001)
    over = dataclasses.replace(prepare(alice, bob, 40_000), amount_mc=40_001)
    over = dataclasses.replace(
        over,
        spender=dataclasses.replace(over.spender, balance_mc=-100_001),
        receiver=dataclasses.replace(over.receiver, balance_mc=100_001),
    )
    assert "credit limit" in (bob.call("currency", "accept_payment", over, now_us=NOW) or "")
    refused_by_both(over, alice, bob, dna, "credit limit")
    with pytest.raises(ZomeCallError, match="credit limit"):
        commit_in_process(alice, bob, over, session_id=b"\x09" * 16, now_us=NOW + 1)
    pay(alice, bob, 40_000)  # exactly at the limit is fine
    assert alice.call("currency", "balance", None, now_us=NOW).available_mc == 0


@pytest.mark.parametrize("side", ["spender", "receiver"])
def test_a_resulting_balance_that_does_not_follow_is_refused(side: str) -> None:
    dna, (alice, bob, _, _) = new_cells()
    good = prepare(alice, bob, 100)
    party = getattr(good, side)
    bad = dataclasses.replace(
        good, **{side: dataclasses.replace(party, balance_mc=party.balance_mc + 1)}
    )
    refused_by_both(bad, alice, bob, dna, f"the {side}: the resulting balance")


def test_a_previous_balance_that_is_not_the_chain_s_is_refused_by_that_party() -> None:
    dna, (alice, bob, _, _) = new_cells()
    pay(bob, alice, 500)
    good = prepare(alice, bob, 100)  # alice: 500 → 400
    assert good.spender.previous_balance_mc == 500
    made_up = dataclasses.replace(
        good, spender=dataclasses.replace(good.spender, previous_balance_mc=900, balance_mc=800)
    )
    entry = session_set(made_up, [alice, bob], dna)
    with pytest.raises(ValidationError, match="previous balance"):
        commit_session(alice, entry)
    commit_session(bob, entry)  # bob's side is right: his own record is valid


def test_a_first_transfer_starts_from_zero() -> None:
    dna, (alice, bob, _, _) = new_cells()
    good = prepare(alice, bob, 100)
    bad = dataclasses.replace(
        good, spender=dataclasses.replace(good.spender, previous_balance_mc=1_000, balance_mc=900)
    )
    refused_by_both(bad, alice, bob, dna, "zero balance")


def test_a_replayed_transfer_is_refused() -> None:
    dna, (alice, bob, _, _) = new_cells()
    transfer = prepare(alice, bob, 300)
    entry = session_set(transfer, [alice, bob], dna)
    commit_session(alice, entry)
    commit_session(bob, entry)
    # The same set again: the chains have moved past the heads it was signed at.
    for cell in (alice, bob):
        with pytest.raises(ChainError, match="moved"):
            commit_session(cell, entry)
    # The same transfer in a new session: its previous transfers are no longer the latest.
    again = session_set(transfer, [alice, bob], dna, when=NOW + 5)
    for cell in (alice, bob):
        with pytest.raises(ValidationError, match="not the agent's latest"):
            commit_session(cell, again)
    assert bob.call("currency", "accept_payment", transfer, now_us=NOW) is not None
    assert [h.balance_mc for h in bob.call("currency", "history", None, now_us=NOW)] == [300]


def test_a_previous_transfer_that_is_not_the_latest_is_refused() -> None:
    dna, (alice, bob, _, _) = new_cells()
    first, _ = pay(alice, bob, 100)
    pay(alice, bob, 100)
    stale = prepare(alice, bob, 100)
    stale = dataclasses.replace(stale, spender=dataclasses.replace(stale.spender, previous=first))
    entry = session_set(stale, [alice, bob], dna)
    with pytest.raises(ValidationError, match="not the agent's latest"):
        commit_session(alice, entry)
    invented = prepare(alice, bob, 100)
    unknown = ActionHash(bytes(32))
    invented = dataclasses.replace(
        invented, receiver=dataclasses.replace(invented.receiver, previous=unknown)
    )
    with pytest.raises(ValidationError, match="not the agent's latest"):
        commit_session(bob, session_set(invented, [alice, bob], dna))


def test_a_stale_receiver_head_is_refused_by_the_receiver() -> None:
    _, (alice, bob, carol, _) = new_cells()
    transfer = prepare(alice, bob, 100)
    pay(carol, bob, 5)  # bob moves on before alice's session
    reason = bob.call("currency", "accept_payment", transfer, now_us=NOW)
    assert reason is not None and "latest" in reason
    with pytest.raises(ZomeCallError, match="receiver refuses"):
        commit_in_process(alice, bob, transfer, session_id=b"\x07" * 16, now_us=NOW + 1)
    assert alice.call("currency", "balance", None, now_us=NOW).balance_mc == 0


def test_forged_counterparties_are_refused() -> None:
    dna, (alice, bob, carol, _) = new_cells()
    transfer = prepare(alice, bob, 100)
    # Alice and Carol sign a transfer that names Bob as the receiver.
    forged = session_set(transfer, [alice, carol], dna)
    with pytest.raises(ValidationError, match="parties"):
        commit_session(alice, forged)
    with pytest.raises(ValidationError, match="parties"):
        commit_session(carol, forged)
    # A third party in the session is refused too.
    crowd = session_set(transfer, [alice, bob, carol], dna)
    for cell in (alice, bob):
        with pytest.raises(ValidationError, match="parties"):
            commit_session(cell, crowd)
    reason = api.policy(carol, crowd.preflight, transfer)
    assert reason is not None and "parties" in reason
    assert "not a party" in (carol.call("currency", "accept_payment", transfer, now_us=NOW) or "")


def test_an_agent_cannot_pay_itself() -> None:
    dna, (alice, bob, _, _) = new_cells()
    with pytest.raises(ZomeCallError, match="itself"):
        alice.call(
            "currency",
            "prepare_payment",
            {"to": ALICE, "amount_mc": 1, "receiver_head": START},
            now_us=NOW,
        )
    good = prepare(alice, bob, 10)
    selfish = dataclasses.replace(good, receiver=dataclasses.replace(good.receiver, agent=ALICE))
    with pytest.raises(ValidationError, match="itself"):
        commit_session(alice, session_set(selfish, [alice, bob], dna))


def test_a_transfer_committed_without_countersigning_is_refused() -> None:
    _, (alice, bob, _, _) = new_cells()
    transfer = prepare(alice, bob, 10)

    def write(ctx: CallContext) -> ActionHash:
        return ctx.create(transfer)

    with pytest.raises(ValidationError, match="countersigned"):
        alice.session_commit(write, now_us=NOW + 1)


BAD_PROVENANCE = {
    "solar energy is clean": dataclasses.replace(SOLAR, clean=False),
    "coal energy is not clean": dataclasses.replace(SOLAR, source=Source.COAL),
    "zone": dataclasses.replace(SOLAR, origin_zone="Not A Zone"),
    "energy_wh > 0": dataclasses.replace(SOLAR, energy_wh=0),
    "integer of Wh": dataclasses.replace(SOLAR, energy_wh=-1),
}


@pytest.mark.parametrize("reason", sorted(BAD_PROVENANCE))
def test_a_bad_provenance_is_refused(reason: str) -> None:
    dna, (alice, bob, _, _) = new_cells()
    bad = dataclasses.replace(
        prepare(alice, bob, 10), kind=Kind.TRADE, provenance=BAD_PROVENANCE[reason]
    )
    with pytest.raises(ZomeCallError, match=reason):
        prepare(alice, bob, 10, kind="trade", provenance=BAD_PROVENANCE[reason])
    refused_by_both(bad, alice, bob, dna, reason)


def test_declared_sources_may_be_clean_or_not() -> None:
    _, (alice, bob, _, _) = new_cells()
    for source, clean in itertools.product((Source.BATTERY, Source.GRID_MIX), (True, False)):
        pay(
            alice,
            bob,
            10,
            kind="donation",
            provenance=dataclasses.replace(SOLAR, source=source, clean=clean),
        )
    assert len(bob.call("currency", "history", None, now_us=NOW)) == 4


@pytest.mark.parametrize("kind", ["trade", "reward"])
def test_trades_and_rewards_carry_a_provenance(kind: str) -> None:
    dna, (alice, bob, _, _) = new_cells()
    with pytest.raises(ZomeCallError, match="provenance"):
        prepare(alice, bob, 10, kind=kind)
    bad = dataclasses.replace(prepare(alice, bob, 10), kind=Kind(kind))
    refused_by_both(bad, alice, bob, dna, "provenance")


@pytest.mark.parametrize("kind", ["fee", "donation", "transfer"])
def test_credit_kinds_need_no_provenance_but_may_carry_one(kind: str) -> None:
    _, (alice, bob, _, _) = new_cells()
    pay(alice, bob, 10, kind=kind)
    pay(alice, bob, 10, kind=kind, provenance=SOLAR)
    assert [h.provenance for h in bob.call("currency", "history", None, now_us=NOW)] == [
        None,
        SOLAR,
    ]


def test_cash_in_and_cash_out_go_through_a_reserve_account() -> None:
    properties: dict[str, Value] = {
        "currency": {
            "credit_limits": {"by_device_type": {"reserve": 10_000_000}},
            "device_types": {RESERVE.to_text(): "reserve"},
            "oracles": [CAROL.to_text()],
        }
    }
    dna, (alice, bob, carol, reserve) = new_cells(properties)
    with pytest.raises(ZomeCallError, match="reserve account pays out cash_in"):
        prepare(alice, bob, 10, kind="cash_in")
    with pytest.raises(ZomeCallError, match="reserve account receives cash_out"):
        prepare(alice, bob, 10, kind="cash_out")
    price = carol.call(
        "currency",
        "publish_price",
        {"zone": "au/nsw", "start_us": NOW - 1, "end_us": NOW + 10**9, "price_cents": 20_000},
        now_us=NOW,
    )
    # 200 AUD/MWh: 1000 AUD buys 5 MWh, 5000 credits; 2 AUD are 10 credits.
    pay(reserve, alice, 5_000_000, kind="cash_in", terms={"cites": price, "money_cents": 100_000})
    pay(alice, reserve, 10_000, kind="cash_out", terms={"cites": price, "money_cents": 200})
    assert reserve.call("currency", "balance", None, now_us=NOW).balance_mc == -4_990_000
    bad = dataclasses.replace(prepare(alice, bob, 10), kind=Kind.CASH_IN)
    refused_by_both(bad, alice, bob, dna, "cash_in")


def test_without_configuration_a_reserve_cannot_issue() -> None:
    properties: dict[str, Value] = {"currency": {"device_types": {RESERVE.to_text(): "reserve"}}}
    _, (alice, _, _, reserve) = new_cells(properties)
    with pytest.raises(ZomeCallError, match="credit limit of -0"):
        prepare(reserve, alice, 1, kind="cash_in")


def test_a_long_memo_is_refused() -> None:
    dna, (alice, bob, _, _) = new_cells()
    with pytest.raises(ZomeCallError, match="memo"):
        prepare(alice, bob, 10, memo="x" * 257)
    bad = dataclasses.replace(prepare(alice, bob, 10), memo="x" * 257)
    refused_by_both(bad, alice, bob, dna, "memo")


def test_broken_currency_properties_refuse_every_transfer() -> None:
    properties: dict[str, Value] = {"currency": {"credit_limits": {"default_mc": -1}}}
    dna, (alice, bob, _, _) = new_cells(properties)
    with pytest.raises(ZomeCallError, match="default_mc"):
        alice.call("currency", "balance", None, now_us=NOW)
    _, (ok_alice, ok_bob, _, _) = new_cells()
    transfer = prepare(ok_alice, ok_bob, 10)
    refused_by_both(transfer, alice, bob, dna, "default_mc")


def test_an_authority_without_the_author_s_chain_defers_its_verdict() -> None:
    dna, (alice, bob, _, _) = new_cells()
    spent, _ = pay(alice, bob, 10)
    record = alice.get(spent)
    assert record is not None
    [store_record] = [op for op in publishable_ops(record) if op.op_type is OpType.STORE_RECORD]
    elsewhere = MemoryDatabase().chain(dna.hash, bob.agent)
    outcome = validate_op(store_record, dna, SourceHost(dna, elsewhere))
    assert isinstance(outcome, Unresolved)
    assert isinstance(validate_op(store_record, dna, SourceHost(dna, alice.store)), Valid)


def test_an_authority_refuses_a_forged_record_it_is_given() -> None:
    """A record that skipped the author's checks (hand-built) is refused by an authority."""
    dna, (alice, bob, _, _) = new_cells()
    good = prepare(alice, bob, 100)
    bad = dataclasses.replace(good, spender=dataclasses.replace(good.spender, balance_mc=0))
    entry = session_set(bad, [alice, bob], dna)
    with pytest.raises(ValidationError):
        commit_session(alice, entry)
    # Build Alice's record as she would have, without her validation.
    scratch = Scratch(alice.store)
    ctx = CallContext(alice, scratch, entry.preflight.session_time_us, alice.head())
    ctx.create(entry)
    [record] = scratch.records
    outcomes = [
        validate_op(op, dna, SourceHost(dna, alice.store)) for op in publishable_ops(record)
    ]
    store_ops = [
        o
        for o, op in zip(outcomes, publishable_ops(record), strict=True)
        if op.op_type in (OpType.STORE_RECORD, OpType.STORE_ENTRY)
    ]
    assert store_ops and all(
        isinstance(o, Invalid) and "resulting balance" in o.reason for o in store_ops
    )


def test_the_policy_has_no_say_on_other_entries() -> None:
    _, (alice, bob, _, _) = new_cells()
    entry = session_set(prepare(alice, bob, 1), [alice, bob], core_dna())
    assert api.policy(bob, entry.preflight, Profile("Deal", "au/nsw")) is None
    assert api.policy(bob, entry.preflight, prepare(alice, bob, 1)) is None
