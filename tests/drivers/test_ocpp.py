"""OCPP 1.6 and 2.0.1: the CSMS and its charger driver against a simulated charge point on
loopback, plus the pure meter-value, profile and frame logic on wire-format payloads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.charge_point import camel_to_snake_case
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from ioe.drivers.model import DeviceOffline, PointError, PointValue
from ioe.drivers.ocpp_cs import (
    MeterReading,
    OcppCentralSystem,
    OcppChargerDriver,
    charge_point_id_from_path,
    combine_connectors,
    frame_problem,
    parse_meter_values,
    register_reading,
    tx_default_profile,
)
from ioe.testing.driver_contract import DriverContract, DriverHarness, read_until
from ioe.testing.ocpp_charge_point import ChargerModel, SimulatedChargePoint

VERSIONS = ("1.6", "2.0.1")

pytestmark = pytest.mark.anyio  # the async tests; plain functions stay plain


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def wire(payload_json: str) -> list[Any]:
    """A ``meterValue`` list from wire-format JSON, as the ocpp library hands it to handlers."""
    return camel_to_snake_case(json.loads(payload_json))["meter_value"]


# --- meter values, OCPP 1.6 (values are strings; unit Wh/kWh/W/kW/A/V/Percent) ----------------

METER_VALUES_16 = """{
  "connectorId": 1,
  "transactionId": 17,
  "meterValue": [{
    "timestamp": "2024-05-01T12:00:00Z",
    "sampledValue": [
      {"value": "12345.6", "context": "Sample.Periodic", "format": "Raw",
       "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"},
      {"value": "7.36", "context": "Sample.Periodic",
       "measurand": "Power.Active.Import", "location": "Outlet", "unit": "kW"},
      {"value": "16.1", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
      {"value": "15.9", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
      {"value": "16.4", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
      {"value": "0.2", "measurand": "Current.Import", "phase": "N", "unit": "A"},
      {"value": "229.0", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
      {"value": "231.0", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
      {"value": "230.0", "measurand": "Voltage", "phase": "L3-N", "unit": "V"},
      {"value": "398.0", "measurand": "Voltage", "phase": "L1-L2", "unit": "V"},
      {"value": "61", "measurand": "SoC", "location": "EV", "unit": "Percent"},
      {"value": "35.5", "measurand": "Temperature", "location": "Body", "unit": "Celsius"}
    ]
  }]
}"""


def test_16_meter_values_in_canonical_units() -> None:
    parse = parse_meter_values("1.6", wire(METER_VALUES_16))
    assert parse.problems == ()
    assert parse.reading == MeterReading(
        energy_wh=12345.6, power_w=7360.0, current_a=16.4, voltage_v=230.0, soc_pct=61.0
    )


def test_16_kwh_and_defaults() -> None:
    """No measurand means the energy register; no unit means Wh for energy, the natural unit
    of anything else."""
    parse = parse_meter_values(
        "1.6",
        wire(
            """{"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00+02:00",
            "sampledValue": [{"value": "1.5"}, {"value": "3.2", "unit": "kWh",
            "measurand": "Energy.Active.Import.Register", "location": "Inlet"},
            {"value": "11000", "measurand": "Power.Active.Import"}]}]}"""
        ),
    )
    assert parse.reading == MeterReading(energy_wh=1.5, power_w=11000.0)  # Outlet beats Inlet
    parse = parse_meter_values(
        "1.6",
        wire(
            """{"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
            "sampledValue": [{"value": "3.25", "unit": "kWh"}]}]}"""
        ),
    )
    assert parse.reading.energy_wh == 3250.0


def test_16_per_phase_power_adds_up_and_export_is_negative() -> None:
    parse = parse_meter_values(
        "1.6",
        wire(
            """{"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
            "sampledValue": [
              {"value": "3.7", "measurand": "Power.Active.Import", "phase": "L1-N", "unit": "kW"},
              {"value": "3.6", "measurand": "Power.Active.Import", "phase": "L2-N", "unit": "kW"},
              {"value": "3.7", "measurand": "Power.Active.Import", "phase": "L3-N", "unit": "kW"},
              {"value": "2000", "measurand": "Power.Active.Export", "unit": "W"}]}]}"""
        ),
    )
    assert parse.reading.power_w == pytest.approx(11000.0 - 2000.0)


def test_16_signed_data_is_not_a_number_and_garbage_is_reported() -> None:
    parse = parse_meter_values(
        "1.6",
        wire(
            """{"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
            "sampledValue": [
              {"value": "AP3yBq+3mZ0=", "format": "SignedData"},
              {"value": "lots", "measurand": "Power.Active.Import", "unit": "W"},
              {"value": "NaN", "measurand": "Current.Import", "unit": "A"},
              {"value": "230", "measurand": "Voltage", "unit": "A"},
              {"value": "150", "measurand": "SoC", "unit": "Percent"},
              {"value": "-5", "unit": "Wh"},
              {"value": "16", "measurand": "Current.Import", "unit": "A"}]}]}"""
        ),
    )
    assert parse.reading == MeterReading(current_a=16.0)
    assert len(parse.problems) == 5
    assert any("'lots'" in p for p in parse.problems)
    assert any("soc_pct = 150.0" in p for p in parse.problems)


def test_the_latest_timestamp_wins_whatever_the_order() -> None:
    parse = parse_meter_values(
        "1.6",
        wire(
            """{"connectorId": 1, "meterValue": [
              {"timestamp": "2024-05-01T12:05:00Z", "sampledValue": [{"value": "2000"}]},
              {"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": "1000"},
                {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"}]},
              {"timestamp": "yesterday", "sampledValue": [{"value": "9999"}]}]}"""
        ),
    )
    assert parse.reading == MeterReading(energy_wh=2000.0, power_w=7000.0)
    assert parse.problems == ("meterValue timestamp 'yesterday' is not a date-time",)


def test_meter_registers_of_start_and_stop_transaction() -> None:
    assert register_reading(4711).reading.energy_wh == 4711.0
    assert register_reading(-1).problems
    assert register_reading("4711").problems


# --- meter values, OCPP 2.0.1 (numbers; unitOfMeasure unit and multiplier = power of ten) ------

METER_VALUES_201 = """{
  "evseId": 1,
  "meterValue": [{
    "timestamp": "2024-05-01T12:00:00.000Z",
    "sampledValue": [
      {"value": 12.3456, "context": "Sample.Clock", "measurand": "Energy.Active.Import.Register",
       "location": "Outlet", "unitOfMeasure": {"unit": "kWh"}},
      {"value": 7.4, "measurand": "Power.Active.Import",
       "unitOfMeasure": {"unit": "W", "multiplier": 3}},
      {"value": 32, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
      {"value": 2301, "measurand": "Voltage", "phase": "L1-N",
       "unitOfMeasure": {"unit": "V", "multiplier": -1}},
      {"value": 80, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}},
      {"value": 50.0, "measurand": "Frequency"}
    ]
  }]
}"""


def test_201_units_and_multipliers() -> None:
    parse = parse_meter_values("2.0.1", wire(METER_VALUES_201))
    assert parse.problems == ()
    assert parse.reading == MeterReading(
        energy_wh=12345.6, power_w=7400.0, current_a=32.0, voltage_v=230.1, soc_pct=80.0
    )


def test_201_defaults_and_garbage() -> None:
    parse = parse_meter_values(
        "2.0.1",
        wire(
            """{"evseId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
            "sampledValue": [
              {"value": 1500},
              {"value": "7400", "measurand": "Power.Active.Import"},
              {"value": 16, "measurand": "Current.Import", "unitOfMeasure": {"unit": "mA"}},
              {"value": 230, "measurand": "Voltage", "unitOfMeasure": {"multiplier": 1.5}},
              {"value": 61, "measurand": "SoC"}]}]}"""
        ),
    )
    assert parse.reading == MeterReading(energy_wh=1500.0, soc_pct=61.0)
    assert len(parse.problems) == 3


def test_nonsense_structures_are_problems_not_exceptions() -> None:
    for garbage in (None, "x", [1], [{"timestamp": 5}], [{"timestamp": "2024-05-01T12:00:00Z"}]):
        parse = parse_meter_values("2.0.1", garbage)
        assert parse.reading == MeterReading()
        assert parse.problems


def test_connectors_combine_into_one_charger() -> None:
    one = MeterReading(energy_wh=100.0, power_w=3000.0, current_a=13.0, voltage_v=229.0)
    two = MeterReading(energy_wh=50.0, power_w=1000.0, current_a=6.0, voltage_v=231.0, soc_pct=40)
    assert combine_connectors({1: one, 2: two}) == MeterReading(
        energy_wh=150.0, power_w=4000.0, current_a=13.0, voltage_v=230.0, soc_pct=40
    )
    main = MeterReading(energy_wh=999.0, power_w=4100.0)
    combined = combine_connectors({0: main, 1: one, 2: two.updated(MeterReading(soc_pct=1))})
    assert (combined.energy_wh, combined.power_w, combined.current_a) == (999.0, 4100.0, 13.0)
    assert combine_connectors({1: one.updated(MeterReading(soc_pct=2)), 2: two}).soc_pct is None


# --- profiles and frames ------------------------------------------------------------------------


def test_tx_default_profiles_have_one_period_in_amperes() -> None:
    assert tx_default_profile("1.6", 16.04, profile_id=7, stack_level=2) == {
        "chargingProfileId": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
    profile = tx_default_profile("2.0.1", 10.26, profile_id=7, stack_level=2)
    assert profile["id"] == 7
    assert profile["chargingSchedule"] == [
        {
            "id": 7,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.3}],
        }
    ]


@pytest.mark.parametrize(
    ("version", "frame", "reply"),
    [
        ("1.6", '[2,"a1","Heartbeat",{}]', None),
        ("1.6", '[3,"a1",{"currentTime":"2024-05-01T12:00:00Z"}]', None),
        ("1.6", '[4,"a1","NotImplemented","",{}]', None),
        ("1.6", '[2,"a1","Heartbeat"]', [4, "a1", "FormationViolation"]),
        ("2.0.1", '[2,"a1","Heartbeat"]', [4, "a1", "RpcFrameworkError"]),
        ("2.0.1", '[2,"a1",17,{}]', [4, "a1", "RpcFrameworkError"]),
        ("2.0.1", '[2,"a1","Heartbeat",[]]', [4, "a1", "RpcFrameworkError"]),
        ("2.0.1", '[7,"a1","Heartbeat",{}]', [4, "a1", "MessageTypeNotSupported"]),
        ("1.6", '[7,"a1","Heartbeat",{}]', "drop"),
        ("1.6", '[2,17,"Heartbeat",{}]', "drop"),
        ("1.6", '[3,"a1"]', "drop"),
        ("1.6", "not json", "drop"),
        ("1.6", '{"a": 1}', "drop"),
        ("1.6", b"\xff\xfe", "drop"),
        ("2.0.1", "[" * 100_000, "drop"),
        ("2.0.1", "[]", "drop"),
    ],
)
def test_frames_are_judged_before_the_library_sees_them(
    version: str, frame: str | bytes, reply: object
) -> None:
    problem = frame_problem(frame, version)
    if reply is None:
        assert problem is None
    elif reply == "drop":
        assert problem is not None
        assert problem[1] is None
    else:
        assert problem is not None
        assert problem[1] is not None
        assert json.loads(problem[1])[:3] == reply


def test_identity_is_the_last_path_segment() -> None:
    assert charge_point_id_from_path("/ocpp/CP%201?x=1") == "CP 1"
    assert charge_point_id_from_path("/CP-1/") == "CP-1"
    assert charge_point_id_from_path("/") == ""


# --- the contract, for both versions ------------------------------------------------------------


class OcppHarness(DriverHarness):
    def __init__(self, system: OcppCentralSystem, sim: SimulatedChargePoint) -> None:
        self.system, self.sim = system, sim

    def make_driver(self) -> OcppChargerDriver:
        return self.system.charger(self.sim.charge_point_id)

    def valid_write(self) -> tuple[str, PointValue, PointValue]:
        return "current_limit_a", 16.0, 10.0

    async def take_offline(self) -> None:
        await self.sim.disconnect()

    async def bring_back(self) -> None:
        await self.sim.connect()


async def running(version: str, *, kilo_units: bool = False) -> AsyncIterator[OcppHarness]:
    async with OcppCentralSystem("127.0.0.1", 0, call_timeout_s=5) as system:
        sim = SimulatedChargePoint(
            system.url,
            f"CP-{version}",
            version=version,
            meter_interval_s=0.05,
            kilo_units=kilo_units,
        )
        async with sim:
            await system.wait_for(sim.charge_point_id, 5)
            yield OcppHarness(system, sim)


class TestOcpp16Contract(DriverContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[OcppHarness]:
        async for harness in running("1.6"):
            yield harness


class TestOcpp201Contract(DriverContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[OcppHarness]:
        async for harness in running("2.0.1", kilo_units=True):
            yield harness


# --- the CSMS against the simulator -------------------------------------------------------------


@pytest.fixture(params=VERSIONS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[OcppHarness]:
    async for harness in running(request.param, kilo_units=request.param == "2.0.1"):
        yield harness


async def test_readings_follow_the_charger(harness: OcppHarness) -> None:
    driver, model = harness.make_driver(), harness.sim.model
    description = await driver.describe()
    assert (description.manufacturer, description.model, description.serial) == (
        "IoE",
        "SimCharger",
        "SIM-0001",
    )
    assert str(description.device_type) == "consumption"
    values = await read_until(driver, lambda v: v.get("power_w") == 3 * 230 * 32.0)
    assert values["power_w"] == 3 * 230 * 32.0
    assert values["current_a"] == 32.0
    assert values["voltage_v"] == 230.0
    assert values["soc_pct"] == pytest.approx(model.soc_pct, abs=1)
    assert values["energy_wh"] == pytest.approx(model.energy_wh, abs=50)  # 22 kW ≈ 6 Wh/s
    before = values["energy_wh"]
    values = await read_until(driver, lambda v: v["energy_wh"] > before + 1)
    assert values["energy_wh"] > before + 1


async def test_a_limit_is_a_tx_default_profile_and_revert_clears_it(harness: OcppHarness) -> None:
    driver, sim = harness.make_driver(), harness.sim
    await read_until(driver, lambda v: v.get("online") is True)
    assert "current_limit_a" not in await driver.read()
    await driver.write("current_limit_a", 13.5)
    assert sim.model.limit_a == 13.5
    values = await read_until(driver, lambda v: v.get("power_w") == 3 * 230 * 13.5)
    assert values["power_w"] == 3 * 230 * 13.5
    assert values["current_limit_a"] == 13.5
    await driver.write("current_limit_a", 20)
    await driver.revert()
    assert sim.model.profiles == {}
    assert "current_limit_a" not in await driver.read()
    sent = [json.loads(f) for f in sim.frames_in if '"SetChargingProfile"' in f]
    cleared = [json.loads(f) for f in sim.frames_in if '"ClearChargingProfile"' in f]
    assert len(sent) == 2
    assert len(cleared) == 1
    limit = tx_default_profile(sim.version, 13.5, profile_id=1, stack_level=0)
    if sim.version == "1.6":
        assert sent[0][3] == {"connectorId": 0, "csChargingProfiles": limit}
        assert cleared[0][3] == {"id": 1}
    else:
        assert sent[0][3] == {"evseId": 0, "chargingProfile": limit}
        assert cleared[0][3] == {"chargingProfileId": 1}


async def test_below_six_amperes_the_charger_pauses(harness: OcppHarness) -> None:
    driver = harness.make_driver()
    await read_until(driver, lambda v: v.get("online") is True)
    await driver.write("current_limit_a", 0)
    values = await read_until(driver, lambda v: v.get("power_w") == 0)
    assert values["current_a"] == 0
    assert values["current_limit_a"] == 0


async def test_a_finished_transaction_draws_nothing(harness: OcppHarness) -> None:
    driver, sim = harness.make_driver(), harness.sim
    await read_until(driver, lambda v: v.get("power_w", 0) > 0)
    await sim.stop_charging()
    values = await driver.read()
    assert values["power_w"] == 0
    assert values["current_a"] == 0
    assert values["energy_wh"] == pytest.approx(sim.model.energy_wh, abs=1)
    assert driver.status[1] == "Available"


async def test_clock_aligned_meter_values_outside_a_transaction(harness: OcppHarness) -> None:
    driver, sim = harness.make_driver(), harness.sim
    await sim.stop_charging()
    sim.model.energy_wh = 5000.0
    await sim.send_meter_values("Sample.Clock")
    assert (await driver.read())["energy_wh"] == pytest.approx(5000.0, abs=0.01)
    assert any('"MeterValues"' in f for f in sim.frames_out)


async def test_a_refused_profile_is_a_point_error(harness: OcppHarness) -> None:
    driver, sim = harness.make_driver(), harness.sim
    await read_until(driver, lambda v: v.get("online") is True)
    await driver.write("current_limit_a", 16)
    sim.accept_profiles = False
    with pytest.raises(PointError, match="refused"):
        await driver.write("current_limit_a", 8)
    assert (await driver.read())["current_limit_a"] == 16
    assert sim.model.limit_a == 16


async def test_offline_writes_fail_and_the_identity_comes_back(harness: OcppHarness) -> None:
    driver, sim, system = harness.make_driver(), harness.sim, harness.system
    await sim.disconnect()
    await read_until(driver, lambda v: v.get("online") is False)
    assert system.connected == []
    with pytest.raises(DeviceOffline):
        await driver.write("current_limit_a", 16)
    await sim.connect()
    await system.wait_for(sim.charge_point_id, 5)
    await driver.write("current_limit_a", 16)
    assert sim.model.limit_a == 16


async def test_a_second_connection_with_the_same_identity_replaces_the_first(
    harness: OcppHarness,
) -> None:
    system, first = harness.system, harness.sim
    driver = harness.make_driver()
    second = SimulatedChargePoint(
        system.url, first.charge_point_id, version=first.version, meter_interval_s=0.05
    )
    async with second:
        for _ in range(250):
            if not first.connected:
                break
            await asyncio.sleep(0.02)
        assert not first.connected
        assert second.connected
        await driver.write("current_limit_a", 12)
        assert second.model.limit_a == 12
        assert first.model.limit_a is None
    await first.disconnect()


async def test_waiting_for_a_charge_point_that_never_comes() -> None:
    async with OcppCentralSystem("127.0.0.1", 0) as system:
        with pytest.raises(DeviceOffline, match="did not connect"):
            await system.wait_for("nobody", 0.05)
        assert (await system.charger("nobody").read()) == {"online": False}


async def test_unknown_identities_and_missing_subprotocols_are_refused() -> None:
    async with OcppCentralSystem("127.0.0.1", 0, charge_points={"CP-1"}) as system:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{system.url}/CP-2", subprotocols=[Subprotocol("ocpp1.6")])
        assert refused.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{system.url}/CP-1")
        assert refused.value.response.status_code == 400
        async with connect(f"{system.url}/CP-1", subprotocols=[Subprotocol("ocpp2.0.1")]) as ws:
            assert ws.subprotocol == "ocpp2.0.1"


# --- malformed traffic from a charge point ------------------------------------------------------


async def exchange(ws: Any, frame: str) -> list[Any]:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_malformed_call_gets_a_callerror_and_the_csms_carries_on(
    version: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with OcppCentralSystem("127.0.0.1", 0) as system:
        sim = SimulatedChargePoint(system.url, "CP-OK", version=version, meter_interval_s=0.05)
        async with (
            sim,
            connect(f"{system.url}/CP-BAD", subprotocols=[Subprotocol(f"ocpp{version}")]) as ws,
        ):
            reply = await exchange(ws, '[2,"m1","BootNotification"]')
            assert reply[:2] == [4, "m1"]
            code = "FormationViolation" if version == "1.6" else "RpcFrameworkError"
            assert reply[2] == code
            reply = await exchange(ws, '[2,"m2","BootNotification",{"chargePointVendor":5}]')
            assert reply[:2] == [4, "m2"]
            reply = await exchange(ws, '[2,"m3","NoSuchAction",{}]')
            assert reply[:3] == [4, "m3", "NotSupported"]
            await ws.send("}{ not json")
            await ws.send('[2,17,"Heartbeat",{}]')
            reply = await exchange(ws, '[2,"m4","Heartbeat",{}]')  # the garbage got no answer
            assert reply[:2] == [3, "m4"]
            assert "currentTime" in reply[2]
            assert "CP-BAD sent a malformed frame (not JSON)" in caplog.text
            driver = system.charger("CP-OK")
            await driver.write("current_limit_a", 11)
            assert sim.model.limit_a == 11
            assert (await driver.read())["online"] is True


async def test_a_garbage_meter_value_is_a_log_line_and_the_rest_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        OcppCentralSystem("127.0.0.1", 0) as system,
        connect(f"{system.url}/CP-RAW", subprotocols=[Subprotocol("ocpp1.6")]) as ws,
    ):
        frame = [
            2,
            "mv1",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": "2024-05-01T12:00:00Z",
                        "sampledValue": [
                            {"value": "4200", "unit": "Wh"},
                            {"value": "about 7 kW", "measurand": "Power.Active.Import"},
                        ],
                    }
                ],
            },
        ]
        with caplog.at_level(logging.WARNING, logger="ioe.drivers.ocpp_cs"):
            reply = await exchange(ws, json.dumps(frame))
        assert reply == [3, "mv1", {}]
        assert "CP-RAW sent a bad meter value: Power.Active.Import" in caplog.text
        values = await system.charger("CP-RAW").read()
        assert values == {"energy_wh": 4200.0, "online": True}


@pytest.mark.parametrize(
    ("version", "call", "result"),
    [
        ("1.6", ["FirmwareStatusNotification", {"status": "Installed"}], {}),
        ("1.6", ["DataTransfer", {"vendorId": "com.example"}], {"status": "UnknownVendorId"}),
        ("2.0.1", ["FirmwareStatusNotification", {"status": "Installed"}], {}),
        (
            "2.0.1",
            ["SecurityEventNotification", {"type": "SettingSystemTime",
                                           "timestamp": "2024-05-01T12:00:00Z"}],
            {},
        ),
    ],
)  # fmt: skip
async def test_unsolicited_notifications_are_acknowledged(
    version: str, call: list[Any], result: dict[str, Any]
) -> None:
    async with (
        OcppCentralSystem("127.0.0.1", 0) as system,
        connect(f"{system.url}/CP-N", subprotocols=[Subprotocol(f"ocpp{version}")]) as ws,
    ):
        assert await exchange(ws, json.dumps([2, "n1", *call])) == [3, "n1", result]


async def test_a_silent_charger_is_offline_for_the_write() -> None:
    async with (
        OcppCentralSystem("127.0.0.1", 0, call_timeout_s=0.2) as system,
        connect(f"{system.url}/CP-MUTE", subprotocols=[Subprotocol("ocpp1.6")]),
    ):
        driver = await system.wait_for("CP-MUTE", 5)
        with pytest.raises(DeviceOffline, match="did not answer SetChargingProfile"):
            await driver.write("current_limit_a", 16)
        assert "current_limit_a" not in await driver.read()


def test_the_simulated_car_stops_drawing_at_full_charge() -> None:
    model = ChargerModel(max_current_a=16, phases=1, soc_pct=99.9, battery_wh=1000)
    model.charging = True
    assert model.current_a == 16
    model.advance(3600)
    assert model.soc_pct == 100.0
    assert model.current_a == 0
