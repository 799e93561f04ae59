"""A home battery: state of charge, round-trip efficiency, charge and discharge power limits.

The round-trip efficiency η is split evenly between the two directions: charging at P (W, AC)
stores P·√η, and delivering P to the grid takes P/√η from the cells. So energy out never exceeds
energy in × η plus what was stored at the start (× √η). ``charge_power_w`` is the set point
(negative = discharge); ``power_w`` is what actually flows, which is zero once the battery is
full (when charging) or empty (when discharging). A step that would overfill or overdrain it
runs only until the limit, so the state of charge stays within 0–100 %.
"""

from __future__ import annotations

import math

from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import S_PER_H, SimDevice
from ioe.vocabulary import DeviceType


class SimBattery(SimDevice):
    def __init__(
        self,
        *,
        start_us: int,
        capacity_wh: float = 10_000.0,
        max_charge_w: float = 5_000.0,
        max_discharge_w: float = 5_000.0,
        round_trip_efficiency: float = 0.9,
        soc_pct: float = 50.0,
    ) -> None:
        if capacity_wh <= 0 or max_charge_w < 0 or max_discharge_w < 0:
            raise ValueError("capacity must be positive and power limits not negative")
        if not 0 < round_trip_efficiency <= 1:
            raise ValueError("round-trip efficiency must be in (0, 1]")
        if not 0 <= soc_pct <= 100:
            raise ValueError("state of charge must be in 0-100 %")
        description = DeviceDescription(
            device_type=DeviceType.STORAGE,
            driver="sim",
            manufacturer="IoE simulation",
            model=f"battery {capacity_wh / 1000:g} kWh",
            points=(
                POINTS["power_w"].with_range(-max_discharge_w, max_charge_w),
                POINTS["soc_pct"],
                POINTS["charge_power_w"].with_range(-max_discharge_w, max_charge_w),
            ),
        )
        super().__init__(description, start_us=start_us)
        self.capacity_wh = capacity_wh
        self.efficiency = math.sqrt(round_trip_efficiency)  # each way
        self.stored_wh = capacity_wh * soc_pct / 100
        self.charge_power_w: PointValue = 0.0

    @property
    def soc_pct(self) -> float:
        return min(max(100 * self.stored_wh / self.capacity_wh, 0.0), 100.0)

    @property
    def power_w(self) -> float:
        target = float(self.charge_power_w)
        if not self.supplied:
            return 0.0
        if target > 0 and self.stored_wh < self.capacity_wh:
            return target
        if target < 0 and self.stored_wh > 0:
            return target
        return 0.0

    def _advance(self, dt_s: float, end_us: int) -> None:
        power = self.power_w
        if power > 0:
            room_wh = self.capacity_wh - self.stored_wh
            seconds = min(dt_s, room_wh / (power * self.efficiency) * S_PER_H)
            self._count(power, seconds)
            if seconds < dt_s:
                self.stored_wh = self.capacity_wh
            else:
                gained = power * self.efficiency * seconds / S_PER_H
                self.stored_wh = min(self.stored_wh + gained, self.capacity_wh)
        elif power < 0:
            seconds = min(dt_s, self.stored_wh * self.efficiency / -power * S_PER_H)
            self._count(power, seconds)
            if seconds < dt_s:
                self.stored_wh = 0.0
            else:
                taken = -power / self.efficiency * seconds / S_PER_H
                self.stored_wh = max(self.stored_wh - taken, 0.0)

    def values(self) -> dict[str, PointValue]:
        return {
            "power_w": self.power_w,
            "soc_pct": self.soc_pct,
            "charge_power_w": self.charge_power_w,
        }

    def _apply(self, point: str, value: PointValue) -> None:
        self.charge_power_w = value
