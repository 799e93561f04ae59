"""Whether an installed app runs: its pricing and the periods paid (pure; time passed in).

A **free** or **freemium** app runs from its installation until it is uninstalled (a freemium
app is *premium* while paid). A **subscription** app runs while paid: period ``n`` covers
``[installed + n·period, installed + (n+1)·period)``, and the app runs until the end of the last
period in an unbroken run of paid periods from period 0. A gap is never filled later: an unpaid
subscription stops at the end of its paid time, and a manager who wants it back installs it
again (a new installation, new app keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ioe.zomes.appstore.entries import Pricing, PricingModel

US = 1_000_000


class AppState(StrEnum):
    RUNNING = "running"
    UNPAID = "unpaid"
    """A subscription whose paid time is over (or whose first period was never paid)."""
    UNINSTALLED = "uninstalled"


def periods_in_a_row(paid: Iterable[int]) -> int:
    """How many periods from 0 on are paid without a gap (duplicates count once)."""
    have = set(paid)
    count = 0
    while count in have:
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an installation stands at ``now_us``."""

    state: AppState
    paid_periods: int
    paid_until_us: int | None
    """End of the paid time (None: the app needs no payment to run)."""
    premium: bool

    @property
    def running(self) -> bool:
        return self.state is AppState.RUNNING


def standing(
    pricing: Pricing, installed_us: int, paid: Iterable[int], now_us: int, *, uninstalled: bool
) -> Standing:
    """Whether an installation made at ``installed_us`` runs at ``now_us``."""
    count = periods_in_a_row(paid)
    if pricing.model is PricingModel.FREE:
        until = None
    else:
        until = installed_us + count * pricing.period_s * US
    if uninstalled:
        return Standing(AppState.UNINSTALLED, count, until, premium=False)
    paid_now = until is not None and now_us < until
    if pricing.model is PricingModel.SUBSCRIPTION:
        state = AppState.RUNNING if paid_now else AppState.UNPAID
        return Standing(state, count, until, premium=paid_now)
    return Standing(AppState.RUNNING, count, None if until is None else until, premium=paid_now)


def renewal_due(
    pricing: Pricing, installed_us: int, paid: Iterable[int], now_us: int
) -> int | None:
    """The period to pay now, or None: a paid app's next period is paid ahead, once less than a
    quarter of the current period (at most a minute) is left; never after the paid time ran
    out (that subscription has stopped)."""
    if pricing.model is PricingModel.FREE:
        return None
    count = periods_in_a_row(paid)
    until = installed_us + count * pricing.period_s * US
    lead_us = min(pricing.period_s * US // 4, 60 * US)
    if count == 0:
        return 0 if now_us < installed_us + pricing.period_s * US else None
    if now_us >= until:
        return None
    return count if until - now_us <= lead_us else None
