"""Issuance and value on real cells in one process: the life of a token end to end, and every
refusal (unattested issuance, mispriced trades, forged attesters, over-attestation, wrong fees,
cash without an oracle's price, rewards without their basis)."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

import pytest
from currency_kit import HOUR, ZONES, World, session_id, world

from ioe.crypto.keys import KeyPair
from ioe.data import load_series
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.integrity import OpType, Unresolved, Valid
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import MissingDependencies, ValidationError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.sim.in_process import countersign_in_process
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.currency.entries import (
    ClaimAttestation,
    ConsumptionReceipt,
    Kind,
    Source,
    Terms,
)
from ioe.zomes.currency.rewards import (
    demand_reduction_reward_mc,
    need_index_from_price,
    price_cents,
)
from ioe.zomes.currency.value import ValueRules, Verification, factors, value_mc
from ioe.zones import boundaries_crossed


def attested_sale(w: World, energy_wh: int = 5_000, need_index: int = 200) -> tuple:
    claim = w.claim("pv", 10_000)
    attestation = w.attest(
        claim,
        energy_wh=9_800,
        level="substation_attested",
        path=[ZONES["pv"], "au/nsw/newtown/king-st"],
        fee_pm=30,
    )
    receipt = w.deliver(attestation, "home", energy_wh, need_index)
    return claim, attestation, receipt


# ---------------------------------------------------------------------- the life of a token


def test_the_life_of_a_token() -> None:
    """A PV device generates and claims, the grid attests, the home buys with a receipt, the
    fees are their own transfers, and both ledgers show where the energy came from."""
    w = world()
    claim, attestation, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    # The value of a kWh, recomputed here from its factors.
    expected = value_mc(
        5_000,
        factors(
            ValueRules(),
            clean=True,
            producer_zone=ZONES["pv"],
            consumer_zone=ZONES["home"],
            need_index=200,
            verification=Verification.SUBSTATION_ATTESTED,
            reputation_pm=1000,
        ),
    )
    assert trade.amount_mc == expected == 5_000 * 1050 * 1060 * 1050 // 1000**3
    paid, sold = w.commit(trade)
    # The fees, each its own transfer citing the trade.
    fees = {
        ("pv", "grid", "distributor"): trade.amount_mc * 30 // 1000,
        ("pv", "grid", "boundary"): trade.amount_mc
        * boundaries_crossed(ZONES["pv"], ZONES["home"])
        * 10
        // 1000,
        ("home", "market", "market"): trade.amount_mc * 20 // 1000,
        ("home", "appdev", "app"): trade.amount_mc * 5 // 1000,
    }
    for (spender, receiver, fee), amount in fees.items():
        cites = sold if spender == "pv" else paid
        transfer = w.prepare(spender, receiver, kind="fee", terms={"fee": fee, "cites": cites})
        assert transfer.amount_mc == amount > 0
        w.commit(transfer)
    balances = {name: w.balance(name) for name in w.cells}
    assert sum(balances.values()) == 0
    assert (
        balances["home"]
        == -trade.amount_mc - fees["home", "market", "market"] - fees["home", "appdev", "app"]
    )
    assert balances["grid"] == fees["pv", "grid", "distributor"] + fees["pv", "grid", "boundary"]
    # Both ledgers show the provenance of the trade: clean solar from a claim and a receipt.
    [bought, *_] = w.call("home", "history")
    [sale, *_] = w.call("pv", "history")
    for item in (bought, sale):
        assert item.kind is Kind.TRADE and item.amount_mc == trade.amount_mc
        provenance = item.provenance
        assert (provenance.source, provenance.clean, provenance.claim, provenance.receipt) == (
            Source.SOLAR,
            True,
            claim,
            receipt,
        )
        assert provenance.trust is Verification.SUBSTATION_ATTESTED
    assert (bought.delta_mc, sale.delta_mc) == (-trade.amount_mc, trade.amount_mc)
    # Every chain re-verifies from genesis with every app rule, and authorities accept.
    for cell in w.cells.values():
        verifier = ChainVerifier(w.dna, app_host=SourceHost(w.dna, cell.store))
        for record in cell.query():
            verifier.feed(record)
    for cell, action in ((w["home"], paid), (w["pv"], sold), (w["grid"], attestation)):
        record = cell.get(action)
        assert record is not None
        for op in publishable_ops(record):
            assert isinstance(validate_op(op, w.dna, SourceHost(w.dna, cell.store)), Valid)


def test_a_consumer_s_history_shows_clean_and_dirty_energy() -> None:
    w = world()
    _, _, solar = attested_sale(w, 1_000, 0)
    w.commit(w.trade("home", "pv", solar))
    gas_claim = w.claim("gas", 4_000, "gas")
    gas = w.deliver(w.attest(gas_claim), "home", 2_000)
    dirty = w.trade("home", "gas", gas)
    w.commit(dirty)
    history = w.call("home", "history")
    assert [(h.provenance.source, h.provenance.clean) for h in history] == [
        (Source.SOLAR, True),
        (Source.GAS, False),
    ]
    # Dirty energy is worth less (0.6), and farther away (distance 3: 0.95).
    assert dirty.amount_mc == 2_000 * 600 * 950 // 1000**2


# ---------------------------------------------------------------------------- the claims


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"energy_wh": 0}, "claimed energy"),
        ({"source": "solar", "clean": False}, "solar energy is clean"),
        ({"source": "coal", "clean": True}, "coal energy is not clean"),
        ({"zone": "Not/A Zone"}, "zone segment"),
        ({"start_us": 10**15, "end_us": 10**15}, "period ends after it starts"),
        ({"start_us": 10**17 - 1, "end_us": 10**17}, "period that has ended"),
        ({"start_us": 0}, "31 days"),
    ],
)
def test_a_bad_generation_claim_is_refused(change: dict[str, object], match: str) -> None:
    w = world()
    given: dict[str, Any] = {"energy_wh": 1_000, "source": "solar"} | change
    energy, source = given.pop("energy_wh"), given.pop("source")
    with pytest.raises(ValidationError, match=match):
        w.claim("pv", energy, source, **given)


def test_only_producers_claim_generation_and_only_their_own_readings() -> None:
    w = world()
    with pytest.raises(ValidationError, match="a distributor does not claim generation"):
        w.claim("grid", 1_000)  # type: ignore[arg-type]
    w.claim("home", 1_000)  # no device type named: allowed until identity names it
    other = w.claim("battery", 1_000, "battery", clean=True)
    with pytest.raises(ValidationError, match="own author's reading batches"):
        w.claim("pv", 1_000, telemetry=[other])


def test_a_claim_citing_readings_that_are_not_here_waits_for_them() -> None:
    w = world()
    stranger = KeyPair(b"\x07" * 32)  # a chain nobody here holds
    far = Cell(w.dna, stranger, MemoryDatabase().chain(w.dna.hash, stranger.agent))
    far.genesis(membrane_proof_for(far.keys), now_us=w.now)
    head = far.head()
    assert head is not None
    with pytest.raises(ValidationError, match="missing dependencies"):
        w.claim("pv", 1_000, telemetry=[head.hash])


# ------------------------------------------------------------------------- attestations


def test_only_a_distributor_validator_attests() -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    with pytest.raises(ValidationError, match="only a distributor validator"):
        w.attest(claim, by="home")
    w.attest(claim, by="meter")  # a monitor may


def test_an_attestation_above_the_claim_is_refused() -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    with pytest.raises(ValidationError, match="exceeds the claim"):
        w.attest(claim, energy_wh=1_001)
    w.attest(claim, energy_wh=1_000)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"level": "self_reported"}, "meter-attested or substation-attested"),
        ({"path": ["au/vic"]}, "path starts at the claim's zone"),
        ({"path": []}, "a path has 1 to"),
        ({"fee_pm": 1001}, "fee_pm"),
        ({"fee_mc": -1}, "fee_mc"),
    ],
)
def test_a_bad_attestation_is_refused(change: dict[str, object], match: str) -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    with pytest.raises(ValidationError, match=match):
        w.attest(claim, **change)


def test_a_claim_is_attested_once_by_each_distributor() -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    w.attest(claim)
    with pytest.raises(ValidationError, match="already attested"):
        w.attest(claim)
    w.attest(claim, by="meter")  # another distributor may (see docs: not enforced across)


def test_an_attestation_cites_a_claim() -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    attestation = w.attest(claim)
    with pytest.raises(ZomeCallError, match="no generation or reduction claim"):
        w.attest(attestation, by="meter")  # an attestation is no claim
    unknown = ActionHash(b"\x09" * 32)
    with pytest.raises(MissingDependencies) as missing:  # a node fetches it and asks again
        w.attest(unknown, by="meter")
    assert missing.value.deps == (unknown,)
    forged = ClaimAttestation(attestation, 10, Verification.METER_ATTESTED, (ZONES["pv"],))
    with pytest.raises(ValidationError, match="not the expected claim"):
        w.create("meter", forged)


def test_an_authority_without_the_claim_defers_its_verdict() -> None:
    w = world()
    claim = w.claim("pv", 1_000)
    attestation = w.attest(claim)
    record = w["grid"].get(attestation)
    assert record is not None
    [store] = [op for op in publishable_ops(record) if op.op_type is OpType.STORE_RECORD]
    elsewhere = MemoryDatabase().chain(w.dna.hash, w["grid"].agent)
    assert isinstance(validate_op(store, w.dna, SourceHost(w.dna, elsewhere)), Unresolved)
    assert isinstance(validate_op(store, w.dna, SourceHost(w.dna, w["grid"].store)), Valid)


# ----------------------------------------------------------------------------- receipts


def test_receipts_never_deliver_more_than_was_attested() -> None:
    w = world()
    claim = w.claim("pv", 10_000)
    attestation = w.attest(claim, energy_wh=6_000)
    with pytest.raises(ZomeCallError, match="exceeds the attested"):
        w.receipt(attestation, "home", 6_001)
    w.deliver(attestation, "home", 4_000)
    w.deliver(attestation, "shop", 2_000)
    # A third receipt: each alone fits, together they would sell the claim twice.
    receipt = w.receipt(attestation, "home", 1)
    with pytest.raises(ValidationError, match="sold out"):
        countersign_in_process(
            w["grid"], w["home"], receipt, session_id=session_id(), now_us=w.tick()
        )


def test_a_receipt_is_countersigned_by_its_attester_and_its_consumer() -> None:
    w = world()
    claim = w.claim("pv", 10_000)
    attestation = w.attest(claim)
    receipt = w.receipt(attestation, "home", 1_000)
    # Signed by someone else than the consumer: the session's parties do not match.
    w.refused_by_all(receipt, ["grid", "shop"], "not exactly distributor and consumer")
    # A distributor that did not attest the claim.
    by_meter = dataclasses.replace(receipt, distributor=w["meter"].agent)
    w.refused_by_all(by_meter, ["meter", "home"], "did not make the attestation")
    # A receipt committed on its own, not countersigned.
    with pytest.raises(ValidationError, match="only countersigned"):
        w.create("home", receipt)
    # The counterparty's policy refuses a receipt naming someone else.
    assert w.call("shop", "accept_receipt", receipt) == "this agent is not a party to the receipt"
    with pytest.raises(ZomeCallError, match="not exactly distributor and consumer"):
        countersign_in_process(
            w["grid"], w["shop"], receipt, session_id=session_id(), now_us=w.tick()
        )


def test_a_receipt_of_an_unattested_claim_is_refused() -> None:
    w = world()
    claim = w.claim("pv", 10_000)
    unattested = ConsumptionReceipt(
        claim, claim, w["grid"].agent, w["home"].agent, 1_000, ZONES["home"]
    )
    w.refused_by_all(unattested, ["grid", "home"], "not the expected attestation")
    with pytest.raises(ZomeCallError, match="no attestation"):
        w.receipt(claim, "home", 1_000)


# ------------------------------------------------------------------------------- trades


def test_an_unattested_issuance_is_refused() -> None:
    """A trade must settle a receipt of an attested claim: without one it is refused by the
    payer's checks and, forced into a session, by both chains."""
    w = world()
    claim = w.claim("pv", 1_000)
    provenance = {
        "energy_wh": 1_000,
        "source": "solar",
        "origin_zone": ZONES["pv"],
        "trust": "meter_attested",
        "claim": claim,
    }
    with pytest.raises(ZomeCallError, match="cites the attested claim and the consumption"):
        w.prepare("home", "pv", kind="trade", amount_mc=1_100, provenance=provenance)
    forced = dataclasses.replace(
        w.prepare("home", "pv", amount_mc=1_100, provenance=provenance), kind=Kind.TRADE
    )
    w.refused_by_all(forced, ["home", "pv"], "cites the attested claim")
    # Citing the claim as its own receipt does not help.
    cited = dataclasses.replace(
        forced, provenance=dataclasses.replace(forced.provenance, receipt=claim)
    )
    w.refused_by_all(cited, ["home", "pv"], "not a countersigned record")


def test_a_trade_whose_amount_is_not_the_value_is_refused() -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    for wrong in (trade.amount_mc - 1, trade.amount_mc + 1):
        with pytest.raises(ZomeCallError, match="not what the rules give"):
            w.prepare(
                "home",
                "pv",
                kind="trade",
                amount_mc=wrong,
                provenance=trade.provenance,
                terms=trade.terms,
            )
        forced = dataclasses.replace(
            trade,
            amount_mc=wrong,
            spender=dataclasses.replace(trade.spender, balance_mc=-wrong),
            receiver=dataclasses.replace(trade.receiver, balance_mc=wrong),
        )
        w.refused_by_all(forced, ["home", "pv"], "not what the rules give")
    # The consumer's reputation moves the value, within its clamp.
    better = w.trade("home", "pv", receipt, reputation_pm=1_100)
    assert better.amount_mc > trade.amount_mc
    w.commit(trade)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("clean", False, "solar energy is clean"),
        ("origin_zone", "au/nsw", "not its claim's"),
        ("trust", Verification.METER_ATTESTED, "not its claim's"),
        ("energy_wh", 4_999, "not the receipt's"),
    ],
)
def test_a_trade_whose_provenance_is_not_its_claim_s_is_refused(
    field: str, value: object, match: str
) -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    forged = dataclasses.replace(
        trade, provenance=dataclasses.replace(trade.provenance, **{field: value})
    )
    w.refused_by_all(forged, ["home", "pv"], match)


def test_a_trade_is_paid_by_the_receipt_s_consumer_to_the_claim_s_producer() -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    with pytest.raises(ZomeCallError, match="receiver is not the claim's producer"):
        w.prepare("home", "gas", kind="trade", provenance=trade.provenance, terms=trade.terms)
    with pytest.raises(ZomeCallError, match="spender is not the receipt's consumer"):
        w.prepare("shop", "pv", kind="trade", provenance=trade.provenance, terms=trade.terms)


def test_a_receipt_is_settled_once() -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    w.commit(w.trade("home", "pv", receipt))
    again = w.trade("home", "pv", receipt)
    with pytest.raises(ValidationError, match="already settled this trade"):
        w.commit(again)


def test_a_receipt_and_a_trade_are_each_cited_by_one_record_only() -> None:
    """A countersigned entry lives on both chains, as two records with two action hashes.
    Settling "once per chain" by the cited hash would let the second copy settle it again, so
    a trade or reward cites the consumer's own record of its receipt, and a fee its payer's
    own record of the trade."""
    w = world()
    claim = w.claim("pv", 5_000)
    receipt = w.receipt(w.attest(claim, fee_pm=30), "home", 2_000)
    grid_copy, home_copy = countersign_in_process(
        w["grid"], w["home"], receipt, session_id=session_id(), now_us=w.tick()
    )
    trade = w.trade("home", "pv", home_copy)
    paid, sold = w.commit(trade)
    assert trade.provenance is not None
    twice = dataclasses.replace(trade.provenance, receipt=grid_copy)
    with pytest.raises(ZomeCallError, match="consumer's own record"):
        w.prepare("home", "pv", kind="trade", provenance=twice, terms=trade.terms)
    w.pay("pv", "grid", kind="fee", terms={"fee": "distributor", "cites": sold})
    with pytest.raises(ZomeCallError, match="own record of the trade"):
        w.prepare("pv", "grid", kind="fee", terms={"fee": "distributor", "cites": paid})


# ---------------------------------------------------------------------------------- fees


def test_a_wrong_fee_is_refused() -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    _, sold = w.commit(w.trade("home", "pv", receipt))
    fee = w.prepare("pv", "grid", kind="fee", terms={"fee": "distributor", "cites": sold})
    with pytest.raises(ZomeCallError, match="not what the rules give"):
        w.prepare(
            "pv",
            "grid",
            kind="fee",
            amount_mc=fee.amount_mc + 1,
            terms={"fee": "distributor", "cites": sold},
        )
    with pytest.raises(ZomeCallError, match="paid to the distributor that attested"):
        w.prepare("pv", "meter", kind="fee", terms={"fee": "distributor", "cites": sold})
    with pytest.raises(ZomeCallError, match="paid by a party to the trade"):
        w.prepare("shop", "grid", kind="fee", terms={"fee": "distributor", "cites": sold})
    with pytest.raises(ZomeCallError, match="cites the trade it belongs to"):
        w.prepare("pv", "grid", kind="fee", amount_mc=10, terms={"fee": "distributor"})
    with pytest.raises(ZomeCallError, match="boundary fee is paid to a distributor"):
        w.prepare("pv", "market", kind="fee", terms={"fee": "boundary", "cites": sold})
    forged = dataclasses.replace(
        fee,
        amount_mc=fee.amount_mc * 2,
        spender=dataclasses.replace(fee.spender, balance_mc=fee.spender.balance_mc - fee.amount_mc),
        receiver=dataclasses.replace(fee.receiver, balance_mc=fee.amount_mc * 2),
    )
    w.refused_by_all(forged, ["pv", "grid"], "not what the rules give")
    w.commit(fee)
    with pytest.raises(ValidationError, match="already settled this fee"):
        w.commit(w.prepare("pv", "grid", kind="fee", terms={"fee": "distributor", "cites": sold}))


def test_a_fee_cites_a_trade() -> None:
    w = world()
    paid, _ = w.pay("home", "shop", amount_mc=100)
    with pytest.raises(ZomeCallError, match="a fee cites a trade"):
        w.prepare("home", "grid", kind="fee", terms={"fee": "distributor", "cites": paid})
    claim = w.claim("pv", 1_000)
    with pytest.raises(ZomeCallError, match="not a countersigned record"):
        w.prepare("home", "grid", kind="fee", terms={"fee": "market", "cites": claim})


def test_without_a_rate_market_and_app_fees_are_free_but_still_cite_their_trade() -> None:
    w = world({"fees": {"boundary_pm": 0}})
    _, _, receipt = attested_sale(w)
    paid, _ = w.commit(w.trade("home", "pv", receipt))
    with pytest.raises(ZomeCallError, match="needs amount_mc"):
        w.prepare("home", "market", kind="fee", terms={"fee": "market", "cites": paid})
    w.pay("home", "market", kind="fee", amount_mc=7, terms={"fee": "market", "cites": paid})
    # No boundary rate: a boundary fee is 0, which no transfer can carry.
    with pytest.raises(ZomeCallError, match="amount"):
        w.prepare("home", "grid", kind="fee", terms={"fee": "boundary", "cites": paid})


# ------------------------------------------------------------------ cash and the oracle


NEM = load_series("nsw1", "price")


def nem_world() -> tuple[World, int, float]:
    """A world living in the week of real NEM prices; the time of the week's peak price."""
    peak = max(range(len(NEM.values)), key=lambda i: NEM.values[i])
    w = world(now=NEM.start_us)
    w.now = NEM.start_us + peak * NEM.interval_us
    return w, w.now, NEM.values[peak]


def publish(w: World, at_us: int, price: float) -> object:
    return w.call(
        "oracle",
        "publish_price",
        {"zone": "au/nsw", "start_us": at_us, "end_us": at_us + NEM.interval_us, "price": price},
    )


def test_cash_in_and_out_at_the_oracle_s_nem_price() -> None:
    w, at, price = nem_world()
    record = publish(w, at, price)
    cents = price_cents(price)
    # 300 AUD at the peak price (273.90 AUD/MWh): 300/273.9 MWh, in milli-credits.
    cash_in = w.prepare(
        "reserve", "home", kind="cash_in", terms={"cites": record, "money_cents": 30_000}
    )
    assert cash_in.amount_mc == 30_000 * 1_000_000 // cents == 1_095_290
    w.commit(cash_in)
    cash_out = w.prepare(
        "home", "reserve", kind="cash_out", terms={"cites": record, "money_cents": 10_000}
    )
    assert cash_out.amount_mc == 10_000 * 1_000_000 // cents
    w.commit(cash_out)
    assert w.balance("reserve") == -cash_in.amount_mc + cash_out.amount_mc
    assert w.balance("home") == -w.balance("reserve")


def test_cash_in_without_an_oracle_s_price_is_refused() -> None:
    w, at, _ = nem_world()
    with pytest.raises(ZomeCallError, match="cites an oracle's price record"):
        w.prepare("reserve", "home", kind="cash_in", amount_mc=1_000)
    forced = dataclasses.replace(
        w.prepare("reserve", "home", kind="transfer", amount_mc=1_000), kind=Kind.CASH_IN
    )
    w.refused_by_all(forced, ["reserve", "home"], "cites an oracle's price record")
    # A price record by anyone else than an oracle cannot even be committed ...
    with pytest.raises(ValidationError, match="only a price oracle"):
        w.call(
            "home",
            "publish_price",
            {"zone": "au/nsw", "start_us": at, "end_us": at + 1, "price_cents": 1},
        )
    # ... and a claim is no price record.
    claim = w.claim("pv", 1_000)
    with pytest.raises(ZomeCallError, match="not the expected price record"):
        w.prepare("reserve", "home", kind="cash_in", terms={"cites": claim, "money_cents": 1})


def test_cash_at_the_wrong_rate_or_time_is_refused() -> None:
    w, at, price = nem_world()
    record = publish(w, at, price)
    terms = Terms(cites=record, money_cents=30_000)
    right = w.prepare("reserve", "home", kind="cash_in", terms=terms)
    with pytest.raises(ZomeCallError, match="not what the rules give"):
        w.prepare("reserve", "home", kind="cash_in", amount_mc=right.amount_mc + 1, terms=terms)
    forced = dataclasses.replace(
        right,
        amount_mc=right.amount_mc * 2,
        spender=dataclasses.replace(right.spender, balance_mc=-right.amount_mc * 2),
        receiver=dataclasses.replace(right.receiver, balance_mc=right.amount_mc * 2),
    )
    w.refused_by_all(forced, ["reserve", "home"], "not what the rules give")
    w.now = at + NEM.interval_us + 1  # after the price's interval
    with pytest.raises(ZomeCallError, match="outside the price's interval"):
        w.prepare("reserve", "home", kind="cash_in", terms=terms)


def test_no_cash_at_a_negative_nem_price() -> None:
    low = min(range(len(NEM.values)), key=lambda i: NEM.values[i])
    assert NEM.values[low] < 0  # the week has negative prices
    w = world(now=NEM.start_us)
    w.now = NEM.start_us + low * NEM.interval_us
    record = publish(w, w.now, NEM.values[low])
    with pytest.raises(ZomeCallError, match="zero or below"):
        w.prepare("reserve", "home", kind="cash_in", terms={"cites": record, "money_cents": 100})


# ----------------------------------------------------------------- pools and rewards


def test_demand_reduction_at_a_nem_peak_is_rewarded_from_a_pool() -> None:
    """The Demand Management app's steps: the plug claims the reduction, the site meter
    attests it, the pool (funded by a contributor) pays the reward the rules give."""
    w, at, price = nem_world()
    day = NEM.values[: 24 * 12]
    average = statistics.fmean(day)
    w.pay("funder", "pool", kind="donation", amount_mc=50_000, memo="subsidy")
    claim = w.call(
        "plug",
        "claim_reduction",
        {
            "avoided_wh": 1_500,
            "zone": ZONES["plug"],
            "start_us": at - HOUR,
            "end_us": at,
            "price": price,
            "average": average,
        },
    )
    attestation = w.attest(claim, by="meter", energy_wh=1_200)
    provenance = {
        "energy_wh": 1_200,
        "source": "grid_mix",
        "clean": True,
        "origin_zone": ZONES["plug"],
        "trust": "meter_attested",
        "claim": claim,
    }
    terms = {"reward": "demand_reduction", "cites": attestation}
    reward = w.prepare("pool", "plug", kind="reward", provenance=provenance, terms=terms)
    expected = demand_reduction_reward_mc(
        ValueRules(),
        avoided_wh=1_200,
        need_index=need_index_from_price(price, average),
        verification=Verification.METER_ATTESTED,
        zone=ZONES["plug"],
    )
    assert reward.amount_mc == expected > 1_200  # a peak: worth more than par
    w.commit(reward)
    assert w.balance("plug") == expected and w.balance("pool") == 50_000 - expected
    with pytest.raises(ValidationError, match="already settled this reward"):
        w.commit(w.prepare("pool", "plug", kind="reward", provenance=provenance, terms=terms))
    with pytest.raises(ZomeCallError, match="paid to the device that reduced"):
        w.prepare("pool", "home", kind="reward", provenance=provenance, terms=terms)
    with pytest.raises(ZomeCallError, match="not the attested reduction"):
        w.prepare(
            "pool",
            "plug",
            kind="reward",
            provenance=provenance | {"energy_wh": 1_500},
            terms=terms,
        )


def test_a_pool_pays_only_rewards_and_only_what_it_was_given() -> None:
    w = world()
    with pytest.raises(ZomeCallError, match="pool pays out only rewards"):
        w.prepare("pool", "home", amount_mc=1)
    _, _, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    provenance = trade.provenance
    terms = {"reward": "clean_consumption", "cites": receipt}
    with pytest.raises(ZomeCallError, match="credit limit of -0"):
        w.prepare("pool", "home", kind="reward", provenance=provenance, terms=terms)
    w.pay("funder", "pool", kind="donation", amount_mc=1_000)
    reward = w.prepare("pool", "home", kind="reward", provenance=provenance, terms=terms)
    assert reward.amount_mc == 5_000 * 50 // 1000
    w.commit(reward)
    with pytest.raises(ZomeCallError, match="paid to the receipt's consumer"):
        w.prepare("pool", "shop", kind="reward", provenance=provenance, terms=terms)


def test_rewards_for_clean_consumption_are_for_clean_energy() -> None:
    w = world()
    w.pay("funder", "pool", kind="donation", amount_mc=10_000)
    gas = w.deliver(w.attest(w.claim("gas", 4_000, "gas")), "home", 2_000)
    provenance = w.trade("home", "gas", gas).provenance
    with pytest.raises(ZomeCallError, match="for clean energy"):
        w.prepare(
            "pool",
            "home",
            kind="reward",
            provenance=provenance,
            terms={"reward": "clean_consumption", "cites": gas},
        )


def test_storage_released_where_needed_is_rewarded() -> None:
    w = world()
    w.pay("funder", "pool", kind="donation", amount_mc=10_000)
    claim = w.claim("battery", 3_000, "battery", clean=True)
    attestation = w.attest(claim)
    needed = w.deliver(attestation, "home", 1_000, need_index=500)
    provenance = w.trade("home", "battery", needed).provenance
    terms = {"reward": "storage_release", "cites": needed}
    reward = w.prepare("pool", "battery", kind="reward", provenance=provenance, terms=terms)
    assert reward.amount_mc == 1_000 * 100 * 500 // 1000**2 == 50
    w.commit(reward)
    not_needed = w.deliver(attestation, "shop", 1_000, need_index=0)
    provenance = w.trade("shop", "battery", not_needed).provenance
    with pytest.raises(ZomeCallError, match="where it was needed"):
        w.prepare(
            "pool",
            "battery",
            kind="reward",
            provenance=provenance,
            terms={"reward": "storage_release", "cites": not_needed},
        )


def test_a_reward_cites_its_basis() -> None:
    w = world()
    w.pay("funder", "pool", kind="donation", amount_mc=10_000)
    provenance = {"energy_wh": 10, "source": "solar", "origin_zone": ZONES["pv"], "trust": 2}
    with pytest.raises(ZomeCallError, match="cites its basis"):
        w.prepare("pool", "home", kind="reward", amount_mc=10, provenance=provenance)


def test_the_producer_refuses_to_countersign_a_mispriced_trade() -> None:
    w = world()
    _, _, receipt = attested_sale(w)
    trade = w.trade("home", "pv", receipt)
    cheap = dataclasses.replace(
        trade,
        amount_mc=trade.amount_mc - 1,
        spender=dataclasses.replace(trade.spender, balance_mc=1 - trade.amount_mc),
        receiver=dataclasses.replace(trade.receiver, balance_mc=trade.amount_mc - 1),
    )
    assert "not what the rules give" in w.call("pv", "accept_payment", cheap)
    with pytest.raises(ZomeCallError, match="the receiver refuses"):
        w.commit(cheap)
    assert w.call("pv", "accept_payment", trade) is None
    assert w.call("home", "history") == []
