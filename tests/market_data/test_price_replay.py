"""Replays paced by a fake sleep, and the stopped-feed check."""

from __future__ import annotations

import asyncio

import pytest

from ioe.market_data import PricePoint, feed_problem, replay
from ioe.market_data.replay import rebase

T0 = 1_674_000_000_000_000
MIN = 60_000_000


def collect(points: list[PricePoint], speed: float) -> tuple[list[PricePoint], list[float]]:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def run() -> list[PricePoint]:
        return [p async for p in replay(points, speed=speed, sleep=fake_sleep)]

    return asyncio.run(run()), delays


def test_points_come_paced_by_the_speed_factor() -> None:
    points = [PricePoint(T0 + i * 5 * MIN, float(i)) for i in range(4)]
    points.append(PricePoint(T0 + 30 * MIN, 9.0))  # a gap of 15 minutes
    got, delays = collect(points, speed=300)
    assert got == points
    assert delays == pytest.approx([1.0, 1.0, 1.0, 3.0])


def test_points_out_of_order_are_passed_on_without_waiting() -> None:
    points = [PricePoint(T0, 1.0), PricePoint(T0 - MIN, 2.0), PricePoint(T0 + MIN, 3.0)]
    got, delays = collect(points, speed=60)
    assert got == points and delays == pytest.approx([1.0])


def test_a_bad_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        collect([PricePoint(T0, 1.0)], speed=0)


def test_rebase_keeps_the_spacing() -> None:
    points = [PricePoint(T0, 1.0), PricePoint(T0 + 5 * MIN, 2.0)]
    assert rebase(points, 42) == [PricePoint(42, 1.0), PricePoint(42 + 5 * MIN, 2.0)]
    assert rebase([], 42) == []


def test_a_stopped_feed_is_a_problem() -> None:
    assert feed_problem(T0, T0 + 5 * MIN, 300) is None
    assert feed_problem(T0, T0 + 15 * MIN, 300) is None
    stopped = feed_problem(T0, T0 + 15 * MIN + 1, 300)
    assert stopped is not None and "stopped" in stopped and "15 min" in stopped
    assert feed_problem(T0, T0 + 10 * MIN + 1, 300, stale_intervals=2) is not None
    ahead = feed_problem(T0 + 6 * MIN, T0, 300)
    assert ahead is not None and "future" in ahead
    with pytest.raises(ValueError):
        feed_problem(T0, T0, 0)
