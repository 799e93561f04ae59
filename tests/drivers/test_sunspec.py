"""SunSpec driver: pure decoding and scaling, then the driver against a pymodbus server on loopback
serving maps laid out by pysunspec2 from the SunSpec model definitions."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import AsyncIterator, Callable
from fractions import Fraction

import anyio
import pytest
import sunspec2.device
from pymodbus.constants import ExcCodes

from ioe.drivers import sunspec_maps as maps
from ioe.drivers.model import DeviceOffline, DeviceProtocolError, PointError
from ioe.drivers.sunspec import SunSpecDriver, frame_problem
from ioe.testing.driver_contract import DriverContract, DriverHarness
from ioe.testing.sunspec_server import RawValue, SunSpecMap, SunSpecServer, Write
from ioe.vocabulary import DeviceType

ModelSpec = tuple[int, dict[str, RawValue]]
TIMEOUT_S = 2.0  # generous for loaded machines; garbage and hang-ups are noticed without waiting
HYBRID, INVERTER, METER = 1, 2, 200  # unit ids on the test server


def common(model: str, serial: str) -> ModelSpec:
    return 1, {"Mn": "ACME Energy", "Md": model, "Vr": "1.2.3", "SN": serial, "DA": 1}


def inverter_103(**overrides: RawValue) -> ModelSpec:
    values: dict[str, RawValue] = {
        "A": 1234, "AphA": 411, "AphB": 411, "AphC": 412, "A_SF": -2,
        "PhVphA": 2305, "PhVphB": 2311, "PhVphC": 2298, "V_SF": -1,
        "W": 4200, "W_SF": 0, "Hz": 5001, "Hz_SF": -2,
        "WH": 123456, "WH_SF": 1, "TmpCab": 415, "Tmp_SF": -1,
        "St": 4, "Evt1": 0, "Evt2": 0,
    }  # fmt: skip
    values.update(overrides)
    return 103, values


def storage_124(**overrides: RawValue) -> ModelSpec:
    values: dict[str, RawValue] = {
        "WChaMax": 500, "WChaMax_SF": 1,  # 5000 W
        "WChaGra": 100, "WDisChaGra": 100, "WChaDisChaGra_SF": 0,
        "StorCtl_Mod": 0,  # the device's own control
        "ChaState": 655, "ChaState_SF": -1,  # 65.5 %
        "ChaSt": 3, "OutWRte": 10000, "InWRte": 10000, "InOutWRte_SF": -2,  # ±100.00 %
    }  # fmt: skip
    values.update(overrides)
    return 124, values


def meter_203(**overrides: RawValue) -> ModelSpec:
    values: dict[str, RawValue] = {
        "A": 65, "AphA": 22, "AphB": 21, "AphC": 22, "A_SF": -1,
        "PhV": 2300, "PhVphA": 2301, "PhVphB": 2299, "PhVphC": 2300, "V_SF": -1,
        "Hz": 5000, "Hz_SF": -2, "W": -1500, "W_SF": 0,
        "TotWhExp": 5000, "TotWhImp": 7123, "TotWh_SF": 1, "Evt": 0,
    }  # fmt: skip
    values.update(overrides)
    return 203, values


def hybrid_map() -> SunSpecMap:
    return SunSpecMap([common("Hybrid 5", "H-0001"), inverter_103(), storage_124()])


def inverter_map() -> SunSpecMap:
    return SunSpecMap([common("PV 10", "P-0002"), inverter_103()])


def meter_map() -> SunSpecMap:
    return SunSpecMap([common("Meter 3", "M-0003"), meter_203()])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server(anyio_backend: str) -> AsyncIterator[SunSpecServer]:
    del anyio_backend
    async with SunSpecServer(
        {HYBRID: hybrid_map(), INVERTER: inverter_map(), METER: meter_map()}
    ) as running:
        yield running


def driver_for(
    server: SunSpecServer, unit: int = HYBRID, base_address: int | None = None
) -> SunSpecDriver:
    return SunSpecDriver(
        "127.0.0.1", server.port, unit_id=unit, base_address=base_address, timeout_s=TIMEOUT_S
    )


# -- the contract -------------------------------------------------------------------------------


class SunSpecHarness(DriverHarness):
    def __init__(self, server: SunSpecServer) -> None:
        self.server = server

    def make_driver(self) -> SunSpecDriver:
        return driver_for(self.server)

    def valid_write(self) -> tuple[str, float, float]:
        return "charge_power_w", 2500, -1500

    async def take_offline(self) -> None:
        await self.server.stop()

    async def bring_back(self) -> None:
        await self.server.start()


class TestSunSpecContract(DriverContract):
    @pytest.fixture
    def harness(self, server: SunSpecServer) -> DriverHarness:
        return SunSpecHarness(server)


# -- pure: decoding, scale factors, layouts --------------------------------------------------------


def f32(value: float) -> list[int]:
    data = struct.pack(">f", value)
    return [int.from_bytes(data[:2]), int.from_bytes(data[2:])]


@pytest.mark.parametrize(
    ("type_name", "registers", "expected"),
    [
        ("int16", [0xF448], -3000),
        ("int16", [0x7FFF], 32767),
        ("int16", [0x8000], None),  # not implemented
        ("uint16", [0xFFFE], 65534),
        ("uint16", [0xFFFF], None),
        ("enum16", [0xFFFF], None),
        ("bitfield16", [0xFFFF], None),
        ("count", [0xFFFF], None),
        ("sunssf", [0xFFFE], -2),
        ("sunssf", [0x8000], None),
        ("acc32", [0x0001, 0xE240], 123456),
        ("acc32", [0, 0], None),  # an accumulator at 0 is "not accumulated"
        ("int32", [0xFFFF, 0xFFFE], -2),
        ("int32", [0x8000, 0], None),
        ("uint32", [0xFFFF, 0xFFFF], None),
        ("acc64", [0, 0, 0, 7], 7),
        ("float32", f32(230.5), 230.5),
        ("float32", [0x7FC0, 0], None),  # NaN
        ("string", [0x4143, 0x4D45, 0, 0], "ACME"),
        ("string", [0, 0, 0, 0], None),
        ("pad", [0], None),
    ],
)
def test_decode_gives_raw_values_and_none_for_unimplemented(
    type_name: str, registers: list[int], expected: object
) -> None:
    assert maps.decode(type_name, registers) == expected


def test_decode_refuses_the_wrong_number_of_registers() -> None:
    with pytest.raises(maps.MapError):
        maps.decode("int32", [1])


@pytest.mark.parametrize(
    ("raw", "sf", "expected"),
    [
        (2305, -1, 230.5),
        (1234, -2, 12.34),
        (-3000, -2, -30),
        (7, -3, 0.007),
        (5, 3, 5000),
        (42, 0, 42),
        (1.5, 1, 15.0),  # float models carry no scale factor, but a constant one still applies
        (None, -1, None),  # the point is not implemented
        (100, None, None),  # its scale factor is not implemented
        (100, 11, None),  # the standard allows -10…10
        (100, -11, None),
    ],
)
def test_scale_applies_positive_and_negative_factors(
    raw: int | float | None, sf: int | None, expected: float | None
) -> None:
    assert maps.scale(raw, sf) == expected


def test_scale_is_exact_for_negative_factors_and_integral_for_positive_ones() -> None:
    assert maps.scale(2305, -1) == float(Fraction(2305, 10))  # not 230.50000000000003
    assert isinstance(maps.scale(5, 3), int)


@pytest.mark.parametrize("model_id", [1, 101, 103, 113, 124, 203, 213, 713, 802])
def test_layouts_agree_with_pysunspec2s_own_model_objects(model_id: int) -> None:
    layout = maps.model_layout(model_id)
    reference = sunspec2.device.Model(model_id=model_id)
    assert layout is not None
    assert {n: (p.offset, p.size) for n, p in layout.points.items()} == {
        n: (p.offset, p.len) for n, p in reference.points.items()
    }
    assert layout.length == reference.len


def test_an_unknown_model_has_no_layout() -> None:
    assert maps.model_layout(64999) is None


def block(unit_map: SunSpecMap, model_id: int) -> maps.ModelBlock:
    address = unit_map.model_address(model_id)
    start = address - unit_map.base_address
    length = unit_map.registers[start + 1]
    header = maps.ModelHeader(model_id, address, length)
    return maps.ModelBlock(header, tuple(unit_map.registers[start : start + length + 2]))


def test_a_block_scales_points_by_their_scale_factor_point() -> None:
    unit_map = SunSpecMap([common("X", "1"), inverter_103(W=-123, W_SF=2, TmpCab=None)])
    inverter = block(unit_map, 103)
    assert inverter.value("W") == -12300
    assert inverter.value("PhVphA") == 230.5
    assert inverter.value("A") == 12.34
    assert inverter.value("WH") == 1234560
    assert inverter.value("TmpCab") is None  # not implemented
    assert inverter.value("TmpSnk") is None
    unit_map.set(103, "W_SF", None)
    assert block(unit_map, 103).value("W") is None  # a value without its scale factor is absent


def test_a_block_that_no_longer_matches_its_header_is_refused() -> None:
    unit_map = inverter_map()
    good = block(unit_map, 103)
    with pytest.raises(maps.MapError):
        maps.ModelBlock(good.header, (101, *good.registers[1:]))
    with pytest.raises(maps.MapError):
        maps.ModelBlock(good.header, good.registers[:-1])


# -- pure: storage control -------------------------------------------------------------------------


def test_a_charge_power_becomes_a_zero_width_window_in_percent_of_wchamax() -> None:
    control = maps.StorageControl(w_cha_max=Fraction(5000), rate_sf=-2)
    assert control.limit_w == 5000
    raw = control.encode(1234)  # 24.68 % of 5000 W, in hundredths of a percent
    assert raw == {"OutWRte": -2468, "InWRte": 2468, "StorCtl_Mod": 3}
    assert control.decode(raw["StorCtl_Mod"], raw["InWRte"], raw["OutWRte"]) == 1234
    discharge = control.encode(-5000)
    assert discharge["InWRte"] == -10000
    assert control.decode(3, discharge["InWRte"], discharge["OutWRte"]) == -5000


@pytest.mark.parametrize(
    ("mode", "in_rate", "out_rate"),
    [(0, 10000, 10000), (1, 5000, -5000), (2, 5000, -5000), (3, 5000, -4000), (3, None, 0)],
)
def test_no_set_point_is_reported_while_the_device_controls_itself(
    mode: int, in_rate: int | None, out_rate: int
) -> None:
    control = maps.StorageControl(w_cha_max=Fraction(5000), rate_sf=-2)
    assert control.decode(mode, in_rate, out_rate) is None


def test_the_charge_power_range_is_limited_by_what_int16_rates_can_hold() -> None:
    fine = maps.StorageControl(w_cha_max=Fraction(10000), rate_sf=-3)
    assert fine.limit_w == 32767 * 10000 / 100_000  # 32.767 % is the largest int16 at 0.001 %
    assert fine.encode(fine.limit_w)["InWRte"] == 32767
    with pytest.raises(ValueError, match="outside"):
        fine.encode(fine.limit_w + 1)
    coarse = maps.StorageControl(w_cha_max=Fraction(5000), rate_sf=0)
    assert coarse.encode(1234)["InWRte"] == 25  # whole percent: the nearest step
    assert coarse.decode(3, 25, -25) == 1250


def test_storage_control_needs_the_rates_and_a_positive_wchamax() -> None:
    assert maps.storage_control(block(SunSpecMap([storage_124()]), 124)) is not None
    for broken in ({"InWRte": None}, {"InOutWRte_SF": None}, {"WChaMax": 0}, {"StorCtl_Mod": None}):
        assert maps.storage_control(block(SunSpecMap([storage_124(**broken)]), 124)) is None


def test_write_requests_join_adjacent_registers_and_encode_signed_values() -> None:
    header = maps.ModelHeader(124, 40100, 24)
    layout = maps.model_layout(124)
    assert layout is not None
    out_rte = 40100 + layout.points["OutWRte"].offset
    assert layout.points["InWRte"].offset == layout.points["OutWRte"].offset + 1
    requests = maps.write_requests(header, {"OutWRte": -2468, "InWRte": 2468, "StorCtl_Mod": 3})
    assert requests == [
        (out_rte, [(-2468) & 0xFFFF, 2468]),
        (40100 + layout.points["StorCtl_Mod"].offset, [3]),
    ]
    with pytest.raises(maps.MapError):
        maps.write_requests(header, {"ChaState": 1})  # read-only
    with pytest.raises(maps.MapError):
        maps.write_requests(header, {"InWRte": 40000})  # does not fit an int16


# -- pure: what a map makes of a device ------------------------------------------------------------


def headers(*models: tuple[int, int]) -> list[maps.ModelHeader]:
    out, address = [], 40002
    for model_id, length in models:
        out.append(maps.ModelHeader(model_id, address, length))
        address += length + 2
    return out


def test_models_decide_the_device_type() -> None:
    inverter = maps.profile(headers((1, 66), (103, 50)))
    assert inverter.device_type is DeviceType.GENERATOR
    assert [p.name for p in inverter.points(None)] == [
        "power_w", "energy_wh", "voltage_v", "current_a", "temperature_c",
    ]  # fmt: skip
    hybrid = maps.profile(headers((1, 66), (103, 50), (124, 24), (203, 105)))
    assert hybrid.device_type is DeviceType.STORAGE
    assert hybrid.telemetry_model is not None and hybrid.telemetry_model.model_id == 103
    control = maps.StorageControl(w_cha_max=Fraction(5000), rate_sf=-2)
    charge = next(p for p in hybrid.points(control) if p.name == "charge_power_w")
    assert (charge.writable, charge.minimum, charge.maximum) == (True, -5000, 5000)
    meter = maps.profile(headers((1, 66), (203, 105)))
    assert meter.device_type is DeviceType.MONITOR
    assert "energy_export_wh" in [p.name for p in meter.points(None)]
    battery = maps.profile(headers((1, 66), (713, 7)))
    assert battery.device_type is DeviceType.STORAGE
    assert [p.name for p in battery.points(None)] == ["soc_pct"]


def test_a_map_without_a_known_device_model_or_with_a_short_model_is_refused() -> None:
    with pytest.raises(maps.MapError):
        maps.profile(headers((1, 66), (64001, 10)))
    with pytest.raises(maps.MapError):
        maps.profile(headers((1, 66), (103, 10)))  # too short to hold model 103's points


def test_a_model_running_past_the_register_space_is_refused() -> None:
    with pytest.raises(maps.MapError):
        maps.next_model_address(maps.ModelHeader(103, 65000, 600))


# -- the driver against a server -------------------------------------------------------------------


@pytest.mark.anyio
async def test_scanning_finds_the_models_and_the_identity(server: SunSpecServer) -> None:
    async with driver_for(server) as driver:
        description = await driver.describe()
    assert description.device_type is DeviceType.STORAGE
    assert (description.manufacturer, description.model, description.serial) == (
        "ACME Energy",
        "Hybrid 5",
        "H-0001",
    )
    charge = description.point("charge_power_w")
    assert (charge.writable, charge.minimum, charge.maximum) == (True, -5000, 5000)
    assert description.point("soc_pct").maximum == 100
    assert [p.name for p in description.control_points()] == ["charge_power_w"]


@pytest.mark.anyio
async def test_a_generator_reads_scaled_values_with_generation_negative(
    server: SunSpecServer,
) -> None:
    async with driver_for(server, INVERTER) as driver:
        assert (await driver.describe()).device_type is DeviceType.GENERATOR
        assert await driver.read() == {
            "power_w": -4200,
            "energy_wh": 1234560,
            "voltage_v": 230.5,
            "current_a": 12.34,
            "temperature_c": 41.5,
            "online": True,
        }
        unit_map = server.map(INVERTER)
        unit_map.set(103, "W", 12345)
        unit_map.set(103, "W_SF", -1)
        unit_map.set(103, "TmpCab", None)
        unit_map.set(103, "TmpSnk", -52)  # the next temperature that is implemented
        values = await driver.read()
    assert values["power_w"] == -1234.5
    assert values["temperature_c"] == -5.2


@pytest.mark.anyio
async def test_a_meter_is_a_monitor_with_import_and_export_counters(server: SunSpecServer) -> None:
    async with driver_for(server, METER) as driver:
        description = await driver.describe()
        values = await driver.read()
    assert description.device_type is DeviceType.MONITOR
    assert description.control_points() == []
    assert values == {
        "power_w": -1500,  # SunSpec meters: positive = import; this site exports
        "energy_wh": 71230,
        "energy_export_wh": 50000,
        "voltage_v": 230.1,
        "current_a": 6.5,
        "online": True,
    }


@pytest.mark.anyio
async def test_a_float_meter_needs_no_scale_factors(anyio_backend: str) -> None:
    del anyio_backend
    values: dict[str, RawValue] = {"W": 812.25, "TotWhImp": 1000.5, "TotWhExp": 0.0, "A": 3.5}
    unit_map = SunSpecMap([common("Meter F", "F-1"), (213, values)])  # PhV etc.: NaN
    async with SunSpecServer({1: unit_map}) as server, driver_for(server) as driver:
        assert await driver.read() == {
            "power_w": 812.25,
            "energy_wh": 1000.5,
            "energy_export_wh": 0.0,  # a float counter at 0 is a reading, not "not implemented"
            "current_a": 3.5,
            "online": True,
        }


@pytest.mark.anyio
async def test_unimplemented_points_are_left_out(server: SunSpecServer) -> None:
    unit_map = server.map(METER)
    unit_map.set(203, "TotWhExp", 0)  # an accumulator at 0: not accumulated
    unit_map.set(203, "V_SF", None)
    async with driver_for(server, METER) as driver:
        values = await driver.read()
    assert set(values) == {"power_w", "energy_wh", "current_a", "online"}


@pytest.mark.anyio
async def test_a_charge_power_lands_in_the_control_registers_as_scaled_integers(
    server: SunSpecServer,
) -> None:
    unit_map = server.map(HYBRID)
    async with driver_for(server) as driver:
        await driver.write("charge_power_w", 1234)
        # InWRte/OutWRte in hundredths of a percent of WChaMax (500 * 10^1 W)
        assert server.writes == [
            Write(HYBRID, unit_map.address(124, "OutWRte"), ((-2468) & 0xFFFF, 2468)),
            Write(HYBRID, unit_map.address(124, "StorCtl_Mod"), (3,)),
        ]
        assert unit_map.get(124, "InWRte") == 2468
        assert unit_map.get(124, "OutWRte") == -2468
        assert unit_map.get(124, "StorCtl_Mod") == 3
        assert (await driver.read())["charge_power_w"] == 1234
        await driver.write("charge_power_w", -5000)
        assert unit_map.get(124, "InWRte") == -10000
        assert (await driver.read())["charge_power_w"] == -5000


@pytest.mark.anyio
async def test_revert_gives_the_device_its_own_control_back(server: SunSpecServer) -> None:
    unit_map = server.map(HYBRID)
    async with driver_for(server) as driver:
        await driver.write("charge_power_w", 2500)
        await driver.write("charge_power_w", -1000)
        await driver.revert()
        values = await driver.read()
    assert "charge_power_w" not in values
    assert (unit_map.get(124, "StorCtl_Mod"), unit_map.get(124, "InWRte")) == (0, 10000)
    assert unit_map.get(124, "OutWRte") == 10000
    assert server.writes[-2:] == [
        Write(HYBRID, unit_map.address(124, "StorCtl_Mod"), (0,)),
        Write(HYBRID, unit_map.address(124, "OutWRte"), (10000, 10000)),
    ]


@pytest.mark.anyio
async def test_an_out_of_range_charge_power_is_refused_before_anything_is_written(
    server: SunSpecServer,
) -> None:
    async with driver_for(server) as driver:
        for value in (5001, -5000.5, math.inf, "full", True):
            with pytest.raises(PointError):
                await driver.write("charge_power_w", value)
        with pytest.raises(PointError):
            await driver.write("soc_pct", 50)
    assert server.writes == []


@pytest.mark.anyio
async def test_a_smaller_wchamax_on_the_device_is_enforced_at_write_time(
    server: SunSpecServer,
) -> None:
    async with driver_for(server) as driver:
        await driver.describe()  # the description still says ±5000 W
        server.map(HYBRID).set(124, "WChaMax", 300)  # 3000 W
        with pytest.raises(PointError):
            await driver.write("charge_power_w", 4000)
    assert server.writes == []


@pytest.mark.anyio
@pytest.mark.parametrize("base", [0, 50000])
async def test_the_map_is_found_at_the_other_base_addresses(base: int) -> None:
    unit_map = SunSpecMap([common("PV", "B"), inverter_103()], base_address=base)
    async with SunSpecServer({1: unit_map}) as server:
        async with driver_for(server) as driver:
            assert (await driver.read())["power_w"] == -4200
        async with driver_for(server, base_address=base) as driver:
            assert (await driver.describe()).device_type is DeviceType.GENERATOR
        async with driver_for(server, base_address=40000) as driver:
            with pytest.raises(DeviceProtocolError, match="SunS"):
                await driver.describe()


@pytest.mark.anyio
async def test_modbus_exceptions_are_protocol_errors_and_do_not_break_the_driver(
    server: SunSpecServer,
) -> None:
    async with driver_for(server) as driver:
        assert (await driver.read())["online"] is True
        server.fail_reads = ExcCodes.DEVICE_FAILURE
        with pytest.raises(DeviceProtocolError, match="DEVICE_FAILURE"):
            await driver.read()
        server.fail_reads = None
        server.fail_writes = ExcCodes.ILLEGAL_VALUE
        with pytest.raises(DeviceProtocolError, match="ILLEGAL_VALUE"):
            await driver.write("charge_power_w", 1000)
        server.fail_writes = None
        await driver.write("charge_power_w", 1000)
        assert (await driver.read())["charge_power_w"] == 1000
    server.fail_reads = ExcCodes.ILLEGAL_FUNCTION
    async with driver_for(server) as driver:  # the scan itself is refused
        with pytest.raises(DeviceProtocolError):
            await driver.describe()
        server.fail_reads = None
        assert (await driver.describe()).device_type is DeviceType.STORAGE


@pytest.mark.anyio
async def test_a_gateway_without_its_device_reports_it_offline(server: SunSpecServer) -> None:
    async with driver_for(server) as driver:
        await driver.describe()
        server.fail_reads = ExcCodes.GATEWAY_NO_RESPONSE  # e.g. an inverter asleep at night
        assert await driver.read() == {"online": False}
        with pytest.raises(DeviceOffline):
            await driver.write("charge_power_w", 100)
        server.fail_reads = None
        assert (await driver.read())["online"] is True


@pytest.mark.anyio
async def test_a_map_without_the_marker_is_refused(server: SunSpecServer) -> None:
    server.map(INVERTER).set_registers(40000, [0x4E6F, 0x7065])  # "Nope"
    async with driver_for(server, INVERTER) as driver:
        with pytest.raises(DeviceProtocolError, match="no SunSpec map"):
            await driver.describe()
        with pytest.raises(DeviceProtocolError):
            await driver.read()


@pytest.mark.anyio
async def test_a_model_chain_running_off_the_register_space_is_refused(
    server: SunSpecServer,
) -> None:
    unit_map = server.map(INVERTER)
    unit_map.set_registers(unit_map.model_address(103) + 1, [0xFFF0])  # L far too long
    async with driver_for(server, INVERTER) as driver:
        with pytest.raises(DeviceProtocolError, match="past register 65535"):
            await driver.describe()


@pytest.mark.anyio
async def test_a_map_that_changes_under_the_driver_is_scanned_again(
    server: SunSpecServer,
) -> None:
    unit_map = server.map(INVERTER)
    address = unit_map.model_address(103)
    async with driver_for(server, INVERTER) as driver:
        assert (await driver.read())["power_w"] == -4200
        unit_map.set_registers(address, [101])  # a different model in its place
        with pytest.raises(DeviceProtocolError, match="is now 101"):
            await driver.read()
        unit_map.set_registers(address, [103])
        assert (await driver.read())["power_w"] == -4200


@pytest.mark.anyio
async def test_values_outside_their_range_are_logged_and_left_out(
    server: SunSpecServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.map(HYBRID).set(124, "ChaState", 2500)  # 250 %
    server.map(HYBRID).set(103, "Tmp_SF", 12)  # a scale factor outside -10…10
    with caplog.at_level(logging.WARNING, logger="ioe.drivers.sunspec"):
        async with driver_for(server) as driver:
            values = await driver.read()
    assert "soc_pct" not in values
    assert "temperature_c" not in values
    assert values["power_w"] == -4200
    assert any("soc_pct" in r.getMessage() for r in caplog.records)


class Peer:
    """A TCP peer on loopback that answers every request with ``reply(request)``, or hangs up
    when that is None."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.requests = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while self.requests < 100 and (request := await reader.read(260)):
            self.requests += 1
            answer = self.reply(request)
            if answer is None:
                writer.close()
                return
            writer.write(answer)
            await writer.drain()


def mbap_answer(pdu: bytes) -> Callable[[bytes], bytes]:
    """Frame ``pdu`` as the answer to each request (same transaction and unit id)."""

    def reply(request: bytes) -> bytes:
        return request[:4] + (len(pdu) + 1).to_bytes(2, "big") + request[6:7] + pdu

    return reply


def answer_as_unit(unit: int, pdu: bytes) -> Callable[[bytes], bytes]:
    def reply(request: bytes) -> bytes:
        return request[:4] + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu

    return reply


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (lambda request: b"\xde\xad\xbe\xef" * 8, "protocol id"),  # not Modbus at all
        (mbap_answer(b"\x63\x01"), "function code 0x63"),  # no such function
        (mbap_answer(b"\x03\x09\x53\x75"), "byte count 09"),  # counts more than it holds
        (mbap_answer(b"\x10\x9c"), "write answer of 1 bytes"),
        (answer_as_unit(7, b"\x03\x04\x53\x75\x6e\x53"), "from unit 7"),
    ],
    ids=["junk", "unknown-function", "bad-byte-count", "short-write-answer", "wrong-unit"],
)
async def test_a_peer_that_sends_garbage_is_a_protocol_error_not_a_crash(
    anyio_backend: str, reply: Callable[[bytes], bytes], error: str
) -> None:
    del anyio_backend
    async with Peer(reply) as peer:
        driver = SunSpecDriver("127.0.0.1", peer.port, timeout_s=TIMEOUT_S)
        async with driver:
            for _ in range(2):  # and the driver still answers the next call
                with pytest.raises(DeviceProtocolError, match=error):
                    await driver.read()
        assert peer.requests >= 2


@pytest.mark.anyio
async def test_a_peer_that_never_answers_is_offline(anyio_backend: str) -> None:
    del anyio_backend
    async with Peer(lambda request: b"") as peer:
        async with SunSpecDriver("127.0.0.1", peer.port, timeout_s=0.2) as driver:
            assert await driver.read() == {"online": False}
            with pytest.raises(DeviceOffline):
                await driver.describe()
        assert peer.requests >= 2


def test_frames_are_screened_before_pymodbus_decodes_them() -> None:
    read_answer = bytes.fromhex("0001 0000 0007 01 03 04 5375 6e53")
    assert frame_problem(read_answer, 1) is None
    assert frame_problem(read_answer[:10], 1) is None  # incomplete: wait for the rest
    assert frame_problem(read_answer + read_answer, 1) is None
    assert frame_problem(read_answer, 0) is None  # unit 0 takes an answer from anyone
    assert frame_problem(bytes.fromhex("0001 0000 0003 01 83 02"), 1) is None
    assert frame_problem(bytes.fromhex("0001 0000 0006 01 10 9c40 0002"), 1) is None
    assert "from unit 1, not 3" in str(frame_problem(read_answer, 3))
    assert "protocol id" in str(frame_problem(bytes.fromhex("0001 0001 0003 01 83 02"), 1))
    assert "length" in str(frame_problem(bytes.fromhex("0001 0000 ffff 01 03 02"), 1))
    assert "0x04" in str(frame_problem(bytes.fromhex("0001 0000 0003 01 04 00"), 1))
    assert "byte count" in str(frame_problem(bytes.fromhex("0001 0000 0005 01 03 03 0102"), 1))
    assert "exception" in str(frame_problem(bytes.fromhex("0001 0000 0004 01 83 02 00"), 1))
    bad_second = read_answer + bytes.fromhex("0002 0000 0003 01 2b 00")
    assert "0x2b" in str(frame_problem(bad_second, 1))


@pytest.mark.anyio
async def test_a_connection_dropped_during_a_request_is_noticed_at_once(anyio_backend: str) -> None:
    del anyio_backend
    async with Peer(lambda request: None) as peer:
        loop = asyncio.get_running_loop()
        async with SunSpecDriver("127.0.0.1", peer.port, timeout_s=TIMEOUT_S) as driver:
            started = loop.time()
            assert await driver.read() == {"online": False}
            assert loop.time() - started < TIMEOUT_S / 2  # not by waiting out the timeout
        assert peer.requests >= 2


@pytest.mark.anyio
async def test_a_slow_device_is_offline_until_it_answers_in_time(server: SunSpecServer) -> None:
    async with SunSpecDriver("127.0.0.1", server.port, timeout_s=0.5) as driver:
        assert (await driver.read())["online"] is True
        server.delay_s = 1.0
        assert await driver.read() == {"online": False}
        server.delay_s = 0
        assert (await driver.read())["power_w"] == -4200


@pytest.mark.anyio
async def test_a_cancelled_read_leaves_the_driver_usable(server: SunSpecServer) -> None:
    async with driver_for(server) as driver:
        expected = await driver.read()
        server.delay_s = 0.3
        with anyio.move_on_after(0.05) as scope:
            await driver.read()
        assert scope.cancelled_caught
        server.delay_s = 0
        assert await driver.read() == expected
        await asyncio.sleep(0.4)  # the late answer to the cancelled read comes and goes
        assert await driver.read() == expected


@pytest.mark.anyio
async def test_a_short_answer_is_a_protocol_error(anyio_backend: str) -> None:
    del anyio_backend
    # a well-framed read answer with one register, whatever was asked
    async with Peer(mbap_answer(b"\x03\x02\x53\x75")) as peer:
        driver = SunSpecDriver("127.0.0.1", peer.port, timeout_s=TIMEOUT_S)
        async with driver:
            with pytest.raises(DeviceProtocolError, match="got 1 registers"):
                await driver.describe()


@pytest.mark.anyio
async def test_a_driver_started_while_the_device_is_down_finds_it_later(
    anyio_backend: str,
) -> None:
    del anyio_backend
    server = SunSpecServer({1: hybrid_map()})
    await server.start()
    await server.stop()  # the port is known and nothing listens on it
    async with SunSpecDriver("127.0.0.1", server.port, timeout_s=TIMEOUT_S) as driver:
        assert await driver.read() == {"online": False}
        with pytest.raises(DeviceOffline):
            await driver.describe()
        with pytest.raises(DeviceOffline):
            await driver.write("charge_power_w", 100)
        async with server:
            values = await driver.read()
            assert values["online"] is True
            assert values["soc_pct"] == 65.5


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unit id"):
        SunSpecDriver("127.0.0.1", 502, unit_id=300)
    with pytest.raises(ValueError, match="base address"):
        SunSpecDriver("127.0.0.1", 502, base_address=70000)
