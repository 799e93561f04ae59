"""Clocks for simulations: a callable returning µs since the Unix epoch.

Models never read a clock themselves; a driver or recorder is given one. Tests use
:class:`FakeClock`, which only moves when told (its :meth:`FakeClock.sleep` moves it, so a loop
that sleeps between readings runs at full speed and deterministically); demos use
:func:`wall_clock_us`.
"""

from __future__ import annotations

import asyncio
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
