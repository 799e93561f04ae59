"""The value of a kWh: one pure integer function, monotone in every factor."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.zomes.currency.value import (
    Factors,
    ValueRules,
    Verification,
    factors,
    value_mc,
)

RULES = ValueRules()
HOME = "au/nsw/newtown/king-st/12"


def flow(**overrides: object) -> Factors:
    args: dict[str, object] = {
        "clean": True,
        "producer_zone": HOME,
        "consumer_zone": HOME,
        "need_index": 0,
        "verification": Verification.METER_ATTESTED,
        "reputation_pm": 1000,
    }
    args.update(overrides)
    return factors(RULES, **args)  # type: ignore[arg-type]


def test_a_clean_local_attested_kwh_at_par() -> None:
    f = flow()
    assert f == Factors(source=1000, locality=1100, demand=1000, trust=1000, reputation=1000)
    assert value_mc(1000, f) == 1100  # 1 kWh from the own site: 1.1 credits


def test_each_factor_moves_the_value_the_documented_way() -> None:
    base = value_mc(10_000, flow())
    assert value_mc(10_000, flow(clean=False)) < base
    assert value_mc(10_000, flow(producer_zone="au/vic/fitzroy/a/1")) < base
    assert value_mc(10_000, flow(need_index=800)) > base
    assert value_mc(10_000, flow(need_index=-800)) < base
    assert value_mc(10_000, flow(verification=Verification.SELF_REPORTED)) < base
    assert value_mc(10_000, flow(reputation_pm=1150)) > base
    # The demand and reputation factors stay within their bounds.
    assert flow(need_index=1000).demand == 1300
    assert flow(need_index=-1000).demand == 700
    assert flow(reputation_pm=5000).reputation == RULES.reputation_max_pm


def test_10_kwh_clean_vs_dirty_from_the_life_of_a_token() -> None:
    far = {"producer_zone": "au/nsw/glebe/a/1"}  # 3 levels away: locality 950
    clean, dirty = value_mc(10_000, flow(**far)), value_mc(10_000, flow(clean=False, **far))
    assert clean == 10_000 * 950 // 1000
    assert dirty == 10_000 * 600 * 950 // 1000**2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dirty_pm": 1200}, "dirty energy"),
        ({"locality_pm": [900, 1000]}, "locality"),
        ({"trust_pm": [1000, 900, 800, 700]}, "trust_pm does not decrease"),
        ({"trust_pm": [1000]}, "one entry per verification level"),
        ({"clean_pm": -1}, "clean_pm"),
        ({"clean_pm": 1.5}, "clean_pm"),
        ({"demand_min_pm": 1100}, "par"),
        ({"bonus": 1}, "unknown settings"),
    ],
)
def test_bad_rules_in_dna_properties_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValueRules.from_properties({"value": settings})  # type: ignore[dict-item]


def test_rules_come_from_dna_properties() -> None:
    rules = ValueRules.from_properties({"value": {"dirty_pm": 400, "locality_pm": [1000, 900]}})
    assert rules.dirty_pm == 400 and rules.locality_pm == (1000, 900)
    assert ValueRules.from_properties({}) == RULES


pm = st.integers(0, 3000)
factor_sets = st.builds(Factors, pm, pm, pm, pm, pm)


@given(
    energy=st.integers(0, 10**9),
    f=factor_sets,
    which=st.sampled_from([f.name for f in dataclasses.fields(Factors)]),
    bump=st.integers(0, 2000),
    more=st.integers(0, 10**6),
)
def test_value_never_decreases_when_a_factor_or_the_energy_increases(
    energy: int, f: Factors, which: str, bump: int, more: int
) -> None:
    base = value_mc(energy, f)
    raised = dataclasses.replace(f, **{which: getattr(f, which) + bump})
    assert value_mc(energy, raised) >= base
    assert value_mc(energy + more, f) >= base
    assert value_mc(energy, f) <= energy * 3**5  # each factor at most ×3 here


@given(need=st.integers(-1000, 1000), step=st.integers(0, 2000), rep=st.integers(0, 3000))
def test_demand_and_reputation_factors_are_monotone_inputs(need: int, step: int, rep: int) -> None:
    higher_need = min(need + step, 1000)
    assert flow(need_index=higher_need).demand >= flow(need_index=need).demand
    assert flow(reputation_pm=rep + step).reputation >= flow(reputation_pm=rep).reputation
