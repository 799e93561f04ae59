"""What every simulated device shares: time stepping, energy counters, the online flag.

A model is pure physics: :meth:`SimDevice.step` advances it to a time that is passed in
(µs since the Unix epoch), in sub-steps no longer than ``max_step_s``; nothing here sleeps or
reads a clock. ``power_w`` is the power drawn from now until the next step, by the sign
convention of :mod:`ioe.drivers.model`: positive = import (consumption, charging), negative =
export (generation, discharging) into the grid.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ioe.drivers.model import DeviceDescription, PointValue

US_PER_S = 1_000_000
S_PER_H = 3600.0


class SimDevice(ABC):
    """A device's state, advanced by :meth:`step`, read by :meth:`values`, set by :meth:`write`.

    ``online`` is only about reachability (a driver reports ``online: false``; the physics goes
    on). ``supplied`` is about mains power: a device whose meter opened its relay draws nothing.
    """

    max_step_s: ClassVar[float] = 10.0

    def __init__(self, description: DeviceDescription, *, start_us: int) -> None:
        self.description = description
        self.now_us = start_us
        self.online = True
        self.supplied = True
        self.import_wh = 0.0
        self.export_wh = 0.0

    @property
    @abstractmethod
    def power_w(self) -> float:
        """Active power from now until the next step (negative = export)."""

    @property
    def net_energy_wh(self) -> float:
        """Energy imported minus energy exported since the start."""
        return self.import_wh - self.export_wh

    def step(self, now_us: int) -> None:
        """Advance the physics to ``now_us``; a time not after the current one does nothing."""
        max_us = round(self.max_step_s * US_PER_S)
        while self.now_us < now_us:
            end = min(now_us, self.now_us + max_us)
            self._advance((end - self.now_us) / US_PER_S, end)
            self.now_us = end

    @abstractmethod
    def _advance(self, dt_s: float, end_us: int) -> None:
        """Advance by ``dt_s`` seconds, ending at ``end_us``, holding inputs from the start."""

    def _count(self, power_w: float, dt_s: float) -> None:
        """Add ``power_w`` held for ``dt_s`` to the import or export counter."""
        energy = power_w * dt_s / S_PER_H
        if energy >= 0:
            self.import_wh += energy
        else:
            self.export_wh -= energy

    @abstractmethod
    def values(self) -> dict[str, PointValue]:
        """The current reading by canonical point name (without ``online``)."""

    def write(self, point: str, value: object) -> None:
        """Set a control point (checked against the description first)."""
        self._apply(point, self.description.check_write(point, value))

    @abstractmethod
    def _apply(self, point: str, value: PointValue) -> None:
        """Set an already-checked control point."""
