"""Hypothesis: random sequences of issuance (claims, attestations, receipts), trades, fees,
rewards and plain payments on real chains in one process.

A model predicts every refusal (sold-out receipts, over-limit spends, a receipt, fee or reward
settled twice, an empty pool, a fee of 0) and every amount (the value formula, the fee and
reward rules). Afterwards: balances sum to zero, nobody is below its limit, every chain
re-verifies from genesis with every app rule, and every credit traces back through the
records it cites to its provenance (a trade to an attested claim of its receiver, a fee to
its trade, a reward to its receipt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from currency_kit import ZONES, World, session_id, world
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ioe.engine.countersigning import CountersignedEntry
from ioe.engine.schema import decode_as
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ValidationError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.sim.in_process import countersign_in_process
from ioe.zomes.currency import api
from ioe.zomes.currency.entries import (
    ClaimAttestation,
    ConsumptionReceipt,
    GenerationClaim,
    Kind,
    Transfer,
)
from ioe.zomes.currency.ledger import CurrencyRules, credit_limit_mc, is_attester
from ioe.zomes.currency.value import ValueRules, Verification, factors, value_mc
from ioe.zones import boundaries_crossed

PRODUCERS = ("pv", "gas", "battery")
SOURCES = {"pv": ("solar", True), "gas": ("gas", False), "battery": ("battery", True)}
CONSUMERS = ("home", "shop")
FEES = ("distributor", "boundary", "market", "app")
FEE_PM = 25


@dataclass
class Sale:
    producer: str
    clean: bool
    zone: str
    attestation: ActionHash
    attested_wh: int
    level: Verification
    delivered_wh: int = 0


@dataclass
class Delivery:
    sale: Sale
    consumer: str
    receipt: ActionHash
    energy_wh: int
    need_index: int
    traded: bool = False
    rewarded: bool = False


@dataclass
class Trade:
    delivery: Delivery
    amount_mc: int
    paid: ActionHash
    sold: ActionHash
    fees: set[str] = field(default_factory=set)


@dataclass
class Model:
    w: World
    rules: CurrencyRules
    balances: dict[str, int]
    sales: list[Sale] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)

    def can_spend(self, name: str, amount: int) -> bool:
        limit = credit_limit_mc(self.rules, self.w[name].agent)
        return self.balances[name] - amount >= -limit

    def moved(self, spender: str, receiver: str, amount: int) -> None:
        self.balances[spender] -= amount
        self.balances[receiver] += amount

    def refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1
        event(f"refused: {why}")


def do_claim(m: Model, producer: str, claimed: int, attest_pm: int, substation: bool) -> None:
    source, clean = SOURCES[producer]
    claim = m.w.claim(producer, claimed, source, clean=clean)
    attested = max(1, claimed * attest_pm // 1000)
    level = "substation_attested" if substation else "meter_attested"
    attestation = m.w.attest(claim, energy_wh=attested, level=level, fee_pm=FEE_PM)
    m.sales.append(
        Sale(producer, clean, ZONES[producer], attestation, attested, Verification[level.upper()])
    )


def do_deliver(m: Model, pick: int, consumer: str, energy: int, need: int) -> None:
    if not m.sales:
        return
    sale = m.sales[pick % len(m.sales)]
    if energy > sale.attested_wh:
        try:
            m.w.receipt(sale.attestation, consumer, energy, need)
        except ZomeCallError as exc:
            assert "exceeds the attested energy" in str(exc)
            m.refuse("over attested")
            return
        raise AssertionError("a receipt above the attested energy was prepared")
    receipt = m.w.receipt(sale.attestation, consumer, energy, need)
    if sale.delivered_wh + energy > sale.attested_wh:
        try:
            countersign_in_process(
                m.w["grid"], m.w[consumer], receipt, session_id=session_id(), now_us=m.w.tick()
            )
        except ValidationError as exc:
            assert "sold out" in str(exc)
            m.refuse("sold out")
            return
        raise AssertionError("a claim was sold beyond its attested energy")
    _, received = countersign_in_process(
        m.w["grid"], m.w[consumer], receipt, session_id=session_id(), now_us=m.w.tick()
    )
    sale.delivered_wh += energy
    m.deliveries.append(Delivery(sale, consumer, received, energy, need))


def do_trade(m: Model, pick: int, reputation: int) -> None:
    if not m.deliveries:
        return
    d = m.deliveries[pick % len(m.deliveries)]
    value = value_mc(
        d.energy_wh,
        factors(
            ValueRules(),
            clean=d.sale.clean,
            producer_zone=d.sale.zone,
            consumer_zone=ZONES[d.consumer],
            need_index=d.need_index,
            verification=d.sale.level,
            reputation_pm=reputation,
        ),
    )
    if value == 0 or not m.can_spend(d.consumer, value):
        try:
            m.w.trade(d.consumer, d.sale.producer, d.receipt, reputation)
        except ZomeCallError as exc:
            assert "credit limit" in str(exc) or "amount" in str(exc)
            m.refuse("trade over limit")
            return
        raise AssertionError("an over-limit trade was prepared")
    trade = m.w.trade(d.consumer, d.sale.producer, d.receipt, reputation)
    assert trade.amount_mc == value
    if d.traded:
        try:
            m.w.commit(trade)
        except ValidationError as exc:
            assert "already settled this trade" in str(exc)
            m.refuse("receipt settled twice")
            return
        raise AssertionError("a receipt was settled twice")
    paid, sold = m.w.commit(trade)
    d.traded = True
    m.moved(d.consumer, d.sale.producer, value)
    m.trades.append(Trade(d, value, paid, sold))


def expected_fee(m: Model, t: Trade, fee: str) -> tuple[str, str, int]:
    """(payer, payee, amount) of a fee on ``t``."""
    d = t.delivery
    if fee == "distributor":
        return d.sale.producer, "grid", t.amount_mc * FEE_PM // 1000
    if fee == "boundary":
        crossed = boundaries_crossed(d.sale.zone, ZONES[d.consumer])
        return d.sale.producer, "grid", t.amount_mc * crossed * 10 // 1000
    if fee == "market":
        return d.consumer, "market", t.amount_mc * 20 // 1000
    return d.consumer, "appdev", t.amount_mc * 5 // 1000


def do_fee(m: Model, pick: int, fee: str) -> None:
    if not m.trades:
        return
    t = m.trades[pick % len(m.trades)]
    payer, payee, amount = expected_fee(m, t, fee)
    cites = t.sold if payer == t.delivery.sale.producer else t.paid
    terms = {"fee": fee, "cites": cites}
    if amount == 0 or not m.can_spend(payer, amount):
        try:
            m.w.prepare(payer, payee, kind="fee", terms=terms)
        except ZomeCallError as exc:
            assert "credit limit" in str(exc) or "amount" in str(exc)
            m.refuse("fee of 0 or over limit")
            return
        raise AssertionError("a fee of 0 or over the limit was prepared")
    transfer = m.w.prepare(payer, payee, kind="fee", terms=terms)
    assert transfer.amount_mc == amount
    if fee in t.fees:
        try:
            m.w.commit(transfer)
        except ValidationError as exc:
            assert "already settled this fee" in str(exc)
            m.refuse("fee twice")
            return
        raise AssertionError("a fee was paid twice")
    m.w.commit(transfer)
    t.fees.add(fee)
    m.moved(payer, payee, amount)


def do_reward(m: Model, pick: int) -> None:
    """The pool rewards clean consumption."""
    traded = [d for d in m.deliveries if d.traded]
    if not traded:
        return
    d = traded[pick % len(traded)]
    source, clean = SOURCES[d.sale.producer]
    provenance = {
        "energy_wh": d.energy_wh,
        "source": source,
        "clean": clean,
        "origin_zone": d.sale.zone,
        "trust": int(d.sale.level),
        "claim": _claim_of(m, d),
        "receipt": d.receipt,
    }
    terms = {"reward": "clean_consumption", "cites": d.receipt}
    amount = d.energy_wh * 50 // 1000
    reward: dict[str, Any] = {"kind": "reward", "provenance": provenance, "terms": terms}
    if not clean or amount == 0 or not m.can_spend("pool", amount):
        try:
            m.w.prepare("pool", d.consumer, **reward)
        except ZomeCallError as exc:
            assert any(s in str(exc) for s in ("clean energy", "credit limit", "amount"))
            m.refuse("reward refused")
            return
        raise AssertionError("a reward the pool cannot pay was prepared")
    transfer = m.w.prepare("pool", d.consumer, **reward)
    assert transfer.amount_mc == amount
    if d.rewarded:
        try:
            m.w.commit(transfer)
        except ValidationError as exc:
            assert "already settled this reward" in str(exc)
            m.refuse("reward twice")
            return
        raise AssertionError("a reward was paid twice")
    m.w.commit(transfer)
    d.rewarded = True
    m.moved("pool", d.consumer, amount)


def _claim_of(m: Model, d: Delivery) -> ActionHash:
    record = m.w["grid"].get(d.sale.attestation)
    assert record is not None
    attestation = m.w["grid"].entry_value(record)
    assert isinstance(attestation, ClaimAttestation)
    return attestation.claim


def do_pay(m: Model, spender: str, receiver: str, amount: int, kind: str) -> None:
    if spender == receiver or spender == "pool":
        return
    if not m.can_spend(spender, amount):
        try:
            m.w.prepare(spender, receiver, amount_mc=amount, kind=kind)
        except ZomeCallError as exc:
            assert "credit limit" in str(exc)
            m.refuse("payment over limit")
            return
        raise AssertionError("an over-limit payment was prepared")
    m.w.pay(spender, receiver, amount_mc=amount, kind=kind)
    m.moved(spender, receiver, amount)


NAMES = ("pv", "gas", "battery", "home", "shop", "funder", "grid")
operations = st.one_of(
    st.tuples(
        st.just("claim"),
        st.sampled_from(PRODUCERS),
        st.integers(1, 30_000),
        st.integers(1, 1000),
        st.booleans(),
    ),
    st.tuples(
        st.just("deliver"),
        st.integers(0, 50),
        st.sampled_from(CONSUMERS),
        st.integers(1, 30_000),
        st.integers(-1000, 1000),
    ),
    st.tuples(st.just("trade"), st.integers(0, 50), st.integers(0, 2000)),
    st.tuples(st.just("fee"), st.integers(0, 50), st.sampled_from(FEES)),
    st.tuples(st.just("reward"), st.integers(0, 50)),
    st.tuples(
        st.just("pay"),
        st.sampled_from(NAMES),
        st.sampled_from((*NAMES, "pool")),
        st.integers(1, 60_000),
        st.sampled_from(("transfer", "donation")),
    ),
)


def run(m: Model, op: tuple[Any, ...]) -> None:
    name, *args = op
    {
        "claim": do_claim,
        "deliver": do_deliver,
        "trade": do_trade,
        "fee": do_fee,
        "reward": do_reward,
        "pay": do_pay,
    }[name](m, *args)


def check_invariants(m: Model) -> None:
    w = m.w
    balances = {name: w.balance(name) for name in w.cells}
    assert balances == {name: m.balances.get(name, 0) for name in w.cells}
    assert sum(balances.values()) == 0
    for name, cell in w.cells.items():
        # What it earned: the backed credits of its history (a trade settling a receipt, a
        # fee or reward citing its basis), and its limit raised by that much history.
        earned = sum(
            item.amount_mc
            for item in w.call(name, "history")
            if item.delta_mc > 0
            and (
                (item.kind is Kind.TRADE and item.provenance and item.provenance.receipt)
                or (item.kind in (Kind.FEE, Kind.REWARD) and item.terms and item.terms.cites)
            )
        )
        limit = credit_limit_mc(m.rules, cell.agent, earned)
        assert w.call(name, "balance").credit_limit_mc == limit
        assert w.call(name, "ledger_head").earned_mc == earned
        assert balances[name] >= -limit
        verifier = ChainVerifier(w.dna, app_host=SourceHost(w.dna, cell.store))
        for record in cell.query():
            verifier.feed(record)
        for item in w.call(name, "history"):
            if item.delta_mc > 0:
                trace(m, name, item)


def _session_value(m: Model, action: ActionHash, cls: type[Any]) -> Any:
    record = next(iter(m.w.cells.values())).store.get_record(action)
    assert record is not None and record.entry is not None
    session = decode_as(CountersignedEntry, record.entry.payload)
    return decode_as(cls, session.preflight.entry)


def _plain_value(m: Model, action: ActionHash, cls: type[Any]) -> tuple[Any, Any]:
    record = next(iter(m.w.cells.values())).store.get_record(action)
    assert record is not None and record.entry is not None
    return record.action, decode_as(cls, record.entry.payload)


def trace(m: Model, name: str, item: api.HistoryItem) -> None:
    """A credit traces back through what it cites to an attested claim."""
    agent = m.w[name].agent
    if item.kind is Kind.TRADE:
        provenance = item.provenance
        assert provenance is not None and provenance.receipt is not None
        receipt = _session_value(m, provenance.receipt, ConsumptionReceipt)
        attested_by, attestation = _plain_value(m, receipt.attestation, ClaimAttestation)
        claimed_by, claim = _plain_value(m, receipt.claim, GenerationClaim)
        assert is_attester(m.rules, attested_by.author)
        assert attestation.claim == receipt.claim == provenance.claim
        assert claimed_by.author == agent
        assert (provenance.clean, provenance.origin_zone) == (claim.clean, claim.zone)
        assert provenance.energy_wh == receipt.energy_wh <= attestation.energy_wh
    elif item.kind is Kind.FEE:
        terms = item.terms
        assert terms is not None and terms.cites is not None
        trade = _session_value(m, terms.cites, Transfer)
        assert trade.kind is Kind.TRADE and item.counterparty in (
            trade.spender.agent,
            trade.receiver.agent,
        )
    elif item.kind is Kind.REWARD:
        terms = item.terms
        assert terms is not None and terms.cites is not None
        receipt = _session_value(m, terms.cites, ConsumptionReceipt)
        assert receipt.consumer == agent
    else:
        assert item.kind in (Kind.TRANSFER, Kind.DONATION)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=1, max_size=30))
def test_random_issuance_trades_fees_and_rewards_keep_the_ledger_whole(
    plan: list[tuple[Any, ...]],
) -> None:
    w = world()
    rules = CurrencyRules.from_properties(w.dna.properties)
    m = Model(w, rules, dict.fromkeys(w.cells, 0))
    # Some clean energy bought, so that later steps have something to build on.
    do_claim(m, "pv", 8_000, 900, False)
    do_deliver(m, 0, "home", 3_000, 100)
    do_trade(m, 0, 1000)
    for op in plan:
        run(m, op)
    check_invariants(m)
    fees = sum(len(t.fees) for t in m.trades)
    event(f"trades: {min(len(m.trades), 5)}+, fees paid: {min(fees, 3)}+")
