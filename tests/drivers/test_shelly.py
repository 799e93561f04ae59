"""The Shelly Gen2 drivers: pure RPC parsing, then HTTP RPC and MQTT RPC against an emulator."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

import aiomqtt
import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.drivers.emulators import ShellyPlugEmulator
from ioe.drivers.model import DeviceOffline, DeviceProtocolError, PointValue
from ioe.drivers.shelly import (
    SHELLY_PLUG,
    ShellyHttpDriver,
    ShellyMqttDriver,
    ShellyRpcError,
    http_result,
    merge,
    notify_values,
    parse_frame,
    parse_online,
    rpc_request,
    switch_set_result,
    switch_values,
)
from ioe.testing.driver_contract import DriverContract, DriverHarness, read_until
from ioe.testing.mosquitto import MosquittoBroker

# Switch.GetStatus of a Plus Plug S (firmware 1.x), as documented.
GET_STATUS = (
    b'{"id":0,"source":"HTTP_in","output":true,"apower":8.9,"voltage":237.5,"current":0.068,'
    b'"aenergy":{"total":6.532,"by_minute":[45.199,47.141,88.397],"minute_ts":1654511700},'
    b'"temperature":{"tC":23.5,"tF":74.4}}'
)
NOTIFY_OUTPUT = (
    b'{"src":"shellyplusplugs-e86beae9a1b0","dst":"shellyplusplugs-e86beae9a1b0/events",'
    b'"method":"NotifyStatus","params":{"ts":1631186545.04,'
    b'"switch:0":{"id":0,"output":false,"source":"button"}}}'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- pure parsing ------------------------------------------------------------------------------


def test_get_status_gives_canonical_values() -> None:
    assert switch_values(json.loads(GET_STATUS)) == {
        "switch": True,
        "power_w": 8.9,
        "voltage_v": 237.5,
        "current_a": 0.068,
        "energy_wh": 6.532,  # aenergy.total is already Wh
        "temperature_c": 23.5,
    }


def test_notify_status_overlays_only_what_changed() -> None:
    known: dict[str, PointValue] = {"switch": True, "power_w": 8.9, "temperature_c": 23.5}
    merge(known, notify_values(parse_frame(NOTIFY_OUTPUT), 0))
    assert known == {"switch": False, "power_w": 8.9, "temperature_c": 23.5}
    power = b'{"method":"NotifyStatus","params":{"ts":1,"switch:0":{"id":0,"apower":0.0}}}'
    merge(known, notify_values(parse_frame(power), 0))
    assert known["power_w"] == 0.0
    gone = b'{"method":"NotifyStatus","params":{"ts":2,"switch:0":{"id":0,"temperature":null}}}'
    merge(known, notify_values(parse_frame(gone), 0))
    assert "temperature_c" not in known  # a key reported as null is no longer there


def test_notifications_for_other_components_give_nothing() -> None:
    other_switch = parse_frame(NOTIFY_OUTPUT.replace(b"switch:0", b"switch:1"))
    assert notify_values(other_switch, 0) == {}
    cloud = b'{"method":"NotifyStatus","params":{"ts":1,"cloud":{"connected":false}}}'
    assert notify_values(parse_frame(cloud), 0) == {}
    event = b'{"method":"NotifyEvent","params":{"ts":1,"events":[{"component":"input:0"}]}}'
    assert notify_values(parse_frame(event), 0) == {}
    full = b'{"method":"NotifyFullStatus","params":{"ts":1,"switch:0":' + GET_STATUS + b"}}"
    assert notify_values(parse_frame(full), 0)["energy_wh"] == 6.532


def test_rpc_frames() -> None:
    request = json.loads(rpc_request(7, "ioe-1", "Switch.Set", {"id": 0, "on": True}))
    assert request == {
        "id": 7,
        "src": "ioe-1",
        "method": "Switch.Set",
        "params": {"id": 0, "on": True},
    }
    answer = parse_frame(
        b'{"id":7,"src":"shellyplusplugs-x","dst":"ioe-1","result":{"was_on":false}}'
    )
    assert answer.id == 7
    assert switch_set_result(answer.unwrap("Switch.Set")) is False
    failed = parse_frame(
        b'{"id":8,"src":"s","dst":"ioe-1","error":{"code":-105,"message":"Bad id=7"}}'
    )
    with pytest.raises(ShellyRpcError) as raised:
        failed.unwrap("Switch.GetStatus")
    assert raised.value.code == -105
    assert parse_online(b"true") is True
    assert parse_online(b"false") is False


def test_http_answers() -> None:
    assert http_result("Switch.Set", 200, b'{"was_on":true}') == {"was_on": True}
    with pytest.raises(ShellyRpcError, match="-103"):
        http_result("Switch.Set", 500, b'{"code":-103,"message":"Missing required argument"}')
    with pytest.raises(DeviceProtocolError, match="HTTP 401"):
        http_result("Switch.Set", 401, b"<html>unauthorized</html>")


@pytest.mark.parametrize(
    "status",
    [
        {"output": "on"},
        {"output": 1},
        {"apower": "8.9"},
        {"apower": True},
        {"voltage": -1},
        {"aenergy": 6.5},
        {"aenergy": {"total": -3}},
        {"temperature": {"tC": "hot"}},
        {"current": float("nan")},
    ],
)
def test_wrongly_typed_status_values_are_protocol_errors(status: dict[str, object]) -> None:
    with pytest.raises(DeviceProtocolError):
        switch_values(status)


@pytest.mark.parametrize(
    "payload",
    [b"", b"garbage", b"\xff", b"[]", b'{"src":"x"}', b'{"method":5}', b'{"id":1,"result":[1]}'],
)
def test_malformed_frames_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(DeviceProtocolError):
        parse_frame(payload)


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (parse_online, b"yes"),
        (parse_online, b"True"),
        (lambda p: http_result("Switch.GetStatus", 200, p), b"not json"),
        (lambda p: http_result("Switch.GetStatus", 200, p), b"[1]"),
        (lambda p: switch_set_result(json.loads(p)), b'{"was_on":"no"}'),
    ],
)
def test_other_malformed_answers_are_protocol_errors(
    parse: Callable[[bytes], object], payload: bytes
) -> None:
    with pytest.raises(DeviceProtocolError):
        parse(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
STATUS_KEYS = st.sampled_from(["output", "apower", "voltage", "current", "aenergy", "temperature"])
SWITCH_STATUS = st.dictionaries(
    STATUS_KEYS, JSON | st.fixed_dictionaries({}, optional={"total": JSON, "tC": JSON})
)
LOOKS_LIKE_SHELLY = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "src": JSON,
        "method": st.sampled_from(["NotifyStatus", "NotifyFullStatus"]) | JSON,
        "params": st.fixed_dictionaries({}, optional={"switch:0": SWITCH_STATUS | JSON}) | JSON,
        "result": JSON,
        "error": JSON,
    },
)
PAYLOADS = (
    st.binary(max_size=200)
    | st.just(b"{" * 50_000)
    | (JSON | LOOKS_LIKE_SHELLY).map(lambda value: json.dumps(value).encode())
)


@given(PAYLOADS)
def test_any_frame_gives_valid_values_or_a_protocol_error(payload: bytes) -> None:
    values: dict[str, PointValue] = {}
    try:
        frame = parse_frame(payload)
        merge(values, notify_values(frame, 0))
        merge(values, switch_values(frame.unwrap("Switch.GetStatus")))
    except DeviceProtocolError:
        pass
    for name, value in values.items():
        SHELLY_PLUG.point(name).check(value)


@given(st.integers(100, 599), PAYLOADS)
def test_any_http_answer_is_a_result_or_a_protocol_error(status: int, body: bytes) -> None:
    try:
        result = http_result("Switch.GetStatus", status, body)
    except DeviceProtocolError:
        return
    assert status == 200
    assert isinstance(result, dict)


# --- HTTP RPC against the emulator -------------------------------------------------------------


@pytest.fixture
async def shelly() -> AsyncIterator[ShellyPlugEmulator]:
    device = ShellyPlugEmulator()
    try:
        yield device
    finally:
        await device.stop()


class ShellyHttpHarness(DriverHarness):
    def __init__(self, device: ShellyPlugEmulator) -> None:
        self.device = device

    def make_driver(self) -> ShellyHttpDriver:
        return ShellyHttpDriver(self.device.base_url, timeout_s=1.0)

    def valid_write(self) -> tuple[str, bool, bool]:
        return ("switch", True, False)

    async def take_offline(self) -> None:
        await self.device.stop_http()

    async def bring_back(self) -> None:
        await self.device.start_http()


class TestShellyHttpContract(DriverContract):
    @pytest.fixture
    async def harness(self, shelly: ShellyPlugEmulator) -> DriverHarness:
        await shelly.start_http()
        return ShellyHttpHarness(shelly)


@pytest.mark.anyio
async def test_http_uses_the_documented_rpc_calls(shelly: ShellyPlugEmulator) -> None:
    url = await shelly.start_http()
    async with ShellyHttpDriver(url) as driver:
        values = await driver.read()
        await driver.write("switch", True)
        assert shelly.output is True
        on = await driver.read()
    assert values == {
        "switch": False,
        "power_w": 0.0,
        "voltage_v": 230.4,
        "current_a": 0.0,
        "energy_wh": 1234.5,
        "temperature_c": 36.2,
        "online": True,
    }
    assert on["power_w"] == 60.0
    assert on["current_a"] == pytest.approx(60 / (230.4 * 0.95), abs=0.001)
    assert [(method, params) for _, method, params in shelly.requests] == [
        ("Switch.GetStatus", {"id": 0}),
        ("Switch.GetStatus", {"id": 0}),  # Driver.write reads once to remember the original
        ("Switch.Set", {"id": 0, "on": True}),
        ("Switch.GetStatus", {"id": 0}),
    ]


@pytest.mark.anyio
async def test_http_garbage_is_a_protocol_error_then_reads_recover(
    shelly: ShellyPlugEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ioe.drivers.shelly")
    url = await shelly.start_http()
    garbage = [b"<html>oops", b'{"id":0,"output":"maybe"}', b"[]", b"[" + b"0," * 40_000 + b"0]"]
    shelly.garbage_answers += garbage
    async with ShellyHttpDriver(url) as driver:
        for _ in garbage:
            with pytest.raises(DeviceProtocolError):
                await driver.read()
        assert (await driver.read())["online"] is True
    assert sum("bad status" in r.getMessage() for r in caplog.records) == len(garbage)
    assert "larger than" in caplog.records[-1].getMessage()


@pytest.mark.anyio
async def test_http_rpc_errors_are_reported_with_their_code(shelly: ShellyPlugEmulator) -> None:
    url = await shelly.start_http()
    async with ShellyHttpDriver(url, switch_id=3) as driver:
        with pytest.raises(ShellyRpcError) as raised:
            await driver.read()
    assert raised.value.code == -105


@pytest.mark.anyio
async def test_http_write_to_an_unreachable_device_raises_device_offline(
    shelly: ShellyPlugEmulator,
) -> None:
    url = await shelly.start_http()
    async with ShellyHttpDriver(url, timeout_s=1.0) as driver:
        await read_until(driver, lambda v: v.get("online") is True)
        await shelly.stop_http()
        with pytest.raises(DeviceOffline):
            await driver.write("switch", True)


# --- MQTT RPC against the emulator -------------------------------------------------------------


class ShellyMqttHarness(DriverHarness):
    def __init__(self, broker: MosquittoBroker, device: ShellyPlugEmulator) -> None:
        self.broker = broker
        self.device = device

    def make_driver(self) -> ShellyMqttDriver:
        return ShellyMqttDriver(self.broker.host, self.broker.port, self.device.device_id)

    def valid_write(self) -> tuple[str, bool, bool]:
        return ("switch", True, False)

    async def take_offline(self) -> None:
        await self.device.stop_mqtt()

    async def bring_back(self) -> None:
        await self.device.start_mqtt(self.broker.host, self.broker.port)


class TestShellyMqttContract(DriverContract):
    @pytest.fixture
    async def harness(
        self, mosquitto: MosquittoBroker, shelly: ShellyPlugEmulator
    ) -> DriverHarness:
        await shelly.start_mqtt(mosquitto.host, mosquitto.port)
        return ShellyMqttHarness(mosquitto, shelly)


@pytest.fixture
async def mqtt_shelly(mosquitto: MosquittoBroker, shelly: ShellyPlugEmulator) -> ShellyPlugEmulator:
    await shelly.start_mqtt(mosquitto.host, mosquitto.port)
    return shelly


@pytest.mark.anyio
async def test_mqtt_requests_are_rpc_frames_answered_on_the_client_topic(
    mosquitto: MosquittoBroker, mqtt_shelly: ShellyPlugEmulator
) -> None:
    device_id = mqtt_shelly.device_id
    async with (
        aiomqtt.Client(mosquitto.host, mosquitto.port) as spy,
        ShellyMqttDriver(mosquitto.host, mosquitto.port, device_id, client_id="ioe-test") as driver,
    ):
        await spy.subscribe(f"{device_id}/rpc")
        await spy.subscribe("ioe-test/rpc")
        await read_until(driver, lambda v: v.get("switch") is False)
        await driver.write("switch", True)
        frames = []
        with anyio.fail_after(5):
            async for message in spy.messages:
                frames.append((message.topic.value, json.loads(payload_bytes(message))))
                if message.topic.value == "ioe-test/rpc" and "was_on" in json.dumps(frames[-1][1]):
                    break
    request = next(f for t, f in frames if t == f"{device_id}/rpc" and f["method"] == "Switch.Set")
    assert request["src"] == "ioe-test"
    assert request["params"] == {"id": 0, "on": True}
    answer = frames[-1][1]
    assert answer == {
        "id": request["id"],
        "src": device_id,
        "dst": "ioe-test",
        "result": {"was_on": False},
    }
    assert mqtt_shelly.output is True


@pytest.mark.anyio
async def test_mqtt_notifications_update_reads(
    mosquitto: MosquittoBroker, mqtt_shelly: ShellyPlugEmulator
) -> None:
    async with ShellyMqttDriver(mosquitto.host, mosquitto.port, mqtt_shelly.device_id) as driver:
        await read_until(driver, lambda v: v.get("switch") is False)
        calls = len(mqtt_shelly.requests)
        await mqtt_shelly.press_button()  # the device reports it with NotifyStatus, unasked
        values = await read_until(driver, lambda v: v.get("power_w") == 60.0)
        assert values["switch"] is True
        assert len(mqtt_shelly.requests) == calls  # no polling was needed


@pytest.mark.anyio
async def test_mqtt_garbage_from_the_device_is_logged_and_ignored(
    mosquitto: MosquittoBroker, mqtt_shelly: ShellyPlugEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ioe.drivers.shelly")
    device_id = mqtt_shelly.device_id
    garbage = [
        (f"{device_id}/events/rpc", b"{not json"),
        (
            f"{device_id}/events/rpc",
            b'{"method":"NotifyStatus","params":{"switch:0":{"output":"x"}}}',
        ),
        (f"{device_id}/events/rpc", b'{"method":"NotifyStatus","params":{"switch:0":[]}}'),
        (f"{device_id}/online", b"perhaps"),
        ("ioe-test/rpc", b'{"id":999,"result":{}}'),  # an answer to nothing we asked
        ("ioe-test/rpc", b"\xff\xfe"),
    ]
    async with (
        ShellyMqttDriver(mosquitto.host, mosquitto.port, device_id, client_id="ioe-test") as driver,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as rogue,
    ):
        before = await read_until(driver, lambda v: v.get("switch") is False)
        for topic, payload in garbage:
            await rogue.publish(topic, payload)
        await mqtt_shelly.press_button()
        values = await read_until(driver, lambda v: v.get("switch") is True)
        assert values["online"] is True
        assert values["energy_wh"] >= before["energy_wh"]
        await driver.write("switch", False)  # RPC still works
        assert mqtt_shelly.output is False
        with anyio.move_on_after(5):  # the rogue's messages are not ordered with the device's
            while len(bad_message_warnings(caplog)) < len(garbage):
                await anyio.sleep(0.02)
    assert len(bad_message_warnings(caplog)) == len(garbage)


def bad_message_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "ignored a bad message" in r.getMessage()]


@pytest.mark.anyio
async def test_mqtt_rpc_without_an_answer_is_device_offline(mosquitto: MosquittoBroker) -> None:
    async with (
        aiomqtt.Client(mosquitto.host, mosquitto.port) as impostor,
        ShellyMqttDriver(
            mosquitto.host, mosquitto.port, "shellyplusplugs-silent", rpc_timeout_s=0.3
        ) as driver,
    ):
        # announced online but never answers: calls time out as unreachable
        await impostor.publish("shellyplusplugs-silent/online", b"true", retain=True)
        await read_until(driver, lambda v: v.get("online") is True)
        with pytest.raises(DeviceOffline, match="no answer"):
            await driver.call("Switch.GetStatus", id=0)


@pytest.mark.anyio
async def test_mqtt_driver_recovers_after_the_broker_restarts(
    mosquitto: MosquittoBroker, mqtt_shelly: ShellyPlugEmulator
) -> None:
    async with ShellyMqttDriver(mosquitto.host, mosquitto.port, mqtt_shelly.device_id) as driver:
        await read_until(driver, lambda v: v.get("switch") is False)
        await mosquitto.astop(graceful=True)
        assert (await read_until(driver, lambda v: v.get("online") is False))["online"] is False
        with pytest.raises(DeviceOffline):
            await driver.write("switch", True)
        await anyio.sleep(0.5)
        await mosquitto.astart()
        values = await read_until(driver, lambda v: v.get("online") is True)
        assert values["online"] is True
        await driver.write("switch", True)
        assert mqtt_shelly.output is True


def payload_bytes(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes)
    return message.payload
