"""Finding an owner's enrolled devices again after a recovery: the gap rule (pure).

An owner's devices are numbered 1, 2, … (``docs/keys.md``); the list of the indices handed out
lives only on the owner's machine. After a recovery the owner probes device seeds in order and
asks the network whether agent 0 of each has a chain. Enrollment may leave unused indices (a
provisioning that failed halfway, a device never switched on), so one miss does not end the
scan: it ends after :data:`GAP_LIMIT` misses in a row. No I/O here: the caller probes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GAP_LIMIT = 5
"""Consecutive unknown device indices after which a rescan stops."""
FIRST_DEVICE_INDEX = 1
"""Device 0 is the owner's own console."""


@dataclass(frozen=True, slots=True)
class Rescan:
    """Where a rescan stands: the next index to probe, the misses in a row, the hits so far."""

    gap_limit: int = GAP_LIMIT
    next_index: int = FIRST_DEVICE_INDEX
    misses: int = 0
    found: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.gap_limit < 1:
            raise ValueError("the gap limit must be at least 1")

    @property
    def done(self) -> bool:
        return self.misses >= self.gap_limit

    def probe(self) -> int | None:
        """The device index to look up next, or None once the scan is over."""
        return None if self.done else self.next_index

    def record(self, index: int, found: bool) -> Rescan:
        """The state after probing ``index`` (which must be the one :meth:`probe` named)."""
        if index != self.probe():
            raise ValueError(f"probed index {index}, expected {self.probe()}")
        return Rescan(
            self.gap_limit,
            index + 1,
            0 if found else self.misses + 1,
            (*self.found, index) if found else self.found,
        )


def next_device_index(found: Iterable[int], stored: object = None) -> int:
    """The next index to hand out: past every index found and never below the stored one, so
    no index is ever given twice (a lower one would name a device that may still exist)."""
    floor = stored if isinstance(stored, int) and stored >= FIRST_DEVICE_INDEX else 1
    return max(floor, max(found, default=0) + 1)
