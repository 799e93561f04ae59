"""Recorded prices played back as a live feed, and the check that spots a stopped feed.

:func:`replay` yields recorded points paced like the market that produced them, ``speed``
times faster (300 turns 5-minute intervals into one second each), so the demo and the tests
run the live app on real prices without the internet. The sleep function is a parameter: tests
pass one that only records the delays, and run at once.

:func:`feed_problem` is pure: given the end of the last interval a feed delivered and the time
now, it says what is wrong (nothing, a stopped feed, a feed from the future). The live app calls
it on a timer; a problem puts the plug in its safe state (on) and raises an alert.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol

from ioe.market_data.base import PricePoint

__all__ = ["DEFAULT_SPEED", "STALE_INTERVALS", "feed_problem", "rebase", "replay"]

DEFAULT_SPEED = 300.0
STALE_INTERVALS = 3
"""A feed whose newest interval ended more than this many intervals ago has stopped (NEM
prices are published within a minute of the interval's end)."""


class _Point(Protocol):
    @property
    def end_us(self) -> int: ...

    @property
    def price(self) -> float: ...


async def replay(
    points: Iterable[_Point],
    *,
    speed: float = DEFAULT_SPEED,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> AsyncIterator[PricePoint]:
    """Yield ``points`` in order, the first at once and each next one after the time between
    their ends divided by ``speed``. Points that do not move forward in time are yielded
    without waiting (the consumer decides what to do with them)."""
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"the replay speed is a positive number, not {speed}")
    previous: int | None = None
    for point in points:
        if previous is not None and point.end_us > previous:
            await sleep((point.end_us - previous) / 1e6 / speed)
        previous = point.end_us if previous is None else max(previous, point.end_us)
        yield PricePoint(point.end_us, point.price)


def rebase(points: Iterable[_Point], first_end_us: int) -> list[PricePoint]:
    """``points`` moved in time so the first ends at ``first_end_us`` (spacing unchanged): a
    recorded day replayed as if it were happening now."""
    items = list(points)
    if not items:
        return []
    shift = first_end_us - items[0].end_us
    return [PricePoint(p.end_us + shift, p.price) for p in items]


def feed_problem(
    last_point_end_us: int, now_us: int, interval_s: int, *, stale_intervals: int = STALE_INTERVALS
) -> str | None:
    """What is wrong with a feed whose newest interval ended at ``last_point_end_us``, at
    ``now_us``: None when it is keeping up. Before any point has arrived, pass the time the
    feed started as ``last_point_end_us``."""
    if interval_s <= 0 or stale_intervals <= 0:
        raise ValueError("the interval and the number of stale intervals are positive")
    interval_us = interval_s * 1_000_000
    behind_us = now_us - last_point_end_us
    if behind_us > stale_intervals * interval_us:
        minutes = behind_us / 60e6
        return (
            f"the price feed stopped: no new price for {minutes:.0f} min "
            f"({stale_intervals} intervals of {interval_s} s allowed)"
        )
    if behind_us < -interval_us:
        return "the price feed is ahead of this clock: its prices are from the future"
    return None
