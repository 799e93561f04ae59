"""A smart meter at a site's connection point, netting every simulated device behind it.

Its power is the sum of the devices' powers (negative = the site exports). Energy is netted
every sub-step (``max_step_s``): the devices' total net energy in it goes to the import counter
(``energy_wh``) if positive, to the export counter (``energy_export_wh``) if negative, so
``import − export`` always equals the devices' total net energy. Like many smart meters it has a
supply relay (``switch``): opened, it cuts the supply to every device behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import US_PER_S, SimDevice
from ioe.vocabulary import DeviceType

ENERGY_EXPORT_WH = POINTS["energy_export_wh"]


class SimMeter(SimDevice):
    def __init__(
        self,
        devices: Sequence[SimDevice],
        *,
        start_us: int,
        voltage_v: float = 230.0,
    ) -> None:
        description = DeviceDescription(
            device_type=DeviceType.MONITOR,
            driver="sim",
            manufacturer="IoE simulation",
            model="smart meter",
            points=(
                POINTS["switch"],
                POINTS["power_w"],
                POINTS["energy_wh"],
                ENERGY_EXPORT_WH,
                POINTS["voltage_v"],
                POINTS["current_a"].with_range(0, None),
            ),
        )
        super().__init__(description, start_us=start_us)
        self.switch = True
        self.devices = list(devices)
        self.voltage_v = voltage_v
        self._last_net_wh = self._devices_net_wh()

    def _devices_net_wh(self) -> float:
        return sum(device.net_energy_wh for device in self.devices)

    def step(self, now_us: int) -> None:
        """Advance every device behind the meter, netting their energy every sub-step."""
        max_us = round(self.max_step_s * US_PER_S)
        while self.now_us < now_us:
            end = min(now_us, self.now_us + max_us)
            for device in self.devices:
                device.step(end)
            net = self._devices_net_wh()
            delta, self._last_net_wh = net - self._last_net_wh, net
            if delta >= 0:
                self.import_wh += delta
            else:
                self.export_wh -= delta
            self.now_us = end

    def _advance(self, dt_s: float, end_us: int) -> None:
        """Unused: the meter's step advances the devices instead."""

    @property
    def power_w(self) -> float:
        return sum(device.power_w for device in self.devices)

    def values(self) -> dict[str, PointValue]:
        power = self.power_w
        return {
            "switch": self.switch,
            "power_w": power,
            "energy_wh": self.import_wh,
            "energy_export_wh": self.export_wh,
            "voltage_v": self.voltage_v,
            "current_a": abs(power) / self.voltage_v,
        }

    @property
    def supplied(self) -> bool:
        return self._supplied

    @supplied.setter
    def supplied(self, value: bool) -> None:
        """A meter behind another (a sub-meter) passes a loss of supply on to its devices."""
        self._supplied = value
        self._feed()

    def _feed(self) -> None:
        for device in getattr(self, "devices", ()):
            device.supplied = self._supplied and self.switch

    def _apply(self, point: str, value: PointValue) -> None:
        self.switch = bool(value)
        self._feed()
