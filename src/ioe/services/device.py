"""A device bridged onto its node: the driver, its telemetry recorder, and local control.

The node's own agent is the device's agent: readings are committed to its chain every
``batch_every_s`` and published like any other record. Control from the same data directory (the
node's API, with its token) is always allowed. Other agents reach the device through the node's
``device`` service (:meth:`DeviceBridge.serve`: ``device.describe``, ``device.read``,
``device.write``), which answers only under a live capability grant on the device's chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from ioe.drivers.base import Driver
from ioe.drivers.model import PointValue
from ioe.drivers.registry import DriverOptions, open_driver
from ioe.encoding import Value
from ioe.engine.cell import Cell
from ioe.errors import ZomeCallError
from ioe.hashing import AgentPubKey
from ioe.services.recorder import TelemetryRecorder


@dataclass(frozen=True, slots=True)
class DeviceSetup:
    options: DriverOptions
    name: str
    interval_s: float = 1.0
    batch_every_s: float = 10.0


class DeviceBridge:
    def __init__(self, setup: DeviceSetup, cell: Cell, clock: Callable[[], int]) -> None:
        self.setup = setup
        self.cell = cell
        self._clock = clock
        self._stack = contextlib.AsyncExitStack()
        self.driver: Driver | None = None
        self.recorder: TelemetryRecorder | None = None
        self.on_remote_write: Callable[[str, object, AgentPubKey], None] | None = None

    async def start(self) -> None:
        driver = await self._stack.enter_async_context(open_driver(self.setup.options))
        await self._stack.enter_async_context(driver)
        self.driver = driver
        self.recorder = TelemetryRecorder(
            driver,
            self.cell,
            clock=self._clock,
            interval_s=self.setup.interval_s,
            batch_every_s=self.setup.batch_every_s,
            name=self.setup.name,
        )
        await self._stack.enter_async_context(self.recorder)

    async def close(self) -> None:
        await self._stack.aclose()

    def _driver(self) -> Driver:
        if self.driver is None:
            raise RuntimeError("the device is not running")
        return self.driver

    async def describe(self) -> dict[str, object]:
        description = (await self._driver().describe()).describe()
        return {"name": self.setup.name, "agent": self.cell.agent.to_text(), **description}

    async def read(self) -> dict[str, PointValue]:
        return await self._driver().read()

    async def write(self, point: str, value: object) -> None:
        await self._driver().write(point, value)

    async def write_text(self, point: str, text: str) -> None:
        """A write typed by a person (``on``, ``24``, ``cool``), parsed by the point's type."""
        driver = self._driver()
        value = (await driver.describe()).point(point).parse(text)
        await driver.write(point, value)

    async def serve(self, function: str, payload: Value, caller: AgentPubKey) -> object:
        """The ``device`` service for other agents (the caller's grant is already checked).

        ``write`` takes ``{"point", "text"}`` (as a person types it: ``off``, ``24.5``) or
        ``{"point", "value"}`` (a boolean, integer or mode)."""
        if function == "describe":
            return await self.describe()
        if function == "read":
            return await self.read()
        if function != "write":
            raise ZomeCallError(f"the device service has no function {function!r}")
        if not isinstance(payload, dict) or not isinstance(payload.get("point"), str):
            raise ZomeCallError("device.write takes {point, text} or {point, value}")
        point = payload["point"]
        if isinstance(payload.get("text"), str):
            await self.write_text(point, payload["text"])
        elif "value" in payload:
            await self.write(point, payload["value"])
        else:
            raise ZomeCallError("device.write takes {point, text} or {point, value}")
        if self.on_remote_write is not None:
            self.on_remote_write(point, payload.get("text", payload.get("value")), caller)
        return {"point": point, "written": True}
