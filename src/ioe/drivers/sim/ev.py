"""An EV charger (AC, mode 3) with a car plugged in that stops charging when its battery is full.

The charger offers ``current_limit_a``; the car draws the smaller of that and its on-board
charger's limit, or nothing below the 6 A minimum of IEC 61851-1 (a lower offer pauses
charging). Power is current × voltage × phases; the car's battery gains power × efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass

from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import S_PER_H, SimDevice
from ioe.vocabulary import DeviceType

MIN_CHARGING_CURRENT_A = 6.0


@dataclass(slots=True, kw_only=True)
class SimEv:
    """The car: its traction battery and on-board charger."""

    capacity_wh: float = 60_000.0
    soc_pct: float = 20.0
    max_current_a: float = 32.0
    efficiency: float = 0.9

    def __post_init__(self) -> None:
        if self.capacity_wh <= 0 or self.max_current_a <= 0 or not 0 < self.efficiency <= 1:
            raise ValueError("positive capacity and current, efficiency in (0, 1]")
        if not 0 <= self.soc_pct <= 100:
            raise ValueError("state of charge must be in 0-100 %")

    @property
    def stored_wh(self) -> float:
        return self.capacity_wh * self.soc_pct / 100

    @property
    def full(self) -> bool:
        return self.soc_pct >= 100.0


class SimEvCharger(SimDevice):
    def __init__(
        self,
        *,
        start_us: int,
        ev: SimEv | None = None,
        max_current_a: float = 32.0,
        phases: int = 1,
        voltage_v: float = 230.0,
        current_limit_a: float = 16.0,
    ) -> None:
        if phases not in (1, 3) or max_current_a <= 0 or voltage_v <= 0:
            raise ValueError("one or three phases, positive current and voltage")
        max_power_w = max_current_a * voltage_v * phases
        description = DeviceDescription(
            device_type=DeviceType.CONSUMPTION,
            driver="sim",
            manufacturer="IoE simulation",
            model=f"EV charger {max_power_w / 1000:.1f} kW",
            points=(
                POINTS["power_w"].with_range(0, max_power_w),
                POINTS["energy_wh"],
                POINTS["current_a"].with_range(0, max_current_a),
                POINTS["voltage_v"],
                POINTS["soc_pct"],
                POINTS["current_limit_a"].with_range(0, max_current_a),
            ),
        )
        super().__init__(description, start_us=start_us)
        self.ev = ev
        self.phases = phases
        self.voltage_v = voltage_v
        self.current_limit_a = description.check_write(
            "current_limit_a", min(current_limit_a, max_current_a)
        )

    def plug_in(self, ev: SimEv) -> None:
        self.ev = ev

    def unplug(self) -> SimEv | None:
        ev, self.ev = self.ev, None
        return ev

    @property
    def current_a(self) -> float:
        if self.ev is None or self.ev.full or not self.supplied:
            return 0.0
        current = min(float(self.current_limit_a), self.ev.max_current_a)
        return current if current >= MIN_CHARGING_CURRENT_A else 0.0

    @property
    def power_w(self) -> float:
        return self.current_a * self.voltage_v * self.phases

    def _advance(self, dt_s: float, end_us: int) -> None:
        power, ev = self.power_w, self.ev
        if power <= 0 or ev is None:
            return
        room_wh = ev.capacity_wh - ev.stored_wh
        seconds = min(dt_s, room_wh / (power * ev.efficiency) * S_PER_H)
        self._count(power, seconds)
        if seconds < dt_s:
            ev.soc_pct = 100.0
        else:
            gained = power * ev.efficiency * seconds / S_PER_H
            ev.soc_pct = min(100 * (ev.stored_wh + gained) / ev.capacity_wh, 100.0)

    def values(self) -> dict[str, PointValue]:
        values: dict[str, PointValue] = {
            "power_w": self.power_w,
            "energy_wh": self.import_wh,
            "current_a": self.current_a,
            "voltage_v": self.voltage_v if self.supplied else 0.0,
            "current_limit_a": self.current_limit_a,
        }
        if self.ev is not None:
            values["soc_pct"] = self.ev.soc_pct
        return values

    def _apply(self, point: str, value: PointValue) -> None:
        self.current_limit_a = value
