"""Simulated devices follow the clock of the scenario they are in: a replayed NEM afternoon has
its own sun, whatever the machine's clock says."""

from __future__ import annotations

import pytest

from ioe.drivers.registry import DriverOptions, open_driver
from ioe.drivers.sim import FakeClock, ScenarioClock
from ioe.drivers.sim.clock import scenario_start_us

pytestmark = pytest.mark.anyio

S = 1_000_000
NOON = scenario_start_us("2023-01-16T12:00+11:00")  # a January day in Sydney
MIDNIGHT = scenario_start_us("2023-01-16T00:30+11:00")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_scenario_clock_stands_still_until_started_then_runs_at_its_speed() -> None:
    wall = FakeClock(5_000 * S)
    clock = ScenarioClock(NOON, 600, wall=wall)
    wall.advance(30)
    assert clock() == NOON  # not started: the devices wait at the scenario's first moment
    clock.start()
    wall.advance(2)
    assert clock() == NOON + 1_200 * S  # 2 real seconds at 600x: 20 minutes
    clock.start()  # a second start changes nothing
    assert clock() == NOON + 1_200 * S
    with pytest.raises(ValueError, match="positive"):
        ScenarioClock(NOON, 0)


def test_scenario_start_times_need_their_offset() -> None:
    assert scenario_start_us("2023-01-16T01:00Z") == NOON  # 12:00 at +11:00 is 01:00 Z
    with pytest.raises(ValueError, match="UTC offset"):
        scenario_start_us("2023-01-16T12:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        scenario_start_us("noon")


async def _pv_power(**options: object) -> float:
    async with open_driver(DriverOptions(driver="sim", sim="pv", **options)) as driver:  # type: ignore[arg-type]
        power = (await driver.read())["power_w"]
    assert isinstance(power, float)
    return -power  # generation is negative power


async def test_a_simulated_pv_follows_the_scenario_not_the_machine() -> None:
    at_noon = await _pv_power(sim_start_us=NOON, sim_speed=1.0)
    at_night = await _pv_power(sim_start_us=MIDNIGHT, sim_speed=1.0)
    assert at_night == 0.0 and at_noon > 1_000  # a 5 kW array at a January noon
    shared = ScenarioClock(NOON, 600)  # one scenario for several devices (the demo)
    assert await _pv_power(clock=shared) == pytest.approx(at_noon, rel=0.05)
