"""Hypothesis: random payments between N agents, committed on real chains by countersigning.

The kinds whose amount is free (plain transfers, donations, fees that cite nothing) are drawn
here; trades, rewards, cited fees and cash transfers need issuance records and are drawn by
``test_currency_issuance_properties.py``.

After every sequence: balances sum to zero, nobody is below its credit limit (forced over-limit
spends are refused by both chains), every credit traces back to the payer's record and its
provenance, and the ledger recomputed from the chains (and re-verified from genesis with the
app rules) equals the running balances of a model.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import Value, encode
from ioe.engine.cell import Cell
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response, commit_session
from ioe.engine.dna import DnaDef
from ioe.engine.schema import to_value
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.sim.in_process import commit_in_process
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.currency.entries import PROVENANCE_REQUIRED, Kind, Provenance, Source, Transfer
from ioe.zomes.currency.ledger import (
    START,
    CurrencyRules,
    Position,
    credit_limit_mc,
    next_transfer,
)
from ioe.zomes.currency.value import Verification

NOW = 1_700_000_000_000_000
KEYS = [KeyPair(bytes([i + 90]) * 32) for i in range(4)]
DEVICE_TYPES = [None, "generator", "storage", "reserve"]
ZONES = ["au/nsw/newtown/king-st/12", "au/nsw/newtown", "au/vic/carlton"]
_sessions = itertools.count(1)
FREE_KINDS = (Kind.TRANSFER, Kind.DONATION, Kind.FEE)


@dataclass
class Model:
    balances: dict[AgentPubKey, int]
    heads: dict[AgentPubKey, ActionHash | None]
    earned: dict[AgentPubKey, int] = field(default_factory=dict)
    done: list[tuple[Transfer, ActionHash, ActionHash]] = field(default_factory=list)
    refused: int = 0


def provenances() -> st.SearchStrategy[Provenance]:
    def clean_for(source: Source, declared: bool) -> bool:
        if source in (Source.SOLAR, Source.WIND, Source.HYDRO):
            return True
        if source in (Source.GAS, Source.COAL):
            return False
        return declared

    return st.builds(
        lambda energy, source, declared, zone, trust: Provenance(
            energy, source, clean_for(source, declared), zone, trust
        ),
        st.integers(1, 50_000),
        st.sampled_from(Source),
        st.booleans(),
        st.sampled_from(ZONES),
        st.sampled_from(Verification),
    )


@st.composite
def payments(draw: st.DrawFn) -> tuple[int, int, int, Kind, Provenance | None]:
    spender = draw(st.integers(0, 3))
    receiver = draw(st.integers(0, 3).filter(lambda r: r != spender))
    kind = draw(st.sampled_from(FREE_KINDS))
    provenance = draw(provenances() if kind in PROVENANCE_REQUIRED else st.none() | provenances())
    return spender, receiver, draw(st.integers(1, 9_000)), kind, provenance


scenarios = st.tuples(
    st.integers(2, 4),  # agents
    st.lists(st.sampled_from(DEVICE_TYPES), min_size=4, max_size=4),
    st.lists(payments(), min_size=1, max_size=16),
)


def setup(agents: int, types: list[str | None]) -> tuple[DnaDef, list[Cell], CurrencyRules]:
    device_types: dict[str, Value] = {
        keys.agent.to_text(): kind for keys, kind in zip(KEYS, types, strict=True) if kind
    }
    properties: dict[str, Value] = {
        "currency": {
            "credit_limits": {
                "default_mc": 5_000,
                "by_device_type": {"generator": 2_000, "storage": 12_000, "reserve": 30_000},
            },
            "device_types": device_types,
        }
    }
    dna = core_dna(properties)
    db = MemoryDatabase()
    cells = [Cell(dna, keys, db.chain(dna.hash, keys.agent)) for keys in KEYS[:agents]]
    for cell in cells:
        cell.genesis(membrane_proof_for(cell.keys), now_us=NOW)
    return dna, cells, CurrencyRules.from_properties(properties)


def forced_set(
    dna: DnaDef, spender: Cell, receiver: Cell, transfer: Transfer
) -> CountersignedEntry:
    entry_type, _ = dna.entry_type_for(Transfer)
    preflight = Preflight(
        next(_sessions).to_bytes(16, "big"),
        dna.hash,
        (spender.agent, receiver.agent),
        None,
        entry_type.zome_index,
        entry_type.entry_index,
        encode(to_value(transfer)),
        NOW + 1,
        NOW + 10_000_000,
    )
    responses = []
    for cell in (spender, receiver):
        head = cell.head()
        assert head is not None
        responses.append(Response.sign(cell.keys, preflight, head))
    return CountersignedEntry(preflight, tuple(responses))


def expected_problem(
    rules: CurrencyRules, model: Model, spender: Cell, receiver: Cell, amount: int, kind: Kind
) -> str | None:
    types = rules.device_types
    if kind is Kind.CASH_IN and types.get(spender.agent.to_text()) != "reserve":
        return "cash_in"
    if kind is Kind.CASH_OUT and types.get(receiver.agent.to_text()) != "reserve":
        return "cash_out"
    limit = credit_limit_mc(rules, spender.agent, model.earned.get(spender.agent, 0))
    if model.balances[spender.agent] - amount < -limit:
        return "credit limit"
    return None


def check_invariants(dna: DnaDef, cells: list[Cell], rules: CurrencyRules, model: Model) -> None:
    balances = {c.agent: c.call("currency", "balance", None, now_us=NOW) for c in cells}
    assert sum(b.balance_mc for b in balances.values()) == 0
    for cell in cells:
        balance = balances[cell.agent]
        assert balance.balance_mc == model.balances[cell.agent]
        earned = model.earned.get(cell.agent, 0)
        assert balance.credit_limit_mc == credit_limit_mc(rules, cell.agent, earned)
        assert balance.balance_mc >= -balance.credit_limit_mc
        assert balance.available_mc >= 0
        assert cell.call("currency", "ledger_head", None, now_us=NOW) == Position(
            model.heads[cell.agent], model.balances[cell.agent], earned
        )
        # The chain re-verifies from genesis with every app rule.
        verifier = ChainVerifier(dna, app_host=SourceHost(dna, cell.store))
        for record in cell.query():
            verifier.feed(record)
        # Every entry of its history is a transfer of the model, in order; every credit
        # is on the payer's chain too (the same entry), with its provenance.
        mine = [d for d in model.done if d[0].party(cell.agent) is not None]
        history = cell.call("currency", "history", None, now_us=NOW)
        assert len(history) == len(mine)
        payers = {c.agent: c for c in cells}
        for item, (transfer, spent, received) in zip(history, mine, strict=True):
            assert item.action_hash == (spent if item.delta_mc < 0 else received)
            assert (item.kind, item.amount_mc, item.provenance) == (
                transfer.kind,
                transfer.amount_mc,
                transfer.provenance,
            )
            if item.delta_mc > 0:
                payer_record = payers[item.counterparty].get(spent)
                own_record = cell.get(received)
                assert payer_record is not None and own_record is not None
                assert payer_record.entry == own_record.entry
                if item.kind in PROVENANCE_REQUIRED:
                    assert item.provenance is not None and item.provenance.energy_wh > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_random_payments_keep_the_ledger_whole(
    scenario: tuple[int, list[str | None], list[tuple[int, int, int, Kind, Provenance | None]]],
) -> None:
    agents, types, plan = scenario
    dna, cells, rules = setup(agents, types)
    model = Model({c.agent: 0 for c in cells}, {c.agent: None for c in cells})
    now = NOW
    for drawn_spender, drawn_receiver, amount, kind, provenance in plan:
        spender_index = drawn_spender % agents
        receiver_index = drawn_receiver % agents
        if receiver_index == spender_index:
            receiver_index = (spender_index + 1) % agents
        spender, receiver = cells[spender_index], cells[receiver_index]
        now += 1_000
        payload = {
            "to": receiver.agent.to_text(),
            "amount_mc": amount,
            "kind": str(kind),
            "provenance": provenance,
            "receiver_head": receiver.call("currency", "ledger_head", None, now_us=now),
        }
        problem = expected_problem(rules, model, spender, receiver, amount, kind)
        if problem is not None:
            with pytest.raises(ZomeCallError, match=problem):
                spender.call("currency", "prepare_payment", payload, now_us=now)
            # Forced anyway, past the payer's own checks: neither chain takes it.
            forced = next_transfer(
                spender.agent,
                Position(
                    model.heads[spender.agent],
                    model.balances[spender.agent],
                    model.earned.get(spender.agent, 0),
                ),
                receiver.agent,
                Position(
                    model.heads[receiver.agent],
                    model.balances[receiver.agent],
                    model.earned.get(receiver.agent, 0),
                ),
                amount_mc=amount,
                kind=kind,
                provenance=provenance,
            )
            entry = forced_set(dna, spender, receiver, forced)
            for cell in (spender, receiver):
                with pytest.raises(ValidationError, match=problem):
                    commit_session(cell, entry)
            model.refused += 1
            continue
        transfer = spender.call("currency", "prepare_payment", payload, now_us=now)
        session = next(_sessions).to_bytes(16, "big")
        spent, received = commit_in_process(
            spender, receiver, transfer, session_id=session, now_us=now
        )
        model.balances[spender.agent] -= amount
        model.balances[receiver.agent] += amount
        model.heads[spender.agent], model.heads[receiver.agent] = spent, received
        model.earned[receiver.agent] = model.earned.get(receiver.agent, 0) + transfer.earned_by(
            receiver.agent
        )
        model.done.append((transfer, spent, received))
        after = spender.call("currency", "balance", None, now_us=now)
        assert after.balance_mc == model.balances[spender.agent] >= -after.credit_limit_mc
    check_invariants(dna, cells, rules, model)


def test_a_spender_claiming_history_it_has_not_earned_is_refused_by_both_chains() -> None:
    """History raises a limit, so a spender might claim some: its side must carry exactly
    what its earlier transfers add up to, and each chain checks its own author's side."""
    dna, cells, rules = setup(2, [None, None, None, None])
    spender, receiver = cells
    limit = credit_limit_mc(rules, spender.agent)
    inflated = Position(None, 0, 0)
    forged = next_transfer(
        spender.agent,
        inflated,
        receiver.agent,
        START,
        amount_mc=limit + 1_000,
        kind=Kind.TRANSFER,
    )
    # The limit the forger wants (10 000 credits earned) is not the one its chain gives.
    forged = dataclasses.replace(
        forged, spender=dataclasses.replace(forged.spender, earned_mc=10_000_000)
    )
    entry = forced_set(dna, spender, receiver, forged)
    for cell in (spender, receiver):
        with pytest.raises(ValidationError, match=r"history|earned"):
            commit_session(cell, entry)
    assert spender.call("currency", "balance", None, now_us=NOW).balance_mc == 0
