"""Simulated devices: physics invariants, the bundled data they follow, and the driver contract."""

from __future__ import annotations

import json
import math
from importlib import resources
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.data import DAY_US, REGIONS, SERIES, Series, load_series
from ioe.drivers.model import DeviceOffline, PointError, PointValue
from ioe.drivers.sim import (
    PROFILES,
    FakeClock,
    SimAirConditioner,
    SimBattery,
    SimDevice,
    SimDriver,
    SimEv,
    SimEvCharger,
    SimMeter,
    SimPlug,
    SimPvInverter,
    example_site,
)
from ioe.testing.driver_contract import DriverContract, DriverHarness

SOLAR = load_series("nsw1", "solar_rooftop")
T0 = SOLAR.start_us  # 2023-01-17 11:30 NEM time (UTC+10)
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000


def constant(value: float):  # type: ignore[no-untyped-def]
    return lambda t_us: value


def local_hour(t_us: int) -> float:
    return SOLAR.local_hour(t_us)


# ------------------------------------------------------------------------------------- data


def test_every_bundled_series_loads_with_timestamps_in_microseconds() -> None:
    for region in REGIONS:
        for name in SERIES:
            series = load_series(region, name)
            stamps = series.timestamps_us
            assert len(stamps) == len(series.values) > 30
            assert all(b - a == series.interval_us for a, b in pairwise(stamps))
            assert 1_600_000_000_000_000 < stamps[0] < 1_800_000_000_000_000  # 2020..2027 in µs
            assert all(math.isfinite(v) for v in series.values)
    assert load_series("nsw1", "price").interval_us == 300_000_000
    assert load_series("NSW1", "demand") == load_series("nsw1", "demand")


def test_unknown_regions_and_series_are_refused_clearly() -> None:
    with pytest.raises(KeyError, match="vic9"):
        load_series("vic9", "price")
    with pytest.raises(KeyError, match="wind"):
        load_series("nsw1", "wind")


def test_shipped_data_is_small_and_attributed() -> None:
    files = {f.name: f for f in resources.files("ioe.data").iterdir()}
    data = [f for name, f in files.items() if name.endswith(".json")]
    assert data
    assert sum(len(f.read_bytes()) for f in data) < 200_000
    attribution = files["ATTRIBUTION.md"].read_text()
    assert "OpenNEM" in attribution and "MIT" in attribution and "AEMO" in attribution
    assert "MIT License" in files["LICENSE-opennem.txt"].read_text()
    for f in data:
        assert json.loads(f.read_text())["series"].keys() >= set(SERIES)


def test_series_interpolates_and_repeats_by_whole_days() -> None:
    series = Series("x", "ramp", "u", start_us=0, interval_us=10, values=(0.0, 10.0, 30.0))
    assert series.at(0) == 0.0
    assert series.at(5) == 5.0
    assert series.at(15) == 20.0
    assert series.period_us == DAY_US
    assert series.at(DAY_US + 15) == series.at(15) == series.at(-DAY_US + 15)
    middle_of_gap = 20 + (DAY_US - 20) // 2  # bridged from the last value back to the first
    assert series.at(middle_of_gap) == pytest.approx(15.0, abs=1e-6)
    temperature = load_series("nsw1", "temperature")
    week = load_series("nsw1", "price")
    assert temperature.period_us == DAY_US and week.period_us == 7 * DAY_US
    for i, t in enumerate(temperature.timestamps_us):
        assert temperature.at(t) == temperature.values[i]


# ---------------------------------------------------------------------------------------- PV


def test_pv_is_zero_at_night_and_peaks_around_midday_in_the_real_data() -> None:
    pv = SimPvInverter(5.0, start_us=T0)
    start_of_day = T0 + round((24 - local_hour(T0)) * HOUR_US)  # next local midnight
    for day in range(6):
        powers: list[tuple[float, int]] = []
        for minute in range(0, 24 * 60, 10):
            t = start_of_day + day * DAY_US + minute * MINUTE_US
            pv.step(t)
            powers.append((pv.power_w, t))
            assert pv.power_w <= 0
            if local_hour(t) < 4 or local_hour(t) >= 21:
                assert pv.power_w == 0
        strongest, when = min(powers)
        assert 10.5 <= local_hour(when) <= 14.0
        assert -5000 * 0.85 <= strongest < -5000 * 0.3


def test_pv_energy_counts_generation_upwards_and_switch_off_stops_it() -> None:
    pv = SimPvInverter(3.0, start_us=T0)
    pv.step(T0 + HOUR_US)
    generated = pv.values()["energy_wh"]
    assert isinstance(generated, float) and generated > 1000  # an hour around midday
    assert pv.export_wh == pytest.approx(generated) and pv.import_wh == 0
    pv.write("switch", False)
    pv.step(T0 + 2 * HOUR_US)
    assert pv.power_w == 0 and pv.values()["energy_wh"] == generated


# ----------------------------------------------------------------------------------- battery

setpoints = st.lists(
    st.tuples(st.floats(-1.0, 1.0), st.integers(1, 4 * 3600)), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(
    soc=st.floats(0, 100),
    rte=st.floats(0.5, 1.0),
    capacity=st.floats(500, 50_000),
    limit=st.floats(100, 10_000),
    steps=setpoints,
)
def test_battery_soc_stays_in_bounds_and_never_returns_more_than_it_took(
    soc: float, rte: float, capacity: float, limit: float, steps: list[tuple[float, int]]
) -> None:
    battery = SimBattery(
        start_us=T0,
        capacity_wh=capacity,
        max_charge_w=limit,
        max_discharge_w=limit,
        round_trip_efficiency=rte,
        soc_pct=soc,
    )
    stored_at_start = battery.stored_wh
    now = T0
    for fraction, seconds in steps:
        battery.write("charge_power_w", fraction * limit)
        now += seconds * 1_000_000
        battery.step(now)
        reading = battery.values()
        assert 0 <= reading["soc_pct"] <= 100  # type: ignore[operator]
        battery.description.point("soc_pct").check(reading["soc_pct"])
    energy_in, energy_out = battery.import_wh, battery.export_wh
    slack = 1e-6 * (capacity + energy_in)
    assert energy_out <= energy_in * rte + stored_at_start * math.sqrt(rte) + slack
    # and the books balance: what is stored is what went in minus what came out, less losses
    expected = stored_at_start + energy_in * math.sqrt(rte) - energy_out / math.sqrt(rte)
    assert battery.stored_wh == pytest.approx(expected, abs=slack)


def test_battery_stops_at_full_and_at_empty() -> None:
    battery = SimBattery(start_us=T0, capacity_wh=10_000, max_charge_w=5000, soc_pct=90)
    battery.write("charge_power_w", 5000)
    assert battery.power_w == 5000
    battery.step(T0 + HOUR_US)
    assert battery.values()["soc_pct"] == 100
    assert battery.power_w == 0  # the set point stays, the flow stops
    assert battery.values()["charge_power_w"] == 5000
    assert battery.import_wh == pytest.approx(1000 / math.sqrt(0.9))
    battery.write("charge_power_w", -5000)
    assert battery.power_w == -5000
    battery.step(T0 + 4 * HOUR_US)
    assert battery.values()["soc_pct"] == 0 and battery.power_w == 0
    with pytest.raises(PointError):
        battery.write("charge_power_w", 5001)


# --------------------------------------------------------------------------- air conditioner


def test_cooling_brings_the_room_to_the_setpoint_and_holds_it_within_the_deadband() -> None:
    ac = SimAirConditioner(constant(35.0), start_us=T0, room_c=33.0, setpoint_c=24, deadband_c=1.0)
    temperatures = []
    for minute in range(1, 6 * 60):
        ac.step(T0 + minute * MINUTE_US)
        temperatures.append(ac.room_c)
    reached = next(i for i, t in enumerate(temperatures) if t <= 24.5)
    assert all(a >= b for a, b in pairwise(temperatures[:reached]))
    settled = temperatures[reached + 60 :]
    assert settled and all(23.4 <= t <= 24.6 for t in settled)
    assert ac.import_wh > 0
    cycling = []
    for second in range(0, 3600, 10):
        ac.step(T0 + 6 * HOUR_US + second * 1_000_000)
        cycling.append(ac.power_w)
    assert min(cycling) == ac.fan_w and max(cycling) == ac.capacity_w / ac.cop + ac.fan_w


def test_heating_brings_a_cold_room_up_to_the_setpoint() -> None:
    ac = SimAirConditioner(constant(5.0), start_us=T0, room_c=12.0, setpoint_c=21, mode="heat")
    ac.step(T0 + 6 * HOUR_US)
    assert 20.3 <= ac.room_c <= 21.7


@settings(max_examples=40, deadline=None)
@given(
    outdoor=st.floats(-10, 45),
    room=st.floats(-10, 45),
    minutes=st.lists(st.integers(1, 120), min_size=1, max_size=20),
)
def test_a_room_with_the_ac_off_drifts_to_outdoor_without_overshooting(
    outdoor: float, room: float, minutes: list[int]
) -> None:
    ac = SimAirConditioner(constant(outdoor), start_us=T0, room_c=room, mode="off")
    low, high = min(outdoor, room), max(outdoor, room)
    now, gap = T0, abs(room - outdoor)
    for step in minutes:
        now += step * MINUTE_US
        ac.step(now)
        assert low - 1e-9 <= ac.room_c <= high + 1e-9
        assert abs(ac.room_c - outdoor) <= gap + 1e-9  # never further away than before
        gap = abs(ac.room_c - outdoor)
        assert ac.power_w == 0
    ac.step(now + round(12 * ac.time_constant_s) * 1_000_000)
    assert ac.room_c == pytest.approx(outdoor, abs=1e-3)


def test_the_ac_follows_the_real_outdoor_temperature() -> None:
    outdoor = load_series("nsw1", "temperature")
    off = SimAirConditioner(outdoor.at, start_us=outdoor.start_us, mode="off")
    cooling = SimAirConditioner(outdoor.at, start_us=outdoor.start_us, setpoint_c=22)
    for step in range(1, 16 * 2 + 1):  # 16 hours of the recorded evening and night
        t = outdoor.start_us + step * 30 * MINUTE_US
        off.step(t)
        cooling.step(t)
        if step > 10:  # cooling holds the band, or the night is cooler than the band
            assert min(21.4, outdoor.at(t)) <= cooling.room_c <= 22.6
    # off, the room lags the outdoor air: it ends between where it started and outdoors now
    assert abs(off.room_c - outdoor.at(off.now_us)) < abs(outdoor.values[0] - outdoor.values[-1])
    assert off.room_c > outdoor.at(off.now_us)  # the night cools the outdoors faster
    assert cooling.import_wh > 1000 and off.import_wh == 0


def test_ac_modes_and_setpoint_are_checked() -> None:
    ac = SimAirConditioner(constant(30.0), start_us=T0)
    with pytest.raises(PointError):
        ac.write("setpoint_c", 35)
    with pytest.raises(PointError):
        ac.write("mode", "turbo")
    with pytest.raises(PointError):
        ac.write("temperature_c", 20)
    ac.write("mode", "fan")
    assert ac.power_w == ac.fan_w


# -------------------------------------------------------------------------------------- plugs


def test_plug_profiles_draw_what_they_describe() -> None:
    day = T0 + round((24 - local_hour(T0)) * HOUR_US)
    energy = {}
    for name in PROFILES:
        plug = SimPlug(name, start_us=day, utc_offset_s=SOLAR.utc_offset_s)
        readings = []
        for second in range(0, 86_400, 10):
            plug.step(day + second * 1_000_000)
            readings.append(plug.values()["energy_wh"])
        assert readings == sorted(readings)  # the counter never goes down
        energy[name] = plug.import_wh
    assert energy["kettle"] == pytest.approx(5 * 3 / 60 * 2200, rel=0.02)
    fridge_compressor = 86_400 / 2100 * (60 * 120 + 660 * 95) / 3600
    assert energy["fridge"] == pytest.approx(fridge_compressor, rel=0.15)
    assert 0.4 < energy["tv"] / (6.5 * 95) < 1.1


def test_a_plug_switched_off_draws_nothing() -> None:
    plug = SimPlug("kettle", start_us=T0, utc_offset_s=0, switch=False)
    plug.step(T0 + DAY_US)
    assert plug.import_wh == 0 and plug.values()["power_w"] == 0
    with pytest.raises(ValueError, match="fridge, kettle, pool_pump, tv"):
        SimPlug("jacuzzi", start_us=T0)


# ----------------------------------------------------------------------------------------- EV


def test_the_ev_charges_at_the_offered_current_and_stops_when_full() -> None:
    ev = SimEv(capacity_wh=40_000, soc_pct=90, max_current_a=16)
    charger = SimEvCharger(start_us=T0, ev=ev, current_limit_a=32)
    assert charger.current_a == 16 and charger.power_w == 16 * 230  # the car's own limit
    charger.write("current_limit_a", 10)
    assert charger.power_w == 10 * 230
    charger.write("current_limit_a", 5)  # below the IEC 61851 minimum: paused
    assert charger.power_w == 0
    charger.write("current_limit_a", 32)
    charger.step(T0 + 6 * HOUR_US)
    assert ev.soc_pct == 100 and ev.full
    assert charger.power_w == 0 and charger.values()["current_a"] == 0
    assert charger.import_wh == pytest.approx(4000 / 0.9)
    charger.unplug()
    assert "soc_pct" not in charger.values()


# --------------------------------------------------------------------------------------- meter


@settings(max_examples=25, deadline=None)
@given(
    reads=st.lists(st.integers(1, 3 * 3600), min_size=1, max_size=25),
    battery=st.floats(-5000, 5000),
)
def test_the_meter_nets_the_site(reads: list[int], battery: float) -> None:
    site = example_site(T0)
    meter = site.pop("meter")
    site["battery"].write("charge_power_w", battery)
    now = T0
    for seconds in reads:
        now += seconds * 1_000_000
        meter.step(now)
        assert meter.power_w == pytest.approx(sum(d.power_w for d in site.values()))
        values = meter.values()
        assert values["power_w"] == meter.power_w
        net = sum(d.net_energy_wh for d in site.values())
        assert values["energy_wh"] - values["energy_export_wh"] == pytest.approx(net)  # type: ignore[operator]
        assert values["energy_wh"] >= 0 and values["energy_export_wh"] >= 0  # type: ignore[operator]


def test_opening_the_meter_relay_cuts_every_device_behind_it() -> None:
    site = example_site(T0)
    meter = site.pop("meter")
    site["battery"].write("charge_power_w", 3000)
    meter.step(T0 + MINUTE_US)
    assert meter.power_w != 0
    meter.write("switch", False)
    assert meter.power_w == 0 and all(d.power_w == 0 for d in site.values())
    stored = site["battery"].stored_wh  # type: ignore[attr-defined]
    before = meter.values()
    meter.step(T0 + HOUR_US)
    assert site["battery"].stored_wh == stored  # type: ignore[attr-defined]
    assert meter.values()["energy_wh"] == before["energy_wh"]
    meter.write("switch", True)
    assert meter.power_w != 0


def test_a_sub_meter_passes_a_loss_of_supply_on() -> None:
    evening = T0 + 8 * HOUR_US  # 19:30 local: the TV is on
    plug = SimPlug("tv", start_us=evening, utc_offset_s=SOLAR.utc_offset_s)
    sub = SimMeter([plug], start_us=evening)
    main = SimMeter([sub], start_us=evening)
    assert main.power_w == plug.power_w > 10
    main.write("switch", False)
    assert plug.power_w == 0
    main.write("switch", True)
    sub.write("switch", False)
    assert plug.power_w == 0 and not plug.supplied
    main.write("switch", True)
    assert plug.power_w == 0  # the sub-meter's own relay is still open


# -------------------------------------------------------------------------------------- driver


@pytest.mark.anyio
async def test_the_driver_reads_at_the_clock_and_reports_offline() -> None:
    clock = FakeClock(T0)
    pv = SimPvInverter(4.0, start_us=T0)
    async with SimDriver(pv, clock) as driver:
        first = await driver.read()
        clock.advance(1800)
        second = await driver.read()
        assert pv.now_us == clock() and second["energy_wh"] > first["energy_wh"]  # type: ignore[operator]
        pv.online = False
        assert await driver.read() == {"online": False}
        with pytest.raises(DeviceOffline):
            await driver.write("switch", False)
        clock.advance(600)
        pv.online = True
        third = await driver.read()
        assert third["online"] is True and third["energy_wh"] > second["energy_wh"]  # type: ignore[operator]
        clock.now_us -= 10 * MINUTE_US  # a clock that steps back changes nothing
        assert (await driver.read())["energy_wh"] == third["energy_wh"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SimHarness(DriverHarness):
    def __init__(self, device: SimDevice, write: tuple[str, PointValue, PointValue]) -> None:
        self.device = device
        self.clock = FakeClock(device.now_us)
        self.write = write

    def make_driver(self) -> SimDriver:
        self.clock.advance(1)
        return SimDriver(self.device, self.clock)

    def valid_write(self) -> tuple[str, PointValue, PointValue]:
        return self.write

    async def take_offline(self) -> None:
        self.device.online = False

    async def bring_back(self) -> None:
        self.device.online = True


class TestPlugContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        return SimHarness(SimPlug("fridge", start_us=T0), ("switch", False, True))


class TestAirConditionerContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        ac = SimAirConditioner(load_series("nsw1", "temperature").at, start_us=T0)
        return SimHarness(ac, ("setpoint_c", 22, 25.5))


class TestPvContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        return SimHarness(SimPvInverter(5.0, start_us=T0), ("switch", False, True))


class TestBatteryContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        return SimHarness(SimBattery(start_us=T0), ("charge_power_w", 2000.0, -1500))


class TestMeterContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        site = example_site(T0)
        return SimHarness(site["meter"], ("switch", False, True))


class TestEvChargerContract(DriverContract):
    @pytest.fixture
    def harness(self) -> DriverHarness:
        return SimHarness(SimEvCharger(start_us=T0, ev=SimEv()), ("current_limit_a", 10, 16.5))
