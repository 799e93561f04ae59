"""The Tasmota driver: pure payload parsing, then the real protocol through mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

import aiomqtt
import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.drivers.emulators import TasmotaPlugEmulator
from ioe.drivers.model import DeviceOffline, DeviceProtocolError
from ioe.drivers.mqtt import MAX_PAYLOAD_BYTES, MqttClient
from ioe.drivers.tasmota import (
    TASMOTA_PLUG,
    TasmotaDriver,
    TasmotaTopics,
    TasmotaView,
    parse_lwt,
    parse_power,
    parse_result,
    parse_sensor,
    parse_state,
)
from ioe.testing.driver_contract import DriverContract, DriverHarness, read_until
from ioe.testing.mosquitto import MosquittoBroker

# A tele/<topic>/SENSOR message as a Tasmota 13 plug (Sonoff POW R2 class) sends it.
SENSOR = (
    b'{"Time":"2024-03-01T10:00:00","ENERGY":{"TotalStartTime":"2023-11-04T09:12:44",'
    b'"Total":12.345,"Yesterday":0.456,"Today":0.123,"Period":1,"Power":45,'
    b'"ApparentPower":52,"ReactivePower":26,"Factor":0.87,"Voltage":231,"Current":0.226}}'
)
STATE = (
    b'{"Time":"2024-03-01T10:00:00","Uptime":"0T01:02:03","UptimeSec":3723,"Heap":26,'
    b'"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"ON",'
    b'"Wifi":{"AP":1,"SSId":"home","BSSId":"02:00:00:00:00:01","Channel":6,"Mode":"11n",'
    b'"RSSI":78,"Signal":-61,"LinkCount":1,"Downtime":"0T00:00:04"}}'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- pure parsing ------------------------------------------------------------------------------


def test_sensor_energy_object_gives_canonical_values() -> None:
    assert parse_sensor(SENSOR) == {
        "power_w": 45.0,
        "energy_wh": 12345.0,  # Total is kWh on the wire
        "voltage_v": 231.0,
        "current_a": 0.226,
    }


def test_status10_answer_is_parsed_like_telemetry() -> None:
    status = b'{"StatusSNS":{"Time":"2024-03-01T10:00:00","ENERGY":{"Total":0.5,"Power":12}}}'
    assert parse_sensor(status) == {"energy_wh": 500.0, "power_w": 12.0}


def test_sensor_message_without_energy_gives_no_values() -> None:
    assert parse_sensor(b'{"Time":"2024-03-01T10:00:00","DS18B20":{"Temperature":21.4}}') == {}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1,2,3]",
        b'{"ENERGY":"45 W"}',
        b'{"ENERGY":{"Power":"45"}}',
        b'{"ENERGY":{"Power":true}}',
        b'{"ENERGY":{"Power":NaN}}',
        b'{"ENERGY":{"Power":Infinity}}',
        b'{"ENERGY":{"Total":-1.5}}',
        b'{"ENERGY":{"Voltage":-230}}',
        b'{"ENERGY":{"Power":[10,20]}}',
    ],
)
def test_malformed_sensor_payloads_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(DeviceProtocolError):
        parse_sensor(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
ENERGY_KEYS = st.sampled_from(["Total", "Power", "Voltage", "Current", "Today", "Factor"])
LOOKS_LIKE_TASMOTA = st.fixed_dictionaries(
    {"ENERGY": st.dictionaries(ENERGY_KEYS, JSON, max_size=6) | JSON},
    optional={"POWER": JSON, "POWER1": JSON, "StatusSNS": JSON},
)
PAYLOADS = (
    st.binary(max_size=200)
    | st.sampled_from([b"ON", b"OFF", b"Online", b"Offline", b"[" * 50_000])
    | (JSON | LOOKS_LIKE_TASMOTA).map(lambda value: json.dumps(value).encode())
)


@given(PAYLOADS)
def test_any_payload_gives_valid_values_or_a_protocol_error(payload: bytes) -> None:
    view = TasmotaView(TasmotaTopics("plug1"))
    for topic in ["tele/plug1/SENSOR", "tele/plug1/STATE", "tele/plug1/LWT"] + [
        f"stat/plug1/{name}" for name in ("RESULT", "POWER", "STATUS10")
    ]:
        with contextlib.suppress(DeviceProtocolError):
            view.handle(topic, payload, retained=False)
    for name, value in view.read(connected=True).items():
        TASMOTA_PLUG.point(name).check(value)  # whatever got through fits the description


def test_huge_numbers_are_protocol_errors() -> None:
    with pytest.raises(DeviceProtocolError):
        parse_sensor(b'{"ENERGY":{"Power":' + b"9" * 400 + b"}}")


def test_relay_reports() -> None:
    assert parse_result(b'{"POWER":"ON"}') == {"switch": True}
    assert parse_result(b'{"POWER1":"OFF"}') == {"switch": False}
    assert parse_result(b'{"Command":"Unknown"}') == {}
    assert parse_result(b'{"TelePeriod":300}') == {}
    assert parse_power(b"ON") is True
    assert parse_power(b"OFF") is False
    assert parse_state(STATE) == {"switch": True}
    assert parse_lwt(b"Online") is True
    assert parse_lwt(b"Offline") is False


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (parse_result, b'{"POWER":"MAYBE"}'),
        (parse_result, b'{"POWER":1}'),
        (parse_result, b"ON"),
        (parse_power, b"BLINK"),
        (parse_power, b""),
        (parse_state, b'{"POWER":null}'),
        (parse_lwt, b"online"),
        (parse_lwt, b"\x00"),
    ],
)
def test_malformed_relay_and_lwt_payloads_are_protocol_errors(
    parse: Callable[[bytes], object], payload: bytes
) -> None:
    with pytest.raises(DeviceProtocolError):
        parse(payload)


def test_topics_follow_the_full_topic() -> None:
    default = TasmotaTopics("plug1")
    assert default.command("POWER") == "cmnd/plug1/POWER"
    assert default.subscriptions() == ["stat/plug1/+", "tele/plug1/+"]
    assert default.split("tele/plug1/SENSOR") == ("tele", "SENSOR")
    assert default.split("tele/plug2/SENSOR") is None
    assert default.split("tele/plug1/a/b") is None
    swapped = TasmotaTopics("plug1", "%topic%/%prefix%/")
    assert swapped.command("POWER") == "plug1/cmnd/POWER"
    assert swapped.split("plug1/stat/RESULT") == ("stat", "RESULT")
    house = TasmotaTopics("plug1", "house/%prefix%/%topic%")
    assert house.base("tele") == "house/tele/plug1/"


@pytest.mark.parametrize(
    ("topic", "full_topic"),
    [
        ("a/b", "%prefix%/%topic%/"),
        ("", "%prefix%/%topic%/"),
        ("p", "%topic%/"),
        ("p", "%hostname%/%prefix%/%topic%/"),
    ],
)
def test_unsupported_topics_are_refused(topic: str, full_topic: str) -> None:
    with pytest.raises(ValueError):
        TasmotaTopics(topic, full_topic)


def test_view_tracks_reports_and_presence() -> None:
    view = TasmotaView(TasmotaTopics("plug1"))
    assert view.read(connected=True) == {"online": False}  # nothing heard yet
    assert view.handle("tele/plug1/LWT", b"Online", True) == {"online"}
    assert view.handle("tele/plug1/SENSOR", SENSOR, False) == {
        "power_w",
        "energy_wh",
        "voltage_v",
        "current_a",
    }
    assert view.handle("stat/plug1/RESULT", b'{"POWER":"OFF"}', False) == {"switch"}
    assert view.read(connected=True) == {
        "power_w": 45.0,
        "energy_wh": 12345.0,
        "voltage_v": 231.0,
        "current_a": 0.226,
        "switch": False,
        "online": True,
    }
    assert view.read(connected=False) == {"online": False}
    with pytest.raises(DeviceProtocolError):
        view.handle("stat/plug1/POWER", b"garbage", False)
    assert view.values["switch"] is False  # a bad message changes nothing
    assert view.handle("tele/plug1/LWT", b"Offline", True) == {"online"}
    assert view.read(connected=True) == {"online": False}
    assert view.handle("stat/plug1/POWER", b"ON", False) == {"switch", "online"}  # live: back
    assert view.handle("stat/plug1/POWER", b"ON", True) == {"switch"}
    assert view.handle("stat/other/POWER", b"OFF", False) == set()
    assert view.handle("stat/plug1/UNKNOWN", b"{}", False) == set()
    view.forget_presence()
    assert view.device_online is None


# --- against a real broker ---------------------------------------------------------------------


@pytest.fixture
async def plug(mosquitto: MosquittoBroker) -> AsyncIterator[TasmotaPlugEmulator]:
    device = TasmotaPlugEmulator(mosquitto.host, mosquitto.port, tele_period_s=0.5)
    await device.start()
    try:
        yield device
    finally:
        await device.stop()


class TasmotaHarness(DriverHarness):
    def __init__(self, broker: MosquittoBroker, plug: TasmotaPlugEmulator) -> None:
        self.broker = broker
        self.plug = plug

    def make_driver(self) -> TasmotaDriver:
        return TasmotaDriver(self.broker.host, self.broker.port, self.plug.topic)

    def valid_write(self) -> tuple[str, bool, bool]:
        return ("switch", True, False)

    async def take_offline(self) -> None:
        await self.plug.stop()

    async def bring_back(self) -> None:
        await self.plug.start()


class TestTasmotaContract(DriverContract):
    @pytest.fixture
    def harness(self, mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator) -> DriverHarness:
        return TasmotaHarness(mosquitto, plug)


@contextlib.asynccontextmanager
async def watcher(broker: MosquittoBroker, topic: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic)
        yield client


async def next_message(client: aiomqtt.Client, deadline_s: float = 5.0) -> aiomqtt.Message:
    with anyio.fail_after(deadline_s):
        return await anext(client.messages)


def online(values: dict[str, object]) -> bool:
    return values.get("online") is True


@pytest.mark.anyio
async def test_writes_are_the_tasmota_power_commands(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator
) -> None:
    async with (
        TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver,
        watcher(mosquitto, f"cmnd/{plug.topic}/POWER") as commands,
    ):
        await read_until(driver, online)
        await driver.write("switch", True)
        message = await next_message(commands)
        while message.payload == b"":  # the driver's own state query on connection
            message = await next_message(commands)
        assert (message.topic.value, message.payload) == (f"cmnd/{plug.topic}/POWER", b"ON")
        assert plug.power_on is True  # write returns once the plug confirmed
        await driver.write("switch", False)
        assert (await next_message(commands)).payload == b"OFF"
        assert plug.power_on is False
    assert ("POWER", "ON") in plug.commands


@pytest.mark.anyio
async def test_reads_follow_the_energy_telemetry(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator
) -> None:
    async with TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver:
        await read_until(driver, online)
        await driver.write("switch", True)
        values = await read_until(driver, lambda v: v.get("power_w") == 60.0)
        assert values["power_w"] == 60.0
        assert values["voltage_v"] == 231.0
        assert values["current_a"] == pytest.approx(60 / (231 * 0.92), abs=0.001)
        assert values["energy_wh"] == pytest.approx(plug.meter.total_wh, abs=1.0)


@pytest.mark.anyio
async def test_a_button_press_on_the_plug_is_seen(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator
) -> None:
    async with TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver:
        await read_until(driver, lambda v: v.get("switch") is False)
        await plug.press_button()
        values = await read_until(driver, lambda v: v.get("switch") is True)
        assert values["switch"] is True


@pytest.mark.anyio
async def test_garbage_from_the_device_is_logged_and_ignored(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ioe.drivers.tasmota")
    garbage = [
        ("tele", "SENSOR", b'{"ENERGY":{"Power":"lots"}}'),
        ("tele", "SENSOR", b"\x00\xff not json"),
        ("stat", "RESULT", b'{"POWER":"SIDEWAYS"}'),
        ("stat", "POWER", b"MAYBE"),
        ("tele", "STATE", b"[]"),
        ("tele", "LWT", b"Sleeping"),
    ]
    async with (
        TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as rogue,
    ):
        before = await read_until(driver, lambda v: online(v) and "power_w" in v)
        for prefix, name, payload in garbage:
            await rogue.publish(f"{prefix}/{plug.topic}/{name}", payload)
        await rogue.publish(f"stat/{plug.topic}/POWER", b"ON")  # a good one after the bad
        values = await read_until(driver, lambda v: v.get("switch") is True)
        assert values["online"] is True
        assert values["power_w"] == before["power_w"]
    warnings = [r for r in caplog.records if "ignored a bad message" in r.getMessage()]
    assert len(warnings) == len(garbage)


@pytest.mark.anyio
async def test_oversized_payloads_are_dropped_unread(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ioe.drivers.tasmota")
    huge = b'{"POWER":"ON","pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    async with (
        TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as rogue,
    ):
        await read_until(driver, lambda v: v.get("switch") is False)
        await rogue.publish(f"stat/{plug.topic}/RESULT", huge)
        await rogue.publish(f"stat/{plug.topic}/RESULT", b'{"Command":"Unknown"}')
        with anyio.fail_after(5):
            while not any("dropped" in r.getMessage() for r in caplog.records):
                await anyio.sleep(0.02)
        assert (await driver.read())["switch"] is False


@pytest.mark.anyio
async def test_writing_to_an_offline_plug_raises_device_offline(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator
) -> None:
    async with TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver:
        await read_until(driver, online)
        await plug.stop()
        await read_until(driver, lambda v: v.get("online") is False)
        with pytest.raises(DeviceOffline):
            await driver.write("switch", True)


@pytest.mark.anyio
async def test_the_driver_recovers_after_the_broker_restarts(
    mosquitto: MosquittoBroker, plug: TasmotaPlugEmulator
) -> None:
    async with TasmotaDriver(mosquitto.host, mosquitto.port, plug.topic) as driver:
        await read_until(driver, online)
        await mosquitto.astop()
        assert (await read_until(driver, lambda v: v.get("online") is False))["online"] is False
        with pytest.raises(DeviceOffline):
            await driver.write("switch", True)
        await anyio.sleep(0.5)  # a few failed reconnection attempts
        await mosquitto.astart()  # empty: no retained LWT until the plug reconnects
        assert online(await read_until(driver, online))
        await driver.write("switch", True)
        assert plug.power_on is True


@pytest.mark.anyio
async def test_a_custom_full_topic(mosquitto: MosquittoBroker) -> None:
    device = TasmotaPlugEmulator(
        mosquitto.host, mosquitto.port, "kitchen", full_topic="%topic%/%prefix%/", power_on=True
    )
    await device.start()
    try:
        async with TasmotaDriver(
            mosquitto.host, mosquitto.port, "kitchen", prefix_style="%topic%/%prefix%/"
        ) as driver:
            values = await read_until(driver, lambda v: "switch" in v and "power_w" in v)
            assert values["switch"] is True
            assert values["power_w"] == 60.0
            await driver.write("switch", False)
            assert device.power_on is False
    finally:
        await device.stop()


@pytest.mark.anyio
async def test_a_connection_cancelled_while_connecting_leaves_no_socket_behind(
    mosquitto: MosquittoBroker,
) -> None:
    for _ in range(3):
        client = MqttClient(mosquitto.host, mosquitto.port)
        entering = asyncio.ensure_future(client.__aenter__())
        await asyncio.sleep(0)  # it is now connecting in a worker thread
        entering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await entering
        # plain aiomqtt would leave the socket open here, to be closed by a finalizer later
        assert client._client.socket() is None
