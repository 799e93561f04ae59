"""The peak rule against an independent re-implementation, and its timing limits as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.apps.demand.rule import (
    HOLDING_OFF,
    HOLDING_ON,
    MAX_OFF,
    NO_AVERAGE,
    PEAK,
    Decision,
    PeakSettings,
    PeakState,
    decide_all,
    initial_state,
    safe_decision,
    step,
)
from ioe.market_data import PricePoint

T0 = 1_674_000_000_000_000  # µs, a round 5-minute boundary is not needed
FIVE_MIN_US = 300_000_000


def no_limits(**kw: float) -> PeakSettings:
    return PeakSettings(min_off_minutes=0, min_on_minutes=0, max_off_minutes=0, **kw)  # type: ignore[arg-type]


def reference_off(ends: list[int], prices: list[float], x: float, w: int, f: float) -> list[bool]:
    """The issue's rule, written from its text: off iff price_i > (1 + X/100) × max(avg_i, F),
    avg_i the mean of intervals j with end_i − W min ≤ end_j < end_i; no average → on."""
    off = []
    for i, (end, price) in enumerate(zip(ends, prices, strict=True)):
        before = [prices[j] for j in range(i) if end - w * 60_000_000 <= ends[j] < end]
        if not before:
            off.append(False)
            continue
        avg = math.fsum(before) / len(before)
        off.append(price > (1 + x / 100) * max(avg, f))
    return off


def series(prices: list[float], gaps: list[int] | None = None) -> list[PricePoint]:
    end = T0
    points = []
    for i, price in enumerate(prices):
        end += FIVE_MIN_US * (1 + (gaps[i] if gaps else 0))
        points.append(PricePoint(end, price))
    return points


prices_st = st.lists(
    st.one_of(
        st.integers(-1000, 15000).map(float),
        st.integers(-100_000, 1_500_000).map(lambda c: c / 100),
        st.sampled_from([0.0, 50.0, 65.0, 100.0, 130.0]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    prices=prices_st,
    gaps=st.lists(st.sampled_from([0, 0, 0, 0, 1, 3, 20]), min_size=80, max_size=80),
    x=st.one_of(st.sampled_from([0.0, 20.0, 30.0]), st.floats(0, 300, allow_nan=False)),
    w=st.integers(1, 240),
    f=st.one_of(st.sampled_from([0.0, 50.0]), st.floats(0, 500, allow_nan=False)),
)
def test_off_exactly_where_the_rule_says(
    prices: list[float], gaps: list[int], x: float, w: int, f: float
) -> None:
    points = series(prices, gaps)
    decisions = decide_all(no_limits(threshold_pct=x, window_minutes=w, floor_price=f), points, 300)
    expected = reference_off([p.end_us for p in points], prices, x, w, f)
    assert [not d.on for d in decisions] == expected
    assert decisions[0].on and decisions[0].average is None


def test_a_worked_example() -> None:
    # 30 % over max(avg, 50): the spike to 200 is off, its own price stays out of the average
    prices = [100.0, 100.0, 100.0, 200.0, 120.0, 40.0, 60.0]
    decisions = decide_all(no_limits(threshold_pct=30, window_minutes=15), series(prices), 300)
    assert [d.on for d in decisions] == [True, True, True, False, True, True, True]
    assert decisions[0].reason == NO_AVERAGE
    assert decisions[3].average == 100.0 and decisions[3].threshold == pytest.approx(130.0)
    assert decisions[3].reason == PEAK
    # interval 4's average (window 15 min: 100, 100, 200) includes the spike that came before
    assert decisions[4].average == pytest.approx(400 / 3)
    # 60 after (200, 120, 40): avg 120 → threshold 156; the floor binds only under 50
    assert decisions[6].threshold == pytest.approx(1.3 * 120)


def test_the_floor_keeps_cheap_moves_from_being_peaks() -> None:
    prices = [10.0, 10.0, 40.0, 70.0]
    on = [d.on for d in decide_all(no_limits(floor_price=50.0), series(prices), 300)]
    assert on == [True, True, True, False]  # 40 > 13 but not > 65; 70 > 65


def runs(decisions: list[Decision]) -> list[tuple[bool, int, int]]:
    """(on, total seconds, index of the first decision after the run or len) per run."""
    out: list[tuple[bool, int, int]] = []
    for i, d in enumerate(decisions):
        if out and out[-1][0] == d.on:
            state, seconds, _ = out[-1]
            out[-1] = (state, seconds + d.interval_s, i + 1)
        else:
            out.append((d.on, d.interval_s, i + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(
    prices=st.lists(st.integers(0, 400).map(float), min_size=1, max_size=150),
    x=st.sampled_from([0.0, 10.0, 30.0]),
    w=st.integers(5, 120),
    min_off=st.integers(0, 40),
    min_on=st.integers(0, 40),
    max_off=st.integers(0, 90),
    interval_s=st.sampled_from([60, 300, 420]),
)
def test_never_toggles_faster_than_the_minimum_times_nor_stays_off_too_long(
    prices: list[float],
    x: float,
    w: int,
    min_off: int,
    min_on: int,
    max_off: int,
    interval_s: int,
) -> None:
    if 0 < max_off < min_off:
        max_off = min_off
    rule = PeakSettings(
        threshold_pct=x,
        window_minutes=w,
        floor_price=0.0,
        min_off_minutes=min_off,
        min_on_minutes=min_on,
        max_off_minutes=max_off,
    )
    points = [PricePoint(T0 + (i + 1) * interval_s * 1_000_000, p) for i, p in enumerate(prices)]
    decisions = decide_all(rule, points, interval_s)
    all_runs = runs(decisions)
    for index, (on, seconds, after) in enumerate(all_runs):
        complete = after < len(decisions)  # a run cut by the end of the replay is not judged
        if not on:
            if max_off:
                assert seconds <= max_off * 60
            ended_by_max = complete and decisions[after].reason == MAX_OFF
            if complete and not ended_by_max:
                assert seconds >= min_off * 60
        elif index > 0 and complete:  # the first on run did not start by switching
            assert seconds >= min_on * 60
    # the plug is off only in a peak, or while the minimum off time holds it
    for d in decisions:
        if not d.on:
            assert d.reason in (PEAK, HOLDING_OFF)
            assert d.peak or d.reason == HOLDING_OFF


def test_minimum_times_hold_the_state() -> None:
    rule = PeakSettings(threshold_pct=30, window_minutes=10, min_off_minutes=15, min_on_minutes=10)
    prices = [100.0, 100.0, 300.0, 100.0, 100.0, 100.0, 300.0, 300.0]
    decisions = decide_all(rule, series(prices), 300)
    assert [d.on for d in decisions] == [True, True, False, False, False, True, True, False]
    assert decisions[3].reason == HOLDING_OFF
    assert decisions[6].reason == HOLDING_ON  # a peak 5 min after switching back on


def test_maximum_off_time_turns_the_plug_on_then_minimum_on_applies() -> None:
    rule = PeakSettings(
        threshold_pct=10,
        window_minutes=5,
        floor_price=0,
        min_off_minutes=0,
        min_on_minutes=10,
        max_off_minutes=15,
    )
    prices = [100.0] + [200.0 * 1.2**i for i in range(10)]  # each price a peak over the last
    decisions = decide_all(rule, series(prices), 300)
    on = [d.on for d in decisions]
    assert on == [True, False, False, False, True, True, False, False, False, True, True]
    assert decisions[4].reason == MAX_OFF
    assert decisions[5].reason == HOLDING_ON


def test_changing_settings_mid_run_takes_effect_at_once() -> None:
    prices = [100.0, 100.0, 125.0, 125.0, 125.0]
    points = series(prices)
    state = initial_state()
    strict, loose = no_limits(threshold_pct=30), no_limits(threshold_pct=10)
    on = []
    for i, point in enumerate(points):
        state, decision = step(strict if i < 3 else loose, state, point.end_us, point.price, 300)
        on.append(decision.on)
    # 125 is no peak at 30 % over 100 (or 108.3), but is one at 10 % over 108.3 and 112.5
    assert on == [True, True, True, False, False]


@settings(max_examples=100, deadline=None)
@given(
    prices=st.lists(st.integers(0, 300).map(float), min_size=2, max_size=60),
    xs=st.lists(st.sampled_from([0.0, 10.0, 30.0, 100.0]), min_size=60, max_size=60),
    ws=st.lists(st.sampled_from([5, 30, 60, 240]), min_size=60, max_size=60),
)
def test_settings_changed_every_interval_still_follow_the_rule(
    prices: list[float], xs: list[float], ws: list[int]
) -> None:
    points = series(prices)
    ends = [p.end_us for p in points]
    state = initial_state()
    for i, point in enumerate(points):
        rule = no_limits(threshold_pct=xs[i], window_minutes=ws[i], floor_price=0.0)
        state, decision = step(rule, state, point.end_us, point.price, 300)
        expected = reference_off(ends[: i + 1], prices[: i + 1], xs[i], ws[i], 0.0)[-1]
        assert (not decision.on) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e12, "12", None, True])
def test_step_refuses_garbage_prices(bad: object) -> None:
    with pytest.raises(ValueError, match="price"):
        step(PeakSettings(), initial_state(), T0, bad, 300)  # type: ignore[arg-type]


def test_step_refuses_intervals_out_of_order() -> None:
    state, _ = step(PeakSettings(), initial_state(), T0, 50.0, 300)
    for end in (T0, T0 - 1):
        with pytest.raises(ValueError, match="not after the previous"):
            step(PeakSettings(), state, end, 50.0, 300)
    with pytest.raises(ValueError, match="interval length"):
        step(PeakSettings(), state, T0 + 1, 50.0, 0)


def test_the_safe_state_is_on_and_garbage_never_enters_the_average() -> None:
    rule = no_limits(threshold_pct=30, window_minutes=60)
    state = initial_state()
    for i, price in enumerate([100.0, 100.0, 300.0]):
        state, decision = step(rule, state, T0 + i * FIVE_MIN_US, price, 300)
    assert not decision.on
    state, safe = safe_decision(state, T0 + 3 * FIVE_MIN_US, "the feed sent NaN", math.nan)
    assert safe.on and safe.reason == "safe state: the feed sent NaN"
    assert state.on and state.history[-1][1] == 300.0  # the NaN is not remembered
    _, after = step(rule, state, T0 + 4 * FIVE_MIN_US, 100.0, 300)
    assert after.average == pytest.approx(500 / 3)
    # decide_all does the same for a bad point in a series
    decisions = decide_all(rule, series([100.0, math.nan, 100.0]), 300)
    assert decisions[1].on and decisions[1].reason.startswith("safe state: ")
    assert decisions[2].average == 100.0


def test_after_the_safe_state_the_minimum_on_time_applies() -> None:
    rule = PeakSettings(threshold_pct=30, window_minutes=60, min_off_minutes=0, min_on_minutes=10)
    state = PeakState(history=((T0, 100.0),), on=False, held_s=300)
    state, _ = safe_decision(state, T0 + FIVE_MIN_US, "stale")
    _, decision = step(rule, state, T0 + 2 * FIVE_MIN_US, 500.0, 300)
    assert decision.on and decision.reason == HOLDING_ON


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold_pct": -1}, "threshold_pct"),
        ({"threshold_pct": math.nan}, "threshold_pct"),
        ({"window_minutes": 0}, "window_minutes"),
        ({"window_minutes": 1.5}, "window_minutes"),
        ({"floor_price": -5.0}, "floor_price"),
        ({"min_off_minutes": -1}, "min_off_minutes"),
        ({"min_on_minutes": True}, "min_on_minutes"),
        ({"max_off_minutes": 5, "min_off_minutes": 10}, "max_off_minutes"),
        ({"colour": "red"}, "unknown settings: colour"),
    ],
)
def test_settings_say_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PeakSettings().with_changes(**changes)


@given(
    x=st.floats(0, 10_000, allow_nan=False),
    w=st.integers(1, 1440),
    f=st.floats(0, 1e6, allow_nan=False),
    limits=st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100)),
)
def test_settings_round_trip(x: float, w: int, f: float, limits: tuple[int, int, int]) -> None:
    min_off, min_on, max_off = limits
    if 0 < max_off < min_off:
        max_off = 0
    rule = PeakSettings(x, w, f, min_off, min_on, max_off)
    assert PeakSettings.from_value(rule.to_value()) == rule
    assert PeakSettings.from_value({}) == PeakSettings()
    assert PeakSettings.from_value({"threshold_pct": 20}).threshold_pct == 20.0


def test_decisions_round_trip() -> None:
    decisions = decide_all(PeakSettings(), series([100.0, 100.0, 300.0, math.inf]), 300)
    for decision in decisions[:3]:
        assert Decision.from_value(decision.to_value()) == decision
    assert decisions[3].to_value()["price"] is None
