"""The driver over a simulated device: the same async interface as every real adapter."""

from __future__ import annotations

from typing import ClassVar

from ioe.drivers.base import Driver
from ioe.drivers.model import DeviceDescription, DeviceOffline, PointValue
from ioe.drivers.sim.base import SimDevice
from ioe.drivers.sim.clock import Clock


class SimDriver(Driver):
    """Reads and writes a :class:`SimDevice`, first advancing it to ``clock()`` (µs).

    Clearing ``device.online`` makes the device unreachable: reads say ``online: false`` and
    writes raise :class:`DeviceOffline`, while the physics goes on.
    """

    name: ClassVar[str] = "sim"

    def __init__(self, device: SimDevice, clock: Clock) -> None:
        super().__init__()
        self.device = device
        self.clock = clock

    def step(self, now_us: int) -> None:
        """Advance the device's physics to ``now_us``."""
        self.device.step(now_us)

    async def describe(self) -> DeviceDescription:
        return self.device.description

    async def read(self) -> dict[str, PointValue]:
        self.step(self.clock())
        if not self.device.online:
            return {"online": False}
        return {**self.device.values(), "online": True}

    async def _write(self, point: str, value: PointValue) -> None:
        if not self.device.online:
            raise DeviceOffline(f"simulated {self.device.description.model} is offline")
        self.step(self.clock())
        self.device.write(point, value)
