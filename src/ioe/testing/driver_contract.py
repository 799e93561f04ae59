"""The contract every device driver passes, as a reusable pytest class.

Subclass :class:`DriverContract` in a test module and give it a ``harness`` fixture returning a
:class:`DriverHarness` for your driver and its real (or simulated) peer::

    class TestTasmota(DriverContract):
        @pytest.fixture
        def harness(self, broker) -> DriverHarness:
            return TasmotaHarness(broker)

Every test runs under anyio's pytest plugin on asyncio, so the harness and driver may use asyncio
libraries freely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import anyio
import pytest

from ioe.drivers.base import Driver
from ioe.drivers.model import PointError, PointValue

READ_DEADLINE_S = 10.0


class DriverHarness(ABC):
    """A driver under test and the handles to disturb its peer."""

    @abstractmethod
    def make_driver(self) -> Driver:
        """A new, not yet started driver connected to the peer."""

    @abstractmethod
    def valid_write(self) -> tuple[str, PointValue, PointValue]:
        """A control point and two different valid values for it."""

    @abstractmethod
    async def take_offline(self) -> None:
        """Make the device unreachable (stop the peer, drop its connection, …)."""

    @abstractmethod
    async def bring_back(self) -> None:
        """Make the device reachable again."""

    async def settle(self) -> None:
        """Give the peer time to apply a write, if it is asynchronous (MQTT, …)."""
        await anyio.sleep(0)


async def read_until(driver: Driver, predicate, deadline_s: float = READ_DEADLINE_S):  # type: ignore[no-untyped-def]
    """Read until ``predicate(values)`` holds (bounded in time); returns the last values."""
    values: dict[str, PointValue] = {}
    with anyio.move_on_after(deadline_s):
        while True:
            values = await driver.read()
            if predicate(values):
                return values
            await anyio.sleep(0.05)
    return values


@pytest.mark.anyio
class DriverContract:
    """describe / read / write / revert, the errors, and offline and back."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    async def test_describe_lists_typed_points_including_online(
        self, harness: DriverHarness
    ) -> None:
        async with harness.make_driver() as driver:
            description = await driver.describe()
            names = [p.name for p in description.points]
            assert "online" in names
            assert len(names) == len(set(names))
            assert description.control_points(), "a driver with nothing to control"

    async def test_read_gives_canonical_values(self, harness: DriverHarness) -> None:
        async with harness.make_driver() as driver:
            description = await driver.describe()
            values = await read_until(driver, lambda v: v.get("online") is True)
            assert values["online"] is True
            for name, value in values.items():
                description.point(name).check(value)  # every value fits its point's type and range

    async def test_write_then_read_back(self, harness: DriverHarness) -> None:
        point, first, second = harness.valid_write()
        async with harness.make_driver() as driver:
            await read_until(driver, lambda v: v.get("online") is True)
            for value in (first, second):
                await driver.write(point, value)
                await harness.settle()
                values = await read_until(driver, lambda v, value=value: v.get(point) == value)
                assert values.get(point) == value

    async def test_bad_writes_are_refused_and_change_nothing(self, harness: DriverHarness) -> None:
        point, first, _ = harness.valid_write()
        async with harness.make_driver() as driver:
            await read_until(driver, lambda v: v.get("online") is True)
            await driver.write(point, first)
            await harness.settle()
            before = await read_until(driver, lambda v: v.get(point) == first)
            description = await driver.describe()
            read_only = next(p.name for p in description.points if not p.writable)
            target = description.point(point)
            bad_values: list[object] = ["not a value", None]
            if target.maximum is not None:
                bad_values.append(target.maximum + 1)
            for name, value in [("no_such_point", first), (read_only, first)] + [
                (point, v) for v in bad_values
            ]:
                with pytest.raises(PointError):
                    await driver.write(name, value)
            await harness.settle()
            after = await driver.read()
            assert after.get(point) == before.get(point)

    async def test_revert_restores_the_value_from_before_control(
        self, harness: DriverHarness
    ) -> None:
        point, first, second = harness.valid_write()
        async with harness.make_driver() as driver:
            await read_until(driver, lambda v: v.get("online") is True)
            await driver.write(point, first)
            await harness.settle()
            await read_until(driver, lambda v: v.get(point) == first)
        async with harness.make_driver() as driver:  # a fresh driver: "before" is now `first`
            await read_until(driver, lambda v: v.get(point) == first)
            await driver.write(point, second)
            await harness.settle()
            await read_until(driver, lambda v: v.get(point) == second)
            await driver.revert()
            await harness.settle()
            values = await read_until(driver, lambda v: v.get(point) == first)
            assert values.get(point) == first

    async def test_offline_is_reported_and_comes_back(self, harness: DriverHarness) -> None:
        async with harness.make_driver() as driver:
            await read_until(driver, lambda v: v.get("online") is True)
            await harness.take_offline()
            values = await read_until(driver, lambda v: v.get("online") is False)
            assert values["online"] is False
            await harness.bring_back()
            values = await read_until(driver, lambda v: v.get("online") is True, deadline_s=20)
            assert values["online"] is True
