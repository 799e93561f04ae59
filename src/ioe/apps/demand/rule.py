"""The Demand Management rule: sit out price peaks (pure; no I/O, time passed in).

Each market interval (5 minutes in the NEM) has a price per MWh, known at the interval's end.
The plug is **off** in interval *i* when the price peaks more than ``threshold_pct`` over its
recent average::

    off_i  ⇔  price_i > (1 + X/100) × max(avg_i, F)

``avg_i`` is the mean price of the intervals that ended in the ``window_minutes`` (W) before
interval *i* ended, **not including i** (a single spike must not raise its own bar):
intervals *j* with ``end_i − W·60 s ≤ end_j < end_i``. With no such interval (the first one,
or after a gap longer than W) there is no average and the plug stays on. ``F`` (``floor_price``)
keeps a cheap stretch from turning small price moves into "peaks": a price has to beat
``(1 + X/100) × F`` before it counts, whatever the average.

Three comfort and wear limits apply on top, each counted in interval durations and each
disabled by 0:

- ``min_off_minutes``: once off, the plug stays off at least this long;
- ``min_on_minutes``: once switched back on, it stays on at least this long (the first
  switch-off of a run needs no waiting: the plug did not switch to be on at the start);
- ``max_off_minutes``: the plug is never off longer than this in one go; the interval that
  would take it past the limit is on ("maximum off time reached"), and ``min_on_minutes``
  follows. This limit wins over ``min_off_minutes`` when the two disagree.

:func:`step` takes the settings at every call, and :class:`PeakState` holds only what happened
(recent prices, the switch and how long it has held), so the threshold or the window can change
between two intervals and the next decision uses the new values at once.

A price that is not a finite number is garbage: :func:`step` refuses it (``ValueError``) and the
caller answers with :func:`safe_decision` — the safe state of a plug is **on**: the appliance
keeps running, and the app never leaves a load off on data it cannot trust.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Decision",
    "MAX_ABS_PRICE",
    "MAX_HISTORY_POINTS",
    "MAX_WINDOW_MINUTES",
    "PeakSettings",
    "PeakState",
    "REASONS",
    "decide_all",
    "initial_state",
    "safe_decision",
    "step",
]

US = 1_000_000
MAX_WINDOW_MINUTES = 24 * 60
"""The longest averaging window (a day); the state keeps this much history."""
MAX_LIMIT_MINUTES = 7 * 24 * 60
"""The longest minimum or maximum time (a week)."""
MAX_THRESHOLD_PCT = 10_000.0
MAX_ABS_PRICE = 1e9
"""Prices beyond ±10⁹ per MWh are garbage (the NEM's cap is about 2 × 10⁴)."""
MAX_INTERVAL_S = 86_400
MAX_HISTORY_POINTS = 2_880
"""At most this many past intervals are kept (a day of 30-second intervals)."""

NORMAL = "normal"
PEAK = "peak"
HOLDING_OFF = "holding off (minimum off time)"
HOLDING_ON = "holding on (minimum on time)"
MAX_OFF = "maximum off time reached"
NO_AVERAGE = "no average yet"
SAFE = "safe state"
REASONS = (NORMAL, PEAK, HOLDING_OFF, HOLDING_ON, MAX_OFF, NO_AVERAGE, SAFE)
"""Every reason a decision gives (a safe decision's reason starts with ``"safe state: "``)."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} is a finite number, not {value!r}")
    return float(value)


def _minutes(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} is a whole number of minutes, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} is between {low} and {high} minutes, not {value}")


@dataclass(frozen=True, slots=True)
class PeakSettings:
    """What the user sets. Defaults: a 30 % peak over the last hour's average, a floor of
    50 per MWh, at least 10 minutes off and 10 on between switches, at most 2 hours off."""

    threshold_pct: float = 30.0
    """How far above the reference price (``max(average, floor)``) a peak starts, in %."""
    window_minutes: int = 60
    """The trailing averaging window (W), 1 minute to a day."""
    floor_price: float = 50.0
    """The lowest reference price F, per MWh (≥ 0): below it, price moves are not peaks."""
    min_off_minutes: int = 10
    min_on_minutes: int = 10
    max_off_minutes: int = 120

    def __post_init__(self) -> None:
        pct = _number("threshold_pct", self.threshold_pct)
        if not 0 <= pct <= MAX_THRESHOLD_PCT:
            raise ValueError(f"threshold_pct is between 0 and {MAX_THRESHOLD_PCT:g} %, not {pct}")
        _minutes("window_minutes", self.window_minutes, 1, MAX_WINDOW_MINUTES)
        floor = _number("floor_price", self.floor_price)
        if not 0 <= floor <= MAX_ABS_PRICE:
            raise ValueError(f"floor_price is between 0 and {MAX_ABS_PRICE:g} per MWh, not {floor}")
        for name in ("min_off_minutes", "min_on_minutes", "max_off_minutes"):
            _minutes(name, getattr(self, name), 0, MAX_LIMIT_MINUTES)
        if 0 < self.max_off_minutes < self.min_off_minutes:
            raise ValueError(
                f"max_off_minutes ({self.max_off_minutes}) is shorter than min_off_minutes "
                f"({self.min_off_minutes}); make it longer, or 0 to disable it"
            )
        # store exact floats (an int threshold from JSON stays comparable after a round trip)
        object.__setattr__(self, "threshold_pct", pct)
        object.__setattr__(self, "floor_price", floor)

    def with_changes(self, **changes: Any) -> PeakSettings:
        """A copy with some settings changed (validated: ``ValueError`` saying what is wrong)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_value(self) -> dict[str, Any]:
        """The settings as a plain map (for storage and JSON)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_value(cls, value: object) -> PeakSettings:
        """Settings from a stored map; missing keys take their defaults."""
        if not isinstance(value, Mapping):
            raise ValueError("settings are a map of names to values")
        return cls().with_changes(**{str(k): v for k, v in value.items()})

    def reference(self, average: float) -> float:
        return max(average, self.floor_price)

    def threshold(self, average: float) -> float:
        """The price above which an interval with this average is a peak."""
        return (1 + self.threshold_pct / 100) * max(average, self.floor_price)


_FIELDS = tuple(f.name for f in dataclasses.fields(PeakSettings))


@dataclass(frozen=True, slots=True)
class PeakState:
    """What the rule remembers between intervals (independent of the settings)."""

    history: tuple[tuple[int, float], ...] = ()
    """Recent intervals as (end µs, price), oldest first, at most a day's worth."""
    on: bool = True
    held_s: int | None = None
    """How long the plug has been in its current state, in interval durations; None when it
    has not switched since the start (no minimum time applies)."""

    @property
    def last_end_us(self) -> int | None:
        return self.history[-1][0] if self.history else None


def initial_state() -> PeakState:
    """The state before the first interval: on, nothing seen."""
    return PeakState()


@dataclass(frozen=True, slots=True)
class Decision:
    """The switch for one interval, and why."""

    end_us: int
    price: float
    average: float | None
    threshold: float | None
    on: bool
    reason: str
    interval_s: int = 300

    @property
    def start_us(self) -> int:
        return self.end_us - self.interval_s * US

    @property
    def peak(self) -> bool:
        """Whether the price was over the threshold (the plug may still be on, e.g. held)."""
        return self.threshold is not None and self.price > self.threshold

    def to_value(self) -> dict[str, Any]:
        """A plain map for storage and JSON (a price that is not finite becomes None)."""
        return {
            "end_us": self.end_us,
            "price": self.price if math.isfinite(self.price) else None,
            "average": self.average,
            "threshold": self.threshold,
            "on": self.on,
            "reason": self.reason,
            "interval_s": self.interval_s,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Decision:
        price = value.get("price")
        return cls(
            end_us=int(value["end_us"]),
            price=math.nan if price is None else float(price),
            average=None if value.get("average") is None else float(value["average"]),
            threshold=None if value.get("threshold") is None else float(value["threshold"]),
            on=bool(value["on"]),
            reason=str(value["reason"]),
            interval_s=int(value.get("interval_s", 300)),
        )


def _check_interval(state: PeakState, end_us: int, interval_s: int) -> None:
    if isinstance(end_us, bool) or not isinstance(end_us, int):
        raise ValueError(f"the interval end is an integer of µs, not {end_us!r}")
    if isinstance(interval_s, bool) or not isinstance(interval_s, int):
        raise ValueError(f"the interval length is an integer of seconds, not {interval_s!r}")
    if not 0 < interval_s <= MAX_INTERVAL_S:
        raise ValueError(f"the interval length is 1 s to a day, not {interval_s} s")
    last = state.last_end_us
    if last is not None and end_us <= last:
        raise ValueError(
            f"interval ending at {end_us} µs is not after the previous one ({last} µs)"
        )


def _average(history: tuple[tuple[int, float], ...], end_us: int, window_s: int) -> float | None:
    since = end_us - window_s * US
    window = [price for end, price in history if since <= end < end_us]
    if not window:
        return None
    return math.fsum(window) / len(window)


def step(
    settings: PeakSettings, state: PeakState, end_us: int, price: float, interval_s: int
) -> tuple[PeakState, Decision]:
    """Decide the interval ending at ``end_us`` (µs since the epoch) with ``price`` per MWh,
    ``interval_s`` long. ``ValueError`` for a price that is not a finite number (use
    :func:`safe_decision`), or an interval that does not end after the previous one."""
    _check_interval(state, end_us, interval_s)
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise ValueError(f"price {price!r} is not a number")
    if not math.isfinite(price) or abs(price) > MAX_ABS_PRICE:
        raise ValueError(f"price {price!r} is not a usable number")
    price = float(price)

    average = _average(state.history, end_us, settings.window_minutes * 60)
    threshold = None if average is None else settings.threshold(average)
    peak = threshold is not None and price > threshold
    calm = NORMAL if average is not None else NO_AVERAGE
    held = state.held_s
    max_off_s = settings.max_off_minutes * 60
    # would being off in this interval keep the plug off longer than allowed?
    off_so_far = 0 if state.on else (held or 0)
    too_long = max_off_s > 0 and off_so_far + interval_s > max_off_s

    if not state.on:
        if too_long:
            on, reason = True, MAX_OFF
        elif held is not None and held < settings.min_off_minutes * 60:
            on, reason = False, PEAK if peak else HOLDING_OFF
        else:
            on, reason = (False, PEAK) if peak else (True, calm)
    elif held is not None and held < settings.min_on_minutes * 60:
        on, reason = True, HOLDING_ON if peak else calm
    elif peak and too_long:
        on, reason = True, MAX_OFF
    else:
        on, reason = (False, PEAK) if peak else (True, calm)

    if on == state.on and held is not None:
        held_s: int | None = held + interval_s
    elif on == state.on:
        held_s = None
    else:
        held_s = interval_s
    keep_since = end_us - MAX_WINDOW_MINUTES * 60 * US
    history = tuple(p for p in state.history if p[0] >= keep_since)[-(MAX_HISTORY_POINTS - 1) :]
    new_state = PeakState(history=(*history, (end_us, price)), on=on, held_s=held_s)
    decision = Decision(end_us, price, average, threshold, on, reason, interval_s)
    return new_state, decision


def safe_decision(
    state: PeakState, end_us: int, problem: str, price: float = math.nan, interval_s: int = 300
) -> tuple[PeakState, Decision]:
    """The plug's safe state (on) when the data cannot be trusted: ``problem`` says why.

    The bad price is not remembered (it must not enter later averages). A plug that was off is
    switched on, and the minimum on time applies from here; the interval's time is not
    recorded, so the next good interval is only required to be after the last good one."""
    new_state = state if state.on else dataclasses.replace(state, on=True, held_s=0)
    reason = f"{SAFE}: {problem}"
    number = price if isinstance(price, float) else math.nan
    return new_state, Decision(end_us, number, None, None, True, reason, interval_s)


class _Point(Protocol):
    @property
    def end_us(self) -> int: ...

    @property
    def price(self) -> float: ...


def decide_all(settings: PeakSettings, points: Iterable[_Point], interval_s: int) -> list[Decision]:
    """Run a whole series through :func:`step` (a replay): one decision per point. A point
    the rule refuses (a garbage price, a time out of order) gets a :func:`safe_decision`."""
    state = initial_state()
    decisions: list[Decision] = []
    for point in points:
        try:
            state, decision = step(settings, state, point.end_us, point.price, interval_s)
        except ValueError as exc:
            state, decision = safe_decision(
                state, point.end_us, str(exc), price=point.price, interval_s=interval_s
            )
        decisions.append(decision)
    return decisions
