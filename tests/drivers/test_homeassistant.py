"""Home Assistant MQTT discovery: the pure message builders, then the bridge on a real broker."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

import aiomqtt
import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe import __version__
from ioe.drivers.base import Driver
from ioe.drivers.emulators import TasmotaPlugEmulator
from ioe.drivers.homeassistant import (
    NUMBER_LIMIT,
    HaTopics,
    HomeAssistantBridge,
    component_for,
    discovery_messages,
    label,
    parse_command,
    removal_messages,
    state_payload,
)
from ioe.drivers.model import (
    POINTS,
    DeviceDescription,
    DeviceOffline,
    PointDef,
    PointError,
    PointValue,
    ValueKind,
)
from ioe.drivers.tasmota import TasmotaDriver
from ioe.testing.driver_contract import read_until
from ioe.testing.mosquitto import MosquittoBroker
from ioe.vocabulary import DeviceType

HEATER = DeviceDescription(
    device_type=DeviceType.CONSUMPTION,
    points=(
        POINTS["switch"],
        POINTS["power_w"],
        POINTS["energy_wh"],
        POINTS["setpoint_c"].with_range(16, 26),
        POINTS["mode"].with_choices("off", "heat", "auto"),
    ),
    driver="fake-heater",
    manufacturer="IoE tests",
    model="Heater 2000",
    serial="H-0001",
)
TOPICS = HaTopics("heater_1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeHeater(Driver):
    """An in-memory device: what it is told is what it reads back."""

    name = "fake-heater"

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, PointValue] = {
            "switch": False,
            "power_w": 0.0,
            "energy_wh": 10.0,
            "setpoint_c": 20,
            "mode": "off",
        }
        self.online = True
        self.writes: list[tuple[str, PointValue]] = []

    async def describe(self) -> DeviceDescription:
        return HEATER

    async def read(self) -> dict[str, PointValue]:
        return {**self.state, "online": True} if self.online else {"online": False}

    async def _write(self, point: str, value: PointValue) -> None:
        if not self.online:
            raise DeviceOffline("the heater is unplugged")
        self.writes.append((point, value))
        self.state[point] = value
        if point == "switch":
            self.state["power_w"] = 1500.0 if value else 0.0


# --- pure message builders ---------------------------------------------------------------------


def by_topic() -> dict[str, dict[str, object]]:
    return {m.topic: dict(m.config) for m in discovery_messages(HEATER, TOPICS, name="Heater")}


def test_each_point_becomes_one_entity_on_its_discovery_topic() -> None:
    assert sorted(by_topic()) == [
        "homeassistant/number/heater_1/setpoint_c/config",
        "homeassistant/select/heater_1/mode/config",
        "homeassistant/sensor/heater_1/energy_wh/config",
        "homeassistant/sensor/heater_1/power_w/config",
        "homeassistant/switch/heater_1/switch/config",
    ]  # online is availability, not an entity


def test_common_fields_of_every_config() -> None:
    configs = by_topic()
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    for config in configs.values():
        assert config["availability_topic"] == "ioe/heater_1/availability"
        assert config["payload_available"] == "online"
        assert config["payload_not_available"] == "offline"
        assert config["device"] == {
            "identifiers": ["ioe_heater_1"],
            "name": "Heater",
            "manufacturer": "IoE tests",
            "model": "Heater 2000",
            "serial_number": "H-0001",
        }
        assert str(config["state_topic"]).startswith("ioe/heater_1/")


def test_switch_config() -> None:
    assert by_topic()["homeassistant/switch/heater_1/switch/config"] | {"device": None} == {
        "name": "Switch",
        "unique_id": "ioe_heater_1_switch",
        "state_topic": "ioe/heater_1/switch/state",
        "command_topic": "ioe/heater_1/switch/set",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "switch",
        "availability_topic": "ioe/heater_1/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": None,
        "origin": {"name": "ioe", "sw_version": __version__},
    }


def test_sensor_number_and_select_configs() -> None:
    configs = by_topic()
    power = configs["homeassistant/sensor/heater_1/power_w/config"]
    assert (power["device_class"], power["unit_of_measurement"], power["state_class"]) == (
        "power",
        "W",
        "measurement",
    )
    assert "command_topic" not in power
    energy = configs["homeassistant/sensor/heater_1/energy_wh/config"]
    assert (energy["device_class"], energy["unit_of_measurement"], energy["state_class"]) == (
        "energy",
        "Wh",
        "total_increasing",
    )
    setpoint = configs["homeassistant/number/heater_1/setpoint_c/config"]
    assert (setpoint["min"], setpoint["max"], setpoint["step"]) == (16, 26, 0.5)
    assert (setpoint["device_class"], setpoint["unit_of_measurement"]) == ("temperature", "°C")
    assert setpoint["command_topic"] == "ioe/heater_1/setpoint_c/set"
    assert "state_class" not in setpoint
    mode = configs["homeassistant/select/heater_1/mode/config"]
    assert mode["options"] == ["off", "heat", "auto"]
    assert mode["command_topic"] == "ioe/heater_1/mode/set"


def test_less_common_points() -> None:
    fault = PointDef(name="fault", kind=ValueKind.BOOL)
    phase = PointDef(name="phase", kind=ValueKind.ENUM, choices=("idle", "bulk", "float"))
    battery = DeviceDescription(
        device_type=DeviceType.STORAGE,
        points=(POINTS["soc_pct"], POINTS["charge_power_w"], fault, phase),
        driver="battery-sim",
    )
    configs = {m.topic: m.config for m in discovery_messages(battery, TOPICS, name="B")}
    assert configs["homeassistant/binary_sensor/heater_1/fault/config"]["payload_on"] == "ON"
    assert configs["homeassistant/sensor/heater_1/phase/config"]["device_class"] == "enum"
    assert configs["homeassistant/sensor/heater_1/soc_pct/config"]["device_class"] == "battery"
    charge = configs["homeassistant/number/heater_1/charge_power_w/config"]
    assert (charge["min"], charge["max"]) == (-NUMBER_LIMIT, NUMBER_LIMIT)
    assert charge["device_class"] == "power"
    device = configs["homeassistant/sensor/heater_1/phase/config"]["device"]
    assert device == {
        "identifiers": ["ioe_heater_1"],
        "name": "B",
        "manufacturer": "IoE",
        "model": "battery-sim",
    }
    assert component_for(POINTS["online"]) is None
    assert label(PointDef(name="grid_import_wh", kind=ValueKind.NUMBER, unit="Wh")) == "Grid import"
    assert label(fault) == "Fault"


def test_removal_clears_every_config_topic() -> None:
    assert sorted(removal_messages(HEATER, TOPICS)) == sorted(by_topic())


@pytest.mark.parametrize("node_id", ["", "has space", "a/b", "x+", "é"])
def test_bad_node_ids_are_refused(node_id: str) -> None:
    with pytest.raises(ValueError):
        HaTopics(node_id)


def test_state_payloads() -> None:
    assert state_payload(POINTS["switch"], True) == "ON"
    assert state_payload(POINTS["switch"], False) == "OFF"
    assert state_payload(POINTS["power_w"], 1500.0) == "1500"
    assert state_payload(POINTS["power_w"], 12.5) == "12.5"
    assert state_payload(POINTS["mode"], "heat") == "heat"


def test_command_payloads() -> None:
    assert parse_command(POINTS["switch"], b"ON") is True
    assert parse_command(POINTS["switch"], b"OFF") is False
    assert parse_command(POINTS["setpoint_c"], b"21.5") == 21.5
    assert parse_command(POINTS["setpoint_c"], b"22") == 22
    assert parse_command(POINTS["mode"], b"heat") == "heat"
    for point, payload in [
        (POINTS["switch"], b"on please"),
        (POINTS["setpoint_c"], b"warm"),
        (POINTS["setpoint_c"], b"nan"),
        (POINTS["setpoint_c"], b"\xff"),
    ]:
        with pytest.raises(PointError):
            parse_command(point, payload)


@given(st.sampled_from(HEATER.control_points()), st.binary(max_size=40))
def test_any_command_payload_is_a_checked_value_or_a_point_error(
    point: PointDef, payload: bytes
) -> None:
    try:
        value = HEATER.check_write(point.name, parse_command(point, payload))
    except PointError:
        return
    assert state_payload(point, value)  # and it can be reported back


# --- the bridge on a real broker ---------------------------------------------------------------


@pytest.fixture
async def bridged(
    mosquitto: MosquittoBroker,
) -> AsyncIterator[tuple[FakeHeater, HomeAssistantBridge]]:
    heater = FakeHeater()
    async with HomeAssistantBridge(
        heater,
        mosquitto.host,
        mosquitto.port,
        node_id="heater_1",
        name="Heater",
        publish_interval_s=0.1,
    ) as bridge:
        yield heater, bridge


async def collect(
    client: aiomqtt.Client,
    done: Callable[[dict[str, aiomqtt.Message]], bool],
    deadline_s: float = 5.0,
) -> dict[str, aiomqtt.Message]:
    """The last message per topic, until ``done`` holds."""
    seen: dict[str, aiomqtt.Message] = {}
    with anyio.fail_after(deadline_s):
        async for message in client.messages:
            seen[message.topic.value] = message
            if done(seen):
                return seen
    return seen


def payload_of(messages: dict[str, aiomqtt.Message], topic: str) -> bytes | None:
    message = messages.get(topic)
    if message is None:
        return None
    assert isinstance(message.payload, bytes)
    return message.payload


@pytest.mark.anyio
async def test_a_subscriber_sees_the_retained_discovery_configs(
    mosquitto: MosquittoBroker, bridged: tuple[FakeHeater, HomeAssistantBridge]
) -> None:
    _, bridge = bridged
    expected = {m.topic: m.config for m in bridge.discovery()}
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant:
        await home_assistant.subscribe("ioe/heater_1/availability")
        await collect(home_assistant, bool)  # announced after the configs
        await home_assistant.unsubscribe("ioe/heater_1/availability")
        await home_assistant.subscribe("homeassistant/#")
        seen = await collect(home_assistant, lambda s: len(s) == len(expected))
    assert set(seen) == set(expected)
    for topic, message in seen.items():
        assert message.retain is True  # a late subscriber (HA restarting) gets them
        assert json.loads(payload_of(seen, topic) or b"") == expected[topic]


@pytest.mark.anyio
async def test_commands_switch_the_driver_and_states_follow(
    mosquitto: MosquittoBroker, bridged: tuple[FakeHeater, HomeAssistantBridge]
) -> None:
    heater, _ = bridged
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant:
        await home_assistant.subscribe("ioe/heater_1/#")
        first = await collect(home_assistant, lambda s: "ioe/heater_1/switch/state" in s)
        assert payload_of(first, "ioe/heater_1/switch/state") == b"OFF"
        await home_assistant.publish("ioe/heater_1/switch/set", b"ON")
        await home_assistant.publish("ioe/heater_1/setpoint_c/set", b"22.5")
        await home_assistant.publish("ioe/heater_1/mode/set", b"heat")
        states = await collect(
            home_assistant,
            lambda s: (
                payload_of(s, "ioe/heater_1/power_w/state") == b"1500"
                and payload_of(s, "ioe/heater_1/mode/state") == b"heat"
            ),
        )
    assert heater.writes == [("switch", True), ("setpoint_c", 22.5), ("mode", "heat")]
    assert payload_of(states, "ioe/heater_1/switch/state") == b"ON"
    assert payload_of(states, "ioe/heater_1/setpoint_c/state") == b"22.5"


@pytest.mark.anyio
async def test_invalid_commands_change_nothing_and_are_logged(
    mosquitto: MosquittoBroker,
    bridged: tuple[FakeHeater, HomeAssistantBridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ioe.drivers.homeassistant")
    heater, _ = bridged
    bad = [
        ("ioe/heater_1/setpoint_c/set", b"35"),  # above the heater's range: the driver refuses
        ("ioe/heater_1/setpoint_c/set", b"warm"),
        ("ioe/heater_1/mode/set", b"turbo"),
        ("ioe/heater_1/switch/set", b"YES"),
    ]
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant:
        await home_assistant.subscribe("ioe/heater_1/switch/state")
        await collect(home_assistant, bool)  # the bridge is up
        for topic, payload in bad:
            await home_assistant.publish(topic, payload)
        await home_assistant.publish("ioe/heater_1/switch/set", b"ON")  # a good one last
        await collect(home_assistant, lambda s: payload_of(s, "ioe/heater_1/switch/state") == b"ON")
    assert heater.writes == [("switch", True)]
    refused = [r for r in caplog.records if "refused command" in r.getMessage()]
    assert len(refused) == len(bad)


@pytest.mark.anyio
async def test_availability_follows_the_device_and_the_bridge(
    mosquitto: MosquittoBroker, bridged: tuple[FakeHeater, HomeAssistantBridge]
) -> None:
    heater, bridge = bridged
    availability = "ioe/heater_1/availability"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant:
        await home_assistant.subscribe(availability)
        assert payload_of(await collect(home_assistant, bool), availability) == b"online"
        heater.online = False
        seen = await collect(home_assistant, lambda s: payload_of(s, availability) == b"offline")
        assert payload_of(seen, availability) == b"offline"
        heater.online = True
        await collect(home_assistant, lambda s: payload_of(s, availability) == b"online")
        await bridge.close()
        seen = await collect(home_assistant, lambda s: payload_of(s, availability) == b"offline")
        assert payload_of(seen, availability) == b"offline"


@pytest.mark.anyio
async def test_configs_are_sent_again_when_home_assistant_restarts(
    mosquitto: MosquittoBroker, bridged: tuple[FakeHeater, HomeAssistantBridge]
) -> None:
    _, bridge = bridged
    count = len(bridge.discovery())
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant:
        await home_assistant.subscribe("homeassistant/+/heater_1/+/config")
        await collect(home_assistant, lambda s: len(s) == count)  # the retained ones
        await home_assistant.publish("homeassistant/status", b"online")  # HA's birth message
        live: list[aiomqtt.Message] = []
        with anyio.fail_after(5):
            async for message in home_assistant.messages:
                live.append(message)
                if len(live) == count:
                    break
    assert all(not m.retain for m in live)  # delivered live, i.e. published again
    assert {m.topic.value for m in live} == {m.topic for m in bridge.discovery()}


@pytest.mark.anyio
async def test_the_bridge_drives_a_tasmota_plug(mosquitto: MosquittoBroker) -> None:
    plug = TasmotaPlugEmulator(mosquitto.host, mosquitto.port, "plug_7", tele_period_s=0.2)
    await plug.start()
    try:
        async with (
            TasmotaDriver(mosquitto.host, mosquitto.port, "plug_7") as driver,
            HomeAssistantBridge(
                driver, mosquitto.host, mosquitto.port, node_id="plug_7", publish_interval_s=0.1
            ),
            aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant,
        ):
            await read_until(driver, lambda v: v.get("online") is True)
            await home_assistant.subscribe("ioe/plug_7/+/state")
            await home_assistant.publish("ioe/plug_7/switch/set", b"ON")
            states = await collect(
                home_assistant, lambda s: payload_of(s, "ioe/plug_7/power_w/state") == b"60"
            )
            assert plug.power_on is True
            assert payload_of(states, "ioe/plug_7/switch/state") == b"ON"
    finally:
        await plug.stop()
