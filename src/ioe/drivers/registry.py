"""Drivers by name, for ``ioe device run --driver NAME``.

:func:`open_driver` builds a driver from plain options and sets up whatever it needs besides
(an OCPP central system for a charger), tearing it down when the context ends. The driver is
returned not yet started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ioe.data import load_series
from ioe.drivers.base import Driver
from ioe.drivers.model import PointError
from ioe.drivers.ocpp_cs import OcppCentralSystem
from ioe.drivers.shelly import ShellyHttpDriver, ShellyMqttDriver
from ioe.drivers.sim import (
    Clock,
    ScenarioClock,
    SimAirConditioner,
    SimBattery,
    SimDevice,
    SimDriver,
    SimEvCharger,
    SimMeter,
    SimPlug,
    SimPvInverter,
    wall_clock_us,
)
from ioe.drivers.sunspec import SunSpecDriver
from ioe.drivers.tasmota import TasmotaDriver

DRIVERS = ("sim", "tasmota", "shelly", "sunspec", "ocpp")
SIM_KINDS = ("plug", "pump", "aircon", "pv", "battery", "ev", "meter")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverOptions:
    driver: str
    sim: str | None = None
    mqtt: str | None = None
    topic: str | None = None
    device_id: str | None = None
    url: str | None = None
    modbus: str | None = None
    unit: int = 1
    ocpp: str | None = None
    charger: str | None = None
    sim_start_us: int | None = None
    """A simulated device's scenario starts at this time (µs since the epoch; None: it follows
    the wall clock) and runs at ``sim_speed`` (``ioe device run --sim-start --sim-speed``)."""
    sim_speed: float = 1.0
    clock: Clock | None = field(default=None, compare=False)
    """The clock a simulated device follows, for a caller that runs several devices in one
    scenario (the demo); wins over ``sim_start_us``."""


def sim_clock(options: DriverOptions) -> Clock:
    """The clock a simulated device of ``options`` follows (see :class:`DriverOptions`)."""
    if options.clock is not None:
        return options.clock
    if options.sim_start_us is not None:
        return ScenarioClock(options.sim_start_us, options.sim_speed, started=True)
    return wall_clock_us


def host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PointError(f"--{what} takes HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _need(value: str | None, flag: str, driver: str) -> str:
    if not value:
        raise PointError(f"the {driver} driver needs --{flag}")
    return value


def simulated_device(kind: str, start_us: int) -> SimDevice:
    """A simulated device of ``kind`` (see :data:`SIM_KINDS`), driven by the bundled NSW data."""
    if kind == "plug":
        return SimPlug("fridge", start_us=start_us)
    if kind == "pump":  # a smart plug with a pool pump behind it: a load worth shifting
        return SimPlug("pool_pump", start_us=start_us)
    if kind == "aircon":
        outdoor = load_series("nsw1", "temperature").at
        return SimAirConditioner(outdoor, start_us=start_us)
    if kind == "pv":
        return SimPvInverter(5.0, start_us=start_us)
    if kind == "battery":
        return SimBattery(start_us=start_us)
    if kind == "ev":
        return SimEvCharger(start_us=start_us)
    if kind == "meter":
        site = [SimPlug("fridge", start_us=start_us), SimPvInverter(3.0, start_us=start_us)]
        return SimMeter(site, start_us=start_us)
    raise PointError(f"--sim takes one of {', '.join(SIM_KINDS)}, not {kind!r}")


@asynccontextmanager
async def open_driver(options: DriverOptions) -> AsyncIterator[Driver]:
    name = options.driver
    if name == "sim":
        kind = _need(options.sim, "sim KIND", name)
        clock = sim_clock(options)
        yield SimDriver(simulated_device(kind, clock()), clock)
    elif name == "tasmota":
        host, port = host_port(_need(options.mqtt, "mqtt HOST:PORT", name), "mqtt")
        yield TasmotaDriver(host, port, _need(options.topic, "topic TOPIC", name))
    elif name == "shelly":
        if options.url:
            yield ShellyHttpDriver(options.url)
        else:
            host, port = host_port(_need(options.mqtt, "url URL or --mqtt HOST:PORT", name), "mqtt")
            yield ShellyMqttDriver(host, port, _need(options.device_id, "device-id ID", name))
    elif name == "sunspec":
        host, port = host_port(_need(options.modbus, "modbus HOST:PORT", name), "modbus")
        yield SunSpecDriver(host, port, unit_id=options.unit)
    elif name == "ocpp":
        host, port = host_port(_need(options.ocpp, "ocpp HOST:PORT", name), "ocpp")
        charger = _need(options.charger, "charger ID", name)
        async with OcppCentralSystem(host, port, charge_points=[charger]) as system:
            yield system.charger(charger)
    else:
        raise PointError(f"--driver takes one of {', '.join(DRIVERS)}, not {name!r}")
