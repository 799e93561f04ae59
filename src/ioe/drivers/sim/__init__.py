"""Simulated energy devices with physics, for demos, tests and simulations.

Each model is pure (time passed in as µs, nothing sleeps or reads a clock) and is driven through
:class:`SimDriver`, which speaks the same :class:`~ioe.drivers.base.Driver` interface as the
real-protocol adapters::

    clock = FakeClock(start)                     # or wall_clock_us for a live demo
    pv = SimPvInverter(5.0, start_us=clock())    # follows the bundled NSW rooftop-solar week
    async with SimDriver(pv, clock) as driver:
        clock.advance(3600)
        await driver.read()                      # power_w < 0 while the sun is up

Sign convention (as in :mod:`ioe.drivers.model`): ``power_w`` > 0 is import (consumption,
charging), < 0 is export (generation, discharging).
"""

from ioe.drivers.sim.aircon import SimAirConditioner
from ioe.drivers.sim.base import SimDevice
from ioe.drivers.sim.battery import SimBattery
from ioe.drivers.sim.clock import Clock, FakeClock, ScenarioClock, wall_clock_us
from ioe.drivers.sim.driver import SimDriver
from ioe.drivers.sim.ev import SimEv, SimEvCharger
from ioe.drivers.sim.meter import ENERGY_EXPORT_WH, SimMeter
from ioe.drivers.sim.plug import PROFILES, LoadProfile, SimPlug
from ioe.drivers.sim.pv import SimPvInverter, solar_shape
from ioe.drivers.sim.site import example_site

__all__ = [
    "ENERGY_EXPORT_WH",
    "PROFILES",
    "Clock",
    "FakeClock",
    "LoadProfile",
    "SimAirConditioner",
    "SimBattery",
    "SimDevice",
    "SimDriver",
    "SimEv",
    "SimEvCharger",
    "SimMeter",
    "SimPlug",
    "SimPvInverter",
    "example_site",
    "solar_shape",
    "ScenarioClock",
    "wall_clock_us",
]
