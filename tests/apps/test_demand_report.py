"""The report's totals against sums written out independently."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.apps.demand.report import avoided_wh, interval_credits_mc, off_periods, summarize
from ioe.apps.demand.rule import Decision
from ioe.zomes.currency.rewards import (
    demand_reduction_reward_mc,
    need_index_from_price,
    price_cents,
)
from ioe.zomes.currency.value import ValueRules, Verification

T0 = 1_674_000_000_000_000


def decision(
    i: int, price: float, average: float | None, on: bool, interval_s: int = 300
) -> Decision:
    end = T0 + (i + 1) * interval_s * 1_000_000
    return Decision(
        end, price, average, None if average is None else average * 1.3, on, "x", interval_s
    )


decisions_st = st.lists(
    st.tuples(
        st.floats(-1000, 15000, allow_nan=False),
        st.one_of(st.none(), st.floats(-500, 5000, allow_nan=False)),
        st.booleans(),
    ),
    max_size=60,
).map(lambda items: [decision(i, p, a, on) for i, (p, a, on) in enumerate(items)])


@settings(max_examples=200, deadline=None)
@given(
    decisions=decisions_st,
    load_w=st.floats(0, 50_000, allow_nan=False),
    verification=st.sampled_from([Verification.DEVICE_SIGNED, Verification.METER_ATTESTED]),
)
def test_totals_are_the_sums_over_off_intervals(
    decisions: list[Decision], load_w: float, verification: Verification
) -> None:
    totals = summarize(decisions, load_w=load_w, interval_s=300, verification=verification)
    off = [d for d in decisions if not d.on]
    assert totals.intervals == len(decisions)
    assert totals.off == tuple(d.end_us for d in off)
    assert totals.hours_off == pytest.approx(len(off) * 300 / 3600)
    assert totals.kwh_avoided == pytest.approx(load_w * len(off) * 300 / 3.6e6)
    assert totals.cost_avoided == pytest.approx(
        sum(load_w * 300 / 3600 / 1e6 * d.price for d in off), abs=1e-9
    )
    expected = 0
    peaks = [
        d for d in off if d.average is not None and price_cents(d.price) > price_cents(d.average)
    ]
    for d in peaks:  # only a reduction at a peak earns
        need = need_index_from_price(d.price, d.average)  # type: ignore[arg-type]
        expected += demand_reduction_reward_mc(
            ValueRules(),
            avoided_wh=math.floor(load_w * 300 / 3600),
            need_index=need,
            verification=verification,
            zone="au/nsw",
        )
    assert totals.credits_mc == expected
    assert totals.credits == expected / 1000


def test_a_meter_attested_reduction_earns_more_than_a_self_metered_one() -> None:
    off = [decision(0, 300.0, 100.0, False)]
    device = summarize(off, load_w=2000, verification=Verification.DEVICE_SIGNED)
    meter = summarize(off, load_w=2000, verification=Verification.METER_ATTESTED)
    # 166 Wh at need 1000 (price 3× the average): ×1.3 demand, ×1.1 locality, ×0.8 or ×1.0 trust
    assert device.credits_mc == 166 * 1100 * 1300 * 800 // 10**9
    assert meter.credits_mc == 166 * 1100 * 1300 // 10**6
    assert meter.credits_mc > device.credits_mc


def test_on_intervals_earn_nothing_and_lengths_come_from_the_decisions() -> None:
    items = [decision(0, 500.0, 100.0, True), decision(1, 500.0, 100.0, False, interval_s=1800)]
    assert interval_credits_mc(items[0], avoided_wh=100) == 0
    totals = summarize(items, load_w=1000)
    assert totals.kwh_avoided == pytest.approx(0.5)
    assert totals.hours_off == pytest.approx(0.5)


@pytest.mark.parametrize("load", [-1.0, math.nan, math.inf])
def test_a_bad_load_is_refused(load: float) -> None:
    with pytest.raises(ValueError, match="load"):
        summarize([], load_w=load)
    with pytest.raises(ValueError, match="load"):
        avoided_wh(load, 300)


def test_off_periods_join_consecutive_off_intervals() -> None:
    on_off = [True, False, False, True, False]
    items = [decision(i, 100.0, 100.0, on) for i, on in enumerate(on_off)]
    assert off_periods(items) == [
        (items[1].start_us, items[2].end_us),
        (items[4].start_us, items[4].end_us),
    ]
