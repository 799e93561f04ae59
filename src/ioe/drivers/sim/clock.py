"""Clocks for simulations: a callable returning µs since the Unix epoch.

Models never read a clock themselves; a driver or recorder is given one. Tests use
:class:`FakeClock`, which only moves when told (its :meth:`FakeClock.sleep` moves it, so a loop
that sleeps between readings runs at full speed and deterministically); a live device follows
:func:`wall_clock_us`; a device in a replayed scenario (a recorded NEM day played at 600x)
follows a :class:`ScenarioClock`, so its sun, weather and appliance cycles are those of the
scenario's moment, not of the machine's.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_us() -> int:
    """The current wall-clock time in µs since the Unix epoch."""
    return time.time_ns() // 1000


class FakeClock:
    """A clock that stands still until advanced."""

    def __init__(self, start_us: int = 1_700_000_000_000_000) -> None:
        self.now_us = start_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> int:
        """Move forward by ``seconds`` (rounded to whole µs); returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards by itself")
        self.now_us += round(seconds * 1_000_000)
        return self.now_us

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and let other tasks run: a stand-in for ``asyncio.sleep``."""
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


class ScenarioClock:
    """The time of a scenario replayed at ``speed``: ``start_us`` when it starts, then
    ``speed`` scenario seconds per real second (``wall`` is read for the real ones).

    It stands still at ``start_us`` until :meth:`start` (so devices can be set up before the
    replay begins and never see time go backwards); ``started=True`` starts it at once."""

    def __init__(
        self,
        start_us: int,
        speed: float = 1.0,
        *,
        started: bool = False,
        wall: Clock = wall_clock_us,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"a scenario's speed is a positive number, not {speed}")
        self.start_us = start_us
        self.speed = speed
        self._wall = wall
        self._wall_at_start: int | None = None
        if started:
            self.start()

    def start(self) -> None:
        """From now on the scenario's time moves (a second call does nothing)."""
        if self._wall_at_start is None:
            self._wall_at_start = self._wall()

    def __call__(self) -> int:
        if self._wall_at_start is None:
            return self.start_us
        return self.start_us + round((self._wall() - self._wall_at_start) * self.speed)


def scenario_start_us(text: str) -> int:
    """``--sim-start``: an ISO 8601 time with its offset (``2023-01-16T14:45+11:00``, or ``Z``
    for UTC), as µs since the epoch. ``ValueError`` saying what is wrong."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--sim-start takes an ISO 8601 time, not {text!r}") from None
    if when.tzinfo is None:
        raise ValueError("--sim-start needs its UTC offset (e.g. +11:00, or Z for UTC)")
    return round(when.timestamp() * 1_000_000)
