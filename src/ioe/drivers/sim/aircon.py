"""A split-system air conditioner cooling or heating one room (a 1R1C thermal model).

The room is one thermal capacitance C (J/K) coupled to the outdoor air through one resistance R
(K/W)::

    dT/dt = (T_out − T) / (R·C) − Q / C

where Q is the heat the unit removes (positive when cooling, negative when heating, at most its
capacity). With T_out and Q held over a sub-step the equation is solved exactly,
T(t) = T_eq + (T0 − T_eq)·exp(−t / RC) with T_eq = T_out − Q·R, so any step size is stable.
An on/off thermostat with a deadband decides Q at every sub-step; electrical power is Q / COP
plus the indoor fan.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import SimDevice
from ioe.vocabulary import DeviceType

MODES = ("off", "cool", "heat", "fan", "auto")


class SimAirConditioner(SimDevice):
    """Room temperature follows the outdoor series; the unit holds a setpoint within a deadband.

    ``outdoor_c`` maps a time in µs to the outdoor temperature (e.g. ``Series.at`` of the bundled
    temperature series).
    """

    def __init__(
        self,
        outdoor_c: Callable[[int], float],
        *,
        start_us: int,
        room_c: float | None = None,
        r_k_per_w: float = 0.005,
        c_j_per_k: float = 2.0e6,
        capacity_w: float = 3500.0,
        cop: float = 3.2,
        fan_w: float = 35.0,
        deadband_c: float = 1.0,
        setpoint_c: float = 24.0,
        mode: str = "cool",
    ) -> None:
        if min(r_k_per_w, c_j_per_k, capacity_w, cop) <= 0 or deadband_c < 0 or fan_w < 0:
            raise ValueError("R, C, capacity and COP must be positive; deadband and fan not < 0")
        description = DeviceDescription(
            device_type=DeviceType.CONSUMPTION,
            driver="sim",
            manufacturer="IoE simulation",
            model="split-system air conditioner",
            points=(
                POINTS["power_w"].with_range(0, capacity_w / cop + fan_w),
                POINTS["energy_wh"],
                POINTS["temperature_c"],
                POINTS["setpoint_c"],
                POINTS["mode"].with_choices(*MODES),
            ),
        )
        super().__init__(description, start_us=start_us)
        self.outdoor_c = outdoor_c
        self.room_c = outdoor_c(start_us) if room_c is None else room_c
        self.r_k_per_w = r_k_per_w
        self.c_j_per_k = c_j_per_k
        self.capacity_w = capacity_w
        self.cop = cop
        self.fan_w = fan_w
        self.deadband_c = deadband_c
        self.setpoint_c = description.check_write("setpoint_c", setpoint_c)
        self.mode = str(description.check_write("mode", mode))
        self.heat_removed_w = 0.0  # Q: + cooling, − heating, 0 idle
        self._thermostat()

    @property
    def time_constant_s(self) -> float:
        return self.r_k_per_w * self.c_j_per_k

    def _thermostat(self) -> None:
        """Decide Q for the coming sub-step from the room temperature (with hysteresis)."""
        if not self.supplied or self.mode in ("off", "fan"):
            self.heat_removed_w = 0.0
            return
        half = self.deadband_c / 2
        setpoint = float(self.setpoint_c)
        cooling, heating = self.heat_removed_w > 0, self.heat_removed_w < 0
        if self.mode in ("cool", "auto") and (
            self.room_c > setpoint + half or (cooling and self.room_c > setpoint - half)
        ):
            self.heat_removed_w = self.capacity_w
        elif self.mode in ("heat", "auto") and (
            self.room_c < setpoint - half or (heating and self.room_c < setpoint + half)
        ):
            self.heat_removed_w = -self.capacity_w
        else:
            self.heat_removed_w = 0.0

    @property
    def power_w(self) -> float:
        if not self.supplied or self.mode == "off":
            return 0.0
        return abs(self.heat_removed_w) / self.cop + self.fan_w

    def _advance(self, dt_s: float, end_us: int) -> None:
        self._thermostat()  # the supply or the mode may have changed since the last decision
        self._count(self.power_w, dt_s)
        equilibrium = self.outdoor_c(self.now_us) - self.heat_removed_w * self.r_k_per_w
        decay = math.exp(-dt_s / self.time_constant_s)
        self.room_c = equilibrium + (self.room_c - equilibrium) * decay
        self._thermostat()

    def values(self) -> dict[str, PointValue]:
        return {
            "power_w": self.power_w,
            "energy_wh": self.import_wh,
            "temperature_c": self.room_c,
            "setpoint_c": self.setpoint_c,
            "mode": self.mode,
        }

    def _apply(self, point: str, value: PointValue) -> None:
        if point == "setpoint_c":
            self.setpoint_c = value
        elif point == "mode":
            self.mode = str(value)
        self._thermostat()
