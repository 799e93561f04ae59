"""The driver interface every adapter implements, and the checks they all share.

``write`` is checked against the device description before anything reaches the device, so an
unknown or read-only point, or a value out of range, changes nothing. ``revert`` puts every point
written through the driver back to the value it had before the first such write (the device's own
setting), which is what a device falls back to when IoE control ends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

from ioe.drivers.model import DeviceDescription, PointValue


class Driver(ABC):
    """Async device driver. Use as an async context manager (``start`` / ``close``)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._originals: dict[str, PointValue] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:  # noqa: B027 - an optional hook
        """Connect (or begin trying to); a device that is offline is not an error here."""

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Disconnect and stop background tasks."""

    @abstractmethod
    async def describe(self) -> DeviceDescription:
        """The device's type and points."""

    @abstractmethod
    async def read(self) -> dict[str, PointValue]:
        """Current values by canonical name. Always has ``online``; when it is false, the other
        points may be missing."""

    async def write(self, point: str, value: object) -> None:
        """Set a control point (checked first: :class:`PointError` changes nothing)."""
        description = await self.describe()
        checked = description.check_write(point, value)
        if point not in self._originals:
            current = (await self.read()).get(point)
            if current is not None:
                self._originals[point] = current
        await self._write(point, checked)

    async def revert(self) -> None:
        """Give every written point back its value from before the first IoE write."""
        originals, self._originals = self._originals, {}
        for point, value in originals.items():
            await self._write(point, value)

    @abstractmethod
    async def _write(self, point: str, value: PointValue) -> None:
        """Send an already-checked value to the device (raise DeviceOffline if unreachable)."""
