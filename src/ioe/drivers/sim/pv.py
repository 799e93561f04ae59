"""A PV inverter whose output follows a real rooftop-solar shape, scaled to its own size.

The shape is a function of time returning 0–1: by default the bundled regional rooftop-solar
series divided by its highest value in the recorded week. The inverter's output is
``kwp × peak_fraction × shape`` (rooftop arrays seldom reach their nameplate rating, hence
``peak_fraction``). Generation is export, so ``power_w`` is negative (the sign convention of
:mod:`ioe.drivers.model`); ``energy_wh`` counts the energy generated, upwards.
"""

from __future__ import annotations

from collections.abc import Callable

from ioe.data import Series, load_series
from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import SimDevice
from ioe.vocabulary import DeviceType


def solar_shape(series: Series) -> Callable[[int], float]:
    """``t_us → 0..1``: the series relative to its peak (negative values read as zero)."""
    peak = series.peak()
    if peak <= 0:
        raise ValueError(f"series {series.name} never rises above zero")

    def shape(t_us: int) -> float:
        return min(max(series.at(t_us) / peak, 0.0), 1.0)

    return shape


class SimPvInverter(SimDevice):
    """A grid-tied inverter; ``switch`` off disconnects it (no output)."""

    def __init__(
        self,
        kwp: float,
        *,
        start_us: int,
        shape: Callable[[int], float] | None = None,
        region: str = "nsw1",
        peak_fraction: float = 0.85,
        voltage_v: float = 230.0,
    ) -> None:
        if kwp <= 0 or not 0 < peak_fraction <= 1:
            raise ValueError("kwp must be positive and peak_fraction in (0, 1]")
        rated_w = kwp * 1000
        description = DeviceDescription(
            device_type=DeviceType.GENERATOR,
            driver="sim",
            manufacturer="IoE simulation",
            model=f"PV inverter {kwp:g} kWp",
            points=(
                POINTS["switch"],
                POINTS["power_w"].with_range(-rated_w, 0),
                POINTS["energy_wh"],
                POINTS["voltage_v"],
                POINTS["current_a"].with_range(0, None),
            ),
        )
        super().__init__(description, start_us=start_us)
        self.kwp = kwp
        self.peak_fraction = peak_fraction
        self.shape = shape or solar_shape(load_series(region, "solar_rooftop"))
        self.voltage_v = voltage_v
        self.switch = True

    @property
    def power_w(self) -> float:
        if not (self.switch and self.supplied):
            return 0.0
        fraction = min(max(self.shape(self.now_us), 0.0), 1.0)
        return -self.kwp * 1000 * self.peak_fraction * fraction

    def _advance(self, dt_s: float, end_us: int) -> None:
        self._count(self.power_w, dt_s)

    def values(self) -> dict[str, PointValue]:
        power = self.power_w
        return {
            "switch": self.switch,
            "power_w": power,
            "energy_wh": self.export_wh,
            "voltage_v": self.voltage_v if self.supplied else 0.0,
            "current_a": abs(power) / self.voltage_v,
        }

    def _apply(self, point: str, value: PointValue) -> None:
        self.switch = bool(value)
