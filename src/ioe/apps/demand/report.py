"""What sitting out the peaks earned: hours off, energy and cost avoided, credits (pure).

For a run of :class:`~ioe.apps.demand.rule.Decision` s and the plug's load ``L`` watts, over the
intervals in which the plug was off:

- ``kwh_avoided`` = L × their duration (kWh);
- ``cost_avoided`` = Σ energy (MWh) × the interval's price (per MWh, so in the market's money);
- ``credits_mc`` = Σ :func:`~ioe.zomes.currency.rewards.demand_reduction_reward_mc` of each
  interval's avoided energy in whole Wh (``floor(L × interval_s / 3600)``), at the zone's need
  index from how far the price stood above its average
  (:func:`~ioe.zomes.currency.rewards.need_index_from_price`), verified as the caller says:
  ``DEVICE_SIGNED`` when only the plug meters itself, ``METER_ATTESTED`` when a site meter
  attests its readings. An off interval without an average (held off across a gap) is valued
  at need index 0 (par).

Each interval is valued on its own, as the live app pays them, so a replay and the live plug
agree to the milli-credit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ioe.apps.demand.rule import Decision
from ioe.zomes.currency.rewards import (
    demand_reduction_reward_mc,
    need_index_from_cents,
    price_cents,
)
from ioe.zomes.currency.value import MAX_ENERGY_WH, ValueRules, Verification

__all__ = [
    "DEFAULT_ZONE",
    "ReportTotals",
    "avoided_wh",
    "interval_credits_mc",
    "off_periods",
    "summarize",
]

DEFAULT_ZONE = "au/nsw"
US = 1_000_000
_DEFAULT_RULES = ValueRules()


@dataclass(frozen=True, slots=True)
class ReportTotals:
    """The totals of a run of decisions."""

    intervals: int
    off_intervals: int
    hours_off: float
    kwh_avoided: float
    cost_avoided: float
    """In the market's money (AUD for the NEM)."""
    credits_mc: int
    off: tuple[int, ...] = ()
    """The end (µs) of each off interval, in order."""

    @property
    def credits(self) -> float:
        return self.credits_mc / 1000

    def to_value(self) -> dict[str, Any]:
        return {
            "intervals": self.intervals,
            "off_intervals": self.off_intervals,
            "hours_off": self.hours_off,
            "kwh_avoided": self.kwh_avoided,
            "cost_avoided": self.cost_avoided,
            "credits": self.credits,
            "credits_mc": self.credits_mc,
        }


def _check_load(load_w: float) -> float:
    if isinstance(load_w, bool) or not isinstance(load_w, int | float):
        raise ValueError(f"the load is a number of watts, not {load_w!r}")
    if not math.isfinite(load_w) or load_w < 0:
        raise ValueError(f"the load is a finite, non-negative number of watts, not {load_w}")
    return float(load_w)


def avoided_wh(load_w: float, interval_s: int) -> int:
    """The whole Wh a load of ``load_w`` would have drawn in ``interval_s`` (rounded down)."""
    wh = math.floor(_check_load(load_w) * interval_s / 3600)
    if wh > MAX_ENERGY_WH:
        raise ValueError(f"{load_w} W for {interval_s} s is more energy than a reward can value")
    return wh


def interval_credits_mc(
    decision: Decision,
    *,
    avoided_wh: int,
    verification: Verification = Verification.DEVICE_SIGNED,
    zone: str = DEFAULT_ZONE,
    rules: ValueRules = _DEFAULT_RULES,
) -> int:
    """The milli-credits earned by not drawing ``avoided_wh`` in the interval of ``decision``.

    Only a reduction at a peak earns: 0 for an interval in which the plug was on, or in which
    the price (in the integer hundredths a claim carries) was not above its average — an
    interval the minimum off time held the plug off after the peak had passed."""
    if decision.on or avoided_wh == 0 or decision.average is None:
        return 0
    if not (math.isfinite(decision.price) and math.isfinite(decision.average)):
        return 0
    now, mean = price_cents(decision.price), price_cents(decision.average)
    if now <= mean:
        return 0
    need = need_index_from_cents(now, mean)
    return demand_reduction_reward_mc(
        rules, avoided_wh=avoided_wh, need_index=need, verification=verification, zone=zone
    )


def summarize(
    decisions: Iterable[Decision],
    *,
    load_w: float,
    interval_s: int | None = None,
    verification: Verification = Verification.DEVICE_SIGNED,
    zone: str = DEFAULT_ZONE,
    rules: ValueRules = _DEFAULT_RULES,
) -> ReportTotals:
    """The totals of ``decisions`` for a plug drawing ``load_w`` when on. Each interval is
    ``interval_s`` long, or, when that is None, as long as its decision says."""
    load = _check_load(load_w)
    count = 0
    off: list[int] = []
    off_s = 0
    cost = 0.0
    credits = 0
    for decision in decisions:
        count += 1
        if decision.on:
            continue
        length = decision.interval_s if interval_s is None else interval_s
        off.append(decision.end_us)
        off_s += length
        energy_mwh = load * length / 3600 / 1e6
        if math.isfinite(decision.price):
            cost += energy_mwh * decision.price
        credits += interval_credits_mc(
            decision,
            avoided_wh=avoided_wh(load, length),
            verification=verification,
            zone=zone,
            rules=rules,
        )
    return ReportTotals(
        intervals=count,
        off_intervals=len(off),
        hours_off=off_s / 3600,
        kwh_avoided=load * off_s / 3600 / 1000,
        cost_avoided=cost,
        credits_mc=credits,
        off=tuple(off),
    )


def off_periods(decisions: Iterable[Decision]) -> list[tuple[int, int]]:
    """The runs of off intervals as (start µs, end µs), for a history of off-periods."""
    periods: list[tuple[int, int]] = []
    previous_off = False
    for decision in decisions:
        if not decision.on:
            if previous_off and periods and periods[-1][1] == decision.start_us:
                periods[-1] = (periods[-1][0], decision.end_us)
            else:
                periods.append((decision.start_us, decision.end_us))
        previous_off = not decision.on
    return periods
