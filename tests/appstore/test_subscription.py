"""Whether an installed app runs, worked by hand: periods paid in a row from 0, renewals paid
ahead in the last quarter of a period (at most a minute), nothing after the paid time ran out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ioe.appstore.subscription import AppState, periods_in_a_row, renewal_due, standing
from ioe.zomes.appstore.entries import Pricing, PricingModel

S = 1_000_000
T0 = 1_000 * S
MONTHLY = Pricing(PricingModel.SUBSCRIPTION, fee_mc=500, period_s=100)


def test_periods_count_only_in_an_unbroken_run_from_zero() -> None:
    assert periods_in_a_row([]) == 0
    assert periods_in_a_row([0, 1, 1, 2]) == 3
    assert periods_in_a_row([1, 2, 3]) == 0  # period 0 never paid
    assert periods_in_a_row([0, 2]) == 1  # a gap ends the run


def test_a_subscription_runs_until_the_end_of_its_paid_time() -> None:
    # two periods of 100 s paid: it runs over [T0, T0 + 200 s)
    assert standing(MONTHLY, T0, [0, 1], T0 + 199 * S, uninstalled=False).state is AppState.RUNNING
    late = standing(MONTHLY, T0, [0, 1], T0 + 200 * S, uninstalled=False)
    assert (late.state, late.paid_until_us, late.paid_periods) == (AppState.UNPAID, T0 + 200 * S, 2)
    assert standing(MONTHLY, T0, [], T0, uninstalled=False).state is AppState.UNPAID
    gone = standing(MONTHLY, T0, [0, 1], T0 + S, uninstalled=True)
    assert gone.state is AppState.UNINSTALLED and not gone.running


def test_free_and_freemium_apps_run_unpaid() -> None:
    free = Pricing(PricingModel.FREE)
    assert standing(free, T0, [], T0 + 10**9 * S, uninstalled=False).running
    freemium = Pricing(PricingModel.FREEMIUM, fee_mc=100, period_s=50)
    basic = standing(freemium, T0, [], T0 + S, uninstalled=False)
    assert basic.running and not basic.premium
    premium = standing(freemium, T0, [0], T0 + 49 * S, uninstalled=False)
    assert premium.running and premium.premium


def test_renewals_are_due_in_the_last_quarter_of_a_period_and_never_after() -> None:
    # period 100 s: a quarter is 25 s (under the one-minute cap)
    assert renewal_due(MONTHLY, T0, [], T0 + S) == 0  # the first period, at once
    assert renewal_due(MONTHLY, T0, [0], T0 + 74 * S) is None  # 26 s left: not yet
    assert renewal_due(MONTHLY, T0, [0], T0 + 75 * S) == 1  # 25 s left
    assert renewal_due(MONTHLY, T0, [0, 1], T0 + 180 * S) == 2
    assert renewal_due(MONTHLY, T0, [0], T0 + 100 * S) is None  # ran out: it stopped
    assert renewal_due(MONTHLY, T0, [], T0 + 100 * S) is None
    long = Pricing(PricingModel.SUBSCRIPTION, fee_mc=1, period_s=3_600)
    assert renewal_due(long, T0, [0], T0 + 3_539 * S) is None  # 61 s left: the cap is 60 s
    assert renewal_due(long, T0, [0], T0 + 3_540 * S) == 1
    assert renewal_due(Pricing(PricingModel.FREE), T0, [], T0) is None


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=30), st.integers(0, 3_000))
def test_a_subscription_runs_exactly_while_now_is_before_its_paid_time(
    paid: list[int], at_s: int
) -> None:
    s = standing(MONTHLY, T0, paid, T0 + at_s * S, uninstalled=False)
    assert s.paid_until_us == T0 + periods_in_a_row(paid) * 100 * S
    assert s.running == (T0 + at_s * S < s.paid_until_us)
