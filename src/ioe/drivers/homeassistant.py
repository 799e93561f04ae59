"""Home Assistant MQTT discovery for IoE devices, and a bridge that keeps HA and a driver in step.

Each point of a :class:`~ioe.drivers.model.DeviceDescription` becomes one HA entity announced
(retained) on ``<discovery_prefix>/<component>/<node_id>/<point>/config``:

==========================  ================  =========================================
point                       component         notes
==========================  ================  =========================================
writable bool (``switch``)  ``switch``        ``ON`` / ``OFF`` on state and command topics
read-only bool              ``binary_sensor``
numeric telemetry           ``sensor``        device and state class from the unit;
                                              cumulative points are ``total_increasing``
writable number             ``number``        ``min`` / ``max`` from the point's range
writable enum (``mode``)    ``select``        ``options`` from the point's choices
read-only enum              ``sensor``        ``device_class: enum``
``online``                  (availability)    every entity's ``availability_topic``
==========================  ================  =========================================

States go to ``<base>/<node_id>/<point>/state`` and commands come in on
``<base>/<node_id>/<point>/set``. The message builders are pure; :class:`HomeAssistantBridge`
publishes them and turns commands into :meth:`Driver.write` calls, which check every value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import aiomqtt

from ioe import __version__
from ioe.drivers.base import Driver
from ioe.drivers.model import (
    DeviceDescription,
    DriverError,
    PointDef,
    PointError,
    PointValue,
    ValueKind,
)
from ioe.drivers.mqtt import MqttLink, stop_task

log = logging.getLogger(__name__)

PAYLOAD_ON = "ON"
PAYLOAD_OFF = "OFF"
PAYLOAD_AVAILABLE = "online"
PAYLOAD_NOT_AVAILABLE = "offline"
NUMBER_LIMIT = 1_000_000.0
"""``min``/``max`` for a writable number without a range (HA would otherwise assume 1–100)."""

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

_DEVICE_CLASS_BY_UNIT = {
    "W": "power",
    "Wh": "energy",
    "V": "voltage",
    "A": "current",
    "°C": "temperature",
    "%": "battery",
}
_LABELS = {
    "switch": "Switch",
    "power_w": "Power",
    "energy_wh": "Energy",
    "voltage_v": "Voltage",
    "current_a": "Current",
    "temperature_c": "Temperature",
    "setpoint_c": "Target temperature",
    "mode": "Mode",
    "soc_pct": "State of charge",
    "charge_power_w": "Charge power",
    "current_limit_a": "Current limit",
}
_STEP_BY_UNIT = {"°C": 0.5, "W": 1.0, "A": 1.0, "%": 1.0}


@dataclass(frozen=True, slots=True)
class HaTopics:
    """Where one device's entities live."""

    node_id: str
    base: str = "ioe"
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        if not _ID.match(self.node_id):
            raise ValueError(f"node_id {self.node_id!r}: use letters, digits, _ and - only")
        for topic in (self.base, self.discovery_prefix):
            if not topic or any(c in topic for c in "+#") or topic.endswith("/"):
                raise ValueError(f"bad topic prefix {topic!r}")

    @property
    def availability(self) -> str:
        return f"{self.base}/{self.node_id}/availability"

    @property
    def birth(self) -> str:
        """Where Home Assistant announces itself (``online`` after a restart)."""
        return f"{self.discovery_prefix}/status"

    def state(self, point: str) -> str:
        return f"{self.base}/{self.node_id}/{point}/state"

    def command(self, point: str) -> str:
        return f"{self.base}/{self.node_id}/{point}/set"

    def config(self, component: str, point: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{point}/config"


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    topic: str
    config: Mapping[str, object]

    def payload(self) -> bytes:
        return json.dumps(self.config, separators=(",", ":"), ensure_ascii=False).encode()


def component_for(definition: PointDef) -> str | None:
    """The HA component of a point (None for ``online``, which is availability)."""
    if definition.name == "online":
        return None
    if definition.kind is ValueKind.BOOL:
        return "switch" if definition.writable else "binary_sensor"
    if definition.kind is ValueKind.ENUM:
        return "select" if definition.writable else "sensor"
    return "number" if definition.writable else "sensor"


def label(definition: PointDef) -> str:
    if definition.name in _LABELS:
        return _LABELS[definition.name]
    stem = definition.name.rpartition("_")[0] if definition.unit else definition.name
    return (stem or definition.name).replace("_", " ").capitalize()


def discovery_messages(
    description: DeviceDescription, topics: HaTopics, *, name: str
) -> list[DiscoveryMessage]:
    """One retained config message per entity of the device."""
    device = {
        "identifiers": [f"ioe_{topics.node_id}"],
        "name": name,
        "manufacturer": description.manufacturer or "IoE",
        "model": description.model or description.driver,
    }
    if description.serial:
        device["serial_number"] = description.serial
    messages = []
    for definition in description.points:
        component = component_for(definition)
        if component is None:
            continue
        config: dict[str, object] = {
            "name": label(definition),
            "unique_id": f"ioe_{topics.node_id}_{definition.name}",
            "state_topic": topics.state(definition.name),
            "availability_topic": topics.availability,
            "payload_available": PAYLOAD_AVAILABLE,
            "payload_not_available": PAYLOAD_NOT_AVAILABLE,
            "device": device,
            "origin": {"name": "ioe", "sw_version": __version__},
        }
        if definition.writable:
            config["command_topic"] = topics.command(definition.name)
        if definition.kind is ValueKind.BOOL:
            config["payload_on"] = PAYLOAD_ON
            config["payload_off"] = PAYLOAD_OFF
            if component == "switch":
                config["device_class"] = "switch"
        elif definition.kind is ValueKind.ENUM:
            config["options"] = list(definition.choices)
            if component == "sensor":
                config["device_class"] = "enum"
        else:
            _numeric_fields(definition, config, writable=component == "number")
        messages.append(DiscoveryMessage(topics.config(component, definition.name), config))
    return messages


def _numeric_fields(definition: PointDef, config: dict[str, object], *, writable: bool) -> None:
    if definition.unit:
        config["unit_of_measurement"] = definition.unit
    device_class = _DEVICE_CLASS_BY_UNIT.get(definition.unit)
    if device_class == "battery" and definition.name != "soc_pct":
        device_class = None
    if device_class is not None:
        config["device_class"] = device_class
    if writable:
        config["min"] = definition.minimum if definition.minimum is not None else -NUMBER_LIMIT
        config["max"] = definition.maximum if definition.maximum is not None else NUMBER_LIMIT
        config["step"] = _STEP_BY_UNIT.get(definition.unit, 0.1)
    else:
        config["state_class"] = "total_increasing" if definition.cumulative else "measurement"


def removal_messages(description: DeviceDescription, topics: HaTopics) -> list[str]:
    """Config topics to clear (publish an empty retained payload) to remove the device from HA."""
    return [
        topics.config(component, definition.name)
        for definition in description.points
        if (component := component_for(definition)) is not None
    ]


def state_payload(definition: PointDef, value: PointValue) -> str:
    """A value as HA reads it on a state topic."""
    if definition.kind is ValueKind.BOOL:
        return PAYLOAD_ON if value else PAYLOAD_OFF
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if definition.kind is ValueKind.NUMBER else str(value)
    return str(value)


def parse_command(definition: PointDef, payload: bytes) -> PointValue:
    """The value of an HA command payload for a point; :class:`PointError` if it is not one."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PointError(f"{definition.name}: command is not text") from None
    if definition.kind is ValueKind.BOOL:
        if text == PAYLOAD_ON:
            return True
        if text == PAYLOAD_OFF:
            return False
        raise PointError(
            f"{definition.name} takes {PAYLOAD_ON} or {PAYLOAD_OFF}, not {text[:40]!r}"
        )
    if definition.kind is ValueKind.NUMBER:
        try:
            number = float(text)
        except ValueError:
            raise PointError(f"{definition.name} takes a number, not {text[:40]!r}") from None
        if not math.isfinite(number):
            raise PointError(f"{definition.name} takes a finite number, not {text[:40]!r}")
        return int(number) if number.is_integer() else number
    return text


class HomeAssistantBridge:
    """Announces a driver's device to Home Assistant and keeps states and commands flowing.

    The bridge does not start or close the driver. It publishes the discovery configs (retained)
    on every connection and whenever HA announces itself on ``<discovery_prefix>/status``, the
    states every ``publish_interval_s`` (and right after a command), and ``online``/``offline``
    on the availability topic (``offline`` is also its MQTT last will). A command that is not a
    valid value for its point is logged and changes nothing.
    """

    def __init__(
        self,
        driver: Driver,
        host: str,
        port: int,
        *,
        node_id: str,
        name: str | None = None,
        discovery_prefix: str = "homeassistant",
        base_topic: str = "ioe",
        publish_interval_s: float = 10.0,
        client_id: str | None = None,
    ) -> None:
        self.driver = driver
        self.topics = HaTopics(node_id, base_topic, discovery_prefix)
        self.name = name or node_id
        self._interval_s = publish_interval_s
        self._description: DeviceDescription | None = None
        self._commands: dict[str, PointDef] = {}
        self._published: dict[str, str] = {}
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._link: MqttLink | None = None
        self._host = host
        self._port = port
        self._client_id = client_id

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        description = await self.driver.describe()
        self._description = description
        self._commands = {self.topics.command(p.name): p for p in description.points if p.writable}
        self._link = MqttLink(
            self._host,
            self._port,
            name=f"homeassistant:{self.topics.node_id}",
            client_id=self._client_id,
            subscriptions=[*self._commands, self.topics.birth],
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=aiomqtt.Will(self.topics.availability, PAYLOAD_NOT_AVAILABLE, 1, retain=True),
            logger=log,
        )
        await self._link.start()
        self._task = asyncio.create_task(
            self._publish_loop(), name=f"homeassistant-states:{self.topics.node_id}"
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        if self._link is not None:
            with contextlib.suppress(DriverError):  # not connected: the broker has the will
                await self._link.publish(
                    self.topics.availability, PAYLOAD_NOT_AVAILABLE, retain=True, qos=1
                )
            await self._link.close()

    def discovery(self) -> list[DiscoveryMessage]:
        if self._description is None:
            raise RuntimeError("the bridge is not started")
        return discovery_messages(self._description, self.topics, name=self.name)

    async def publish_states(self, *, force: bool = False) -> None:
        """Read the driver and publish what changed (everything if ``force``)."""
        link, description = self._link, self._description
        if link is None or description is None or not link.connected:
            return
        try:
            values = await self.driver.read()
        except DriverError as error:
            log.warning("homeassistant %s: read failed: %s", self.topics.node_id, error)
            return
        outgoing: dict[str, str] = {
            self.topics.availability: (
                PAYLOAD_AVAILABLE if values.get("online") else PAYLOAD_NOT_AVAILABLE
            )
        }
        for definition in description.points:
            value = values.get(definition.name)
            if component_for(definition) is not None and value is not None:
                outgoing[self.topics.state(definition.name)] = state_payload(definition, value)
        for topic, payload in outgoing.items():
            if force or self._published.get(topic) != payload:
                await link.publish(topic, payload, retain=True)
                self._published[topic] = payload

    async def _on_connect(self) -> None:
        assert self._link is not None
        for message in self.discovery():
            await self._link.publish(message.topic, message.payload(), retain=True, qos=1)
        self._published.clear()
        self._poke.set()

    async def _publish_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._poke.wait()
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                await self.publish_states()
            except DriverError as error:
                log.info("homeassistant %s: %s", self.topics.node_id, error)

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.birth:
            if payload.strip() == b"online" and self._link is not None:
                await self._on_connect()
            return
        definition = self._commands.get(topic)
        if definition is None or retained:  # a retained command is stale: never replay it
            return
        try:
            await self.driver.write(definition.name, parse_command(definition, payload))
        except PointError as error:
            log.warning("homeassistant %s: refused command: %s", self.topics.node_id, error)
        except DriverError as error:
            log.warning("homeassistant %s: command failed: %s", self.topics.node_id, error)
        self._poke.set()
