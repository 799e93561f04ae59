"""The ledger's pure core: settings from DNA properties, credit limits, balances."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.encoding import Value
from ioe.hashing import ActionHash
from ioe.zomes.currency.entries import Kind, Party, Provenance, Source, Terms, Transfer
from ioe.zomes.currency.ledger import (
    DEFAULT_LIMIT_MC,
    START,
    CurrencyRules,
    LedgerError,
    Position,
    advance,
    credit_limit_mc,
    device_type_of,
    follows,
    format_mc,
    is_attester,
    is_oracle,
    limit_problem,
    next_transfer,
    party_problem,
    replay,
)
from ioe.zomes.currency.value import Verification

A, B, C = (KeyPair(bytes([i + 70]) * 32).agent for i in range(3))
H1, H2 = ActionHash(b"\x01" * 32), ActionHash(b"\x02" * 32)


def rules(currency: dict[str, Value]) -> CurrencyRules:
    return CurrencyRules.from_properties({"currency": currency})


def test_defaults_without_properties() -> None:
    default = CurrencyRules.from_properties({})
    assert (default.name, default.symbol) == ("Community Power Credit", "CPC")
    assert credit_limit_mc(default, A) == DEFAULT_LIMIT_MC == 100_000
    assert device_type_of(default, A) is None


def test_limits_come_by_device_type_with_a_default() -> None:
    given_rules = rules(
        {
            "credit_limits": {"default_mc": 5_000, "by_device_type": {"generator": 50_000}},
            "device_types": {A.to_text(): "generator", B.to_text(): "storage", C.to_text(): "x"},
        }
    )
    assert credit_limit_mc(given_rules, A) == 50_000
    assert credit_limit_mc(given_rules, B) == 200_000  # the built-in storage limit
    assert credit_limit_mc(given_rules, C) == 5_000  # an unknown type: the default
    assert device_type_of(given_rules, A) == "generator"


def test_a_reserve_has_no_credit_unless_the_dna_gives_it_some() -> None:
    reserve = {"device_types": {A.to_text(): "reserve"}}
    assert credit_limit_mc(rules(reserve), A) == 0
    funded = reserve | {"credit_limits": {"by_device_type": {"reserve": 10**9}}}
    assert credit_limit_mc(rules(funded), A) == 10**9


@pytest.mark.parametrize(
    ("currency", "match"),
    [
        ({"colour": "green"}, "unknown settings"),
        ({"name": ""}, "name"),
        ({"symbol": "TOOLONGSYM"}, "symbol"),
        ({"credit_limits": {"default_mc": -1}}, "default_mc"),
        ({"credit_limits": {"default_mc": True}}, "default_mc"),
        ({"credit_limits": {"by_device_type": {"storage": 10**16}}}, "storage"),
        ({"credit_limits": {"per_agent": {}}}, "unknown credit_limits"),
        ({"credit_limits": []}, "map"),
        ({"device_types": {"x": 3}}, "device type"),
        ({"oracles": "someone"}, "oracles is a list"),
        ({"oracles": [3]}, "oracle's agent key"),
        ({"fees": {"boundary_pm": 1001}}, "fees.boundary_pm"),
        ({"fees": {"market_pm": -1}}, "fees.market_pm"),
        ({"fees": {"tip_pm": 1}}, "unknown fees"),
        ({"rewards": {"clean_consumption_pm": True}}, "rewards.clean_consumption_pm"),
        ({"rewards": {"solar_pm": 1}}, "unknown rewards"),
    ],
)
def test_bad_settings_are_refused(currency: dict[str, Value], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rules(currency)
    with pytest.raises(ValueError, match="map"):
        CurrencyRules.from_properties({"currency": 3})


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0, "0.000 CPC"), (1, "0.001 CPC"), (-1234, "-1.234 CPC"), (10**6, "1000.000 CPC")],
)
def test_amounts_print_exactly(amount: int, text: str) -> None:
    assert format_mc(amount) == text


def test_next_transfer_continues_both_positions() -> None:
    transfer = next_transfer(A, Position(H1, 500), B, START, amount_mc=200, kind=Kind.TRADE)
    assert transfer.spender == Party(A, H1, 500, 300)
    assert transfer.receiver == Party(B, None, 0, 200)
    assert (
        transfer.delta_mc(A) == -200 and transfer.delta_mc(B) == 200 and transfer.delta_mc(C) == 0
    )
    assert transfer.counterparty(A) == B and transfer.counterparty(B) == A
    for bad in (0, -1, 10**15 + 1):
        with pytest.raises(LedgerError, match="amount"):
            next_transfer(A, START, B, START, amount_mc=bad, kind=Kind.TRADE)


def test_party_and_limit_rules() -> None:
    assert party_problem(Party(A, None, 0, -5), -5) is None
    assert "zero balance" in (party_problem(Party(A, None, 1, -4), -5) or "")
    assert "resulting balance" in (party_problem(Party(A, H1, 0, -4), -5) or "")
    at_limit = next_transfer(A, START, B, START, amount_mc=DEFAULT_LIMIT_MC, kind=Kind.FEE)
    assert limit_problem(CurrencyRules(), at_limit) is None
    over = next_transfer(A, START, B, START, amount_mc=DEFAULT_LIMIT_MC + 1, kind=Kind.FEE)
    assert "credit limit" in (limit_problem(CurrencyRules(), over) or "")


def test_replay_recomputes_a_position_and_refuses_what_does_not_follow() -> None:
    first = next_transfer(A, START, B, START, amount_mc=100, kind=Kind.TRANSFER)
    second = next_transfer(C, START, A, Position(H1, -100), amount_mc=30, kind=Kind.TRANSFER)
    assert replay(A, [(H1, first), (H2, second)]) == Position(H2, -70)
    with pytest.raises(LedgerError, match="latest"):
        replay(A, [(H1, first), (H2, first)])  # the same transfer twice
    with pytest.raises(LedgerError, match="latest"):
        replay(A, [(H2, second)])
    with pytest.raises(LedgerError, match="not a party"):
        advance(START, C, H1, first)


amounts = st.lists(st.tuples(st.booleans(), st.integers(1, 10**9)), max_size=20)


@given(amounts)
def test_a_replayed_history_ends_where_its_transfers_add_up_to(
    moves: list[tuple[bool, int]],
) -> None:
    position, history, total = START, [], 0
    for index, (pays, amount) in enumerate(moves):
        here = ActionHash(index.to_bytes(32, "big"))
        if pays:
            transfer: Transfer = next_transfer(
                A, position, B, START, amount_mc=amount, kind=Kind.FEE
            )
            total -= amount
        else:
            transfer = next_transfer(B, START, A, position, amount_mc=amount, kind=Kind.FEE)
            total += amount
        history.append((here, transfer))
        position = advance(position, A, here, transfer)
    assert replay(A, history) == position and position.balance_mc == total


def test_issuance_settings_and_roles_come_from_the_dna() -> None:
    given = rules(
        {
            "device_types": {A.to_text(): "distributor", B.to_text(): "pool"},
            "oracles": [B.to_text()],
            "fees": {"boundary_pm": 7, "app_pm": 3},
            "rewards": {"storage_release_pm": 250},
        }
    )
    assert (given.boundary_fee_pm, given.market_fee_pm, given.app_fee_pm) == (7, None, 3)
    assert (given.clean_consumption_pm, given.storage_release_pm) == (50, 250)
    assert is_attester(given, A) and not is_attester(given, B)
    assert is_oracle(given, B) and not is_oracle(given, A)
    assert credit_limit_mc(given, B) == 0  # a pool pays out only what it was given
    defaults = rules({})
    assert (defaults.boundary_fee_pm, defaults.market_fee_pm, defaults.oracles) == (
        0,
        None,
        frozenset(),
    )


HISTORY = {"credit_limits": {"default_mc": 5_000, "history_pm": 500, "history_max_mc": 2_000}}


def test_history_raises_a_limit_up_to_its_cap_but_not_a_reserves_or_pools() -> None:
    given_rules = rules({**HISTORY, "device_types": {B.to_text(): "reserve", C.to_text(): "pool"}})
    assert credit_limit_mc(given_rules, A) == credit_limit_mc(given_rules, A, 0) == 5_000
    assert credit_limit_mc(given_rules, A, 1_000) == 5_500
    assert credit_limit_mc(given_rules, A, 10**12) == 7_000
    assert credit_limit_mc(given_rules, B, 10**6) == 0
    assert credit_limit_mc(given_rules, C, 10**6) == 0
    assert credit_limit_mc(CurrencyRules(), A, 4_000) == DEFAULT_LIMIT_MC + 1_000  # 250 pm


@given(st.integers(0, 10**15), st.integers(0, 10**15), st.integers(0, 1000), st.integers(0, 10**9))
def test_more_history_never_lowers_a_limit(first: int, second: int, pm: int, cap: int) -> None:
    given_rules = rules({"credit_limits": {"history_pm": pm, "history_max_mc": cap}})
    low, high = sorted((first, second))
    base = credit_limit_mc(given_rules, A)
    assert base <= credit_limit_mc(given_rules, A, low) <= credit_limit_mc(given_rules, A, high)
    assert credit_limit_mc(given_rules, A, high) <= base + cap


def _backed_trade(spender_at: Position, receiver_at: Position, amount: int) -> Transfer:
    provenance = Provenance(
        100, Source.SOLAR, True, "au/nsw/newtown", Verification.METER_ATTESTED, H1, H2
    )
    return next_transfer(
        B, spender_at, A, receiver_at, amount_mc=amount, kind=Kind.TRADE, provenance=provenance
    )


def test_only_backed_transfers_received_count_as_earned() -> None:
    trade = _backed_trade(START, START, 700)
    assert trade.backed and trade.earned_by(A) == 700 and trade.earned_by(B) == 0
    plain = next_transfer(B, START, A, START, amount_mc=700, kind=Kind.TRANSFER)
    uncited_fee = next_transfer(B, START, A, START, amount_mc=700, kind=Kind.FEE)
    cited_fee = next_transfer(
        B, START, A, START, amount_mc=700, kind=Kind.FEE, terms=Terms(cites=H1)
    )
    assert (plain.earned_by(A), uncited_fee.earned_by(A), cited_fee.earned_by(A)) == (0, 0, 700)
    # Carried forward: after the trade, A's next transfer starts from what it earned.
    at = advance(START, A, H1, trade)
    assert at == Position(H1, 700, 700)
    spend = next_transfer(A, at, C, START, amount_mc=5_000, kind=Kind.TRANSFER)
    assert spend.spender.earned_mc == 700
    assert advance(at, A, H2, spend) == Position(H2, -4_300, 700)


def test_a_party_cannot_claim_history_it_does_not_have() -> None:
    at = Position(H1, 700, 700)
    honest = next_transfer(A, at, C, START, amount_mc=5_800, kind=Kind.TRANSFER)
    given_rules = rules(HISTORY)
    assert limit_problem(given_rules, honest) is None  # 5 000 + 350 of history
    over = next_transfer(A, at, C, START, amount_mc=6_100, kind=Kind.TRANSFER)
    assert "credit limit" in (limit_problem(given_rules, over) or "")
    inflated = Party(A, H1, 700, -5_400, 10**9)
    assert "earned" in (follows(at, inflated) or "")
    assert "history" in (party_problem(Party(A, None, 0, -5, 1), -5) or "")
    assert "not negative" in (party_problem(Party(A, H1, 0, -5, -1), -5) or "")
