"""Tasmota smart plugs over MQTT (through :class:`ioe.drivers.mqtt.MqttLink`).

Tasmota speaks on three topic prefixes (``cmnd`` in, ``stat`` and ``tele`` out) arranged by the
device's FullTopic (default ``%prefix%/%topic%/``). What this driver uses:

- ``cmnd/<topic>/POWER`` ``ON``/``OFF`` switches the relay; an empty payload asks for its state;
  ``cmnd/<topic>/STATUS`` ``10`` asks for the sensors.
- ``stat/<topic>/RESULT`` ``{"POWER":"ON"}`` and ``stat/<topic>/POWER`` ``ON`` report the relay.
- ``tele/<topic>/SENSOR`` (every TelePeriod) and ``stat/<topic>/STATUS10`` carry the ``ENERGY``
  object (``Total`` kWh, ``Power`` W, ``Voltage`` V, ``Current`` A, …); ``tele/<topic>/STATE``
  carries ``POWER`` too.
- ``tele/<topic>/LWT`` ``Online``/``Offline``, retained, is the device's last will.

Parsing is pure (:func:`parse_sensor`, :func:`parse_result`, …, and :class:`TasmotaView`, which
turns messages into values); :class:`TasmotaDriver` only moves bytes between them and the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from ioe.drivers.base import Driver
from ioe.drivers.model import (
    POINTS,
    DeviceDescription,
    DeviceOffline,
    DeviceProtocolError,
    PointError,
    PointValue,
)
from ioe.drivers.mqtt import MqttLink
from ioe.vocabulary import DeviceType

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 5.0


# --- pure Tasmota protocol ---------------------------------------------------------------------


def _json_object(payload: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise DeviceProtocolError(f"{what} is not JSON: {payload[:80]!r}") from None
    if not isinstance(value, dict):
        raise DeviceProtocolError(f"{what} is not a JSON object: {payload[:80]!r}")
    return value


def _on_off(value: object, what: str) -> bool:
    if isinstance(value, str):
        text = value.strip().upper()
        if text == "ON":
            return True
        if text == "OFF":
            return False
    raise DeviceProtocolError(f"{what} is not ON or OFF: {reprlib.repr(value)}")


def _measurement(energy: Mapping[str, object], key: str, point: str, scale: float = 1.0) -> float:
    raw = energy[key]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DeviceProtocolError(f"ENERGY.{key} is not a number: {str(raw)[:40]}")
    try:
        value = float(raw) * scale
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise DeviceProtocolError(f"ENERGY.{key} is not finite: {str(raw)[:40]}")
    value = round(value, 6)
    try:
        POINTS[point].check(value)
    except PointError as error:
        raise DeviceProtocolError(f"ENERGY.{key}: {error}") from None
    return value


_ENERGY_FIELDS = (
    ("Power", "power_w", 1.0),
    ("Total", "energy_wh", 1000.0),  # kWh on the wire
    ("Voltage", "voltage_v", 1.0),
    ("Current", "current_a", 1.0),
)


def parse_sensor(payload: bytes) -> dict[str, PointValue]:
    """Values from ``tele/…/SENSOR`` or ``stat/…/STATUS10`` (``{"StatusSNS": {…}}``).

    A payload without an ``ENERGY`` object (another sensor) gives no values; a malformed one is a
    :class:`DeviceProtocolError`. Multi-channel arrays (``"Power":[1,2]``) are not supported.
    """
    message = _json_object(payload, "SENSOR")
    status = message.get("StatusSNS")
    if isinstance(status, dict):
        message = status
    energy = message.get("ENERGY")
    if energy is None:
        return {}
    if not isinstance(energy, dict):
        raise DeviceProtocolError(f"ENERGY is not an object: {reprlib.repr(energy)}")
    return {
        point: _measurement(energy, key, point, scale)
        for key, point, scale in _ENERGY_FIELDS
        if key in energy
    }


def _relay(message: Mapping[str, object], what: str) -> dict[str, PointValue]:
    for key in ("POWER", "POWER1"):
        if key in message:
            return {"switch": _on_off(message[key], f"{what}.{key}")}
    return {}


def parse_result(payload: bytes) -> dict[str, PointValue]:
    """``stat/…/RESULT``: the relay from ``{"POWER":"ON"}``; other command results give nothing."""
    return _relay(_json_object(payload, "RESULT"), "RESULT")


def parse_state(payload: bytes) -> dict[str, PointValue]:
    """``tele/…/STATE``: the relay from its ``POWER`` field."""
    return _relay(_json_object(payload, "STATE"), "STATE")


def parse_power(payload: bytes) -> bool:
    """``stat/…/POWER``: ``ON`` or ``OFF``."""
    return _on_off(payload.decode("utf-8", "replace"), "POWER")


def parse_lwt(payload: bytes) -> bool:
    """``tele/…/LWT``: ``Online`` or ``Offline``."""
    text = payload.decode("utf-8", "replace").strip()
    if text == "Online":
        return True
    if text == "Offline":
        return False
    raise DeviceProtocolError(f"LWT is not Online or Offline: {payload[:80]!r}")


@dataclass(frozen=True, slots=True)
class TasmotaTopics:
    """The topics of one device for a FullTopic such as ``%prefix%/%topic%/``."""

    topic: str
    full_topic: str = "%prefix%/%topic%/"

    def __post_init__(self) -> None:
        if not self.topic or any(c in self.topic for c in "/+#"):
            raise ValueError(f"bad Tasmota topic {self.topic!r}")
        stripped = self.full_topic.replace("%prefix%", "").replace("%topic%", "")
        if "%prefix%" not in self.full_topic or "%" in stripped or any(c in stripped for c in "+#"):
            raise ValueError(
                f"FullTopic {self.full_topic!r}: only %prefix% and %topic% are supported"
            )

    def base(self, prefix: str) -> str:
        full = self.full_topic.replace("%prefix%", prefix).replace("%topic%", self.topic)
        return full if full.endswith("/") else full + "/"

    def command(self, name: str) -> str:
        return self.base("cmnd") + name

    def subscriptions(self) -> list[str]:
        return [self.base("stat") + "+", self.base("tele") + "+"]

    def split(self, topic: str) -> tuple[str, str] | None:
        """``("stat", "RESULT")`` for this device's ``stat/<topic>/RESULT``, else None."""
        for prefix in ("stat", "tele"):
            base = self.base(prefix)
            if topic.startswith(base) and "/" not in topic[len(base) :]:
                return prefix, topic[len(base) :]
        return None


@dataclass(slots=True)
class TasmotaView:
    """What is known about one device, fed message by message (no I/O).

    ``device_online`` is the last LWT (``None`` until one is seen); a live (not retained) report
    from the device also proves it online.
    """

    topics: TasmotaTopics
    values: dict[str, PointValue] = field(default_factory=dict)
    device_online: bool | None = None

    def handle(self, topic: str, payload: bytes, retained: bool) -> set[str]:
        """Apply one message; the names it updated (``"online"`` for LWT changes).

        Raises :class:`DeviceProtocolError` for a malformed payload (nothing is changed then).
        """
        where = self.topics.split(topic)
        if where is None:
            return set()
        prefix, name = where
        if prefix == "tele" and name == "LWT":
            online = parse_lwt(payload)
            flipped = online != self.device_online
            self.device_online = online
            return {"online"} if flipped else set()
        update: dict[str, PointValue]
        if prefix == "tele" and name == "SENSOR":
            update = parse_sensor(payload)
        elif prefix == "tele" and name == "STATE":
            update = parse_state(payload)
        elif prefix == "stat" and name == "RESULT":
            update = parse_result(payload)
        elif prefix == "stat" and name in ("POWER", "POWER1"):
            update = {"switch": parse_power(payload)}
        elif prefix == "stat" and name in ("STATUS8", "STATUS10"):
            update = parse_sensor(payload)
        else:
            return set()
        self.values.update(update)
        changed = set(update)
        if not retained and self.device_online is not True:
            self.device_online = True
            changed.add("online")
        return changed

    def forget_presence(self) -> None:
        """The broker connection was lost: the LWT will be seen again on reconnection."""
        self.device_online = None

    def read(self, connected: bool) -> dict[str, PointValue]:
        if not (connected and self.device_online):
            return {"online": False}
        return {**self.values, "online": True}


# --- the driver --------------------------------------------------------------------------------

TASMOTA_PLUG = DeviceDescription(
    device_type=DeviceType.CONSUMPTION,
    points=(
        POINTS["switch"],
        POINTS["power_w"],
        POINTS["energy_wh"],
        POINTS["voltage_v"],
        POINTS["current_a"],
        POINTS["online"],
    ),
    driver="tasmota",
    manufacturer="Tasmota",
    model="smart plug with energy monitoring",
)


class TasmotaDriver(Driver):
    """A Tasmota plug through an MQTT broker; reads come from the latest reports.

    ``prefix_style`` is the device's FullTopic (only ``%prefix%`` and ``%topic%`` are supported).
    """

    name = "tasmota"

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        *,
        client_id: str | None = None,
        prefix_style: str = "%prefix%/%topic%/",
    ) -> None:
        super().__init__()
        self.topics = TasmotaTopics(topic, prefix_style)
        self._view = TasmotaView(self.topics)
        self._power_waiters: list[tuple[bool, asyncio.Future[None]]] = []
        self._power_reports = 0
        self._link = MqttLink(
            host,
            port,
            name=f"tasmota:{topic}",
            client_id=client_id,
            subscriptions=self.topics.subscriptions(),
            on_message=self._on_message,
            on_connect=self._query,
            on_disconnect=self._view.forget_presence,
        )

    async def start(self) -> None:
        await self._link.start()

    async def close(self) -> None:
        await self._link.close()
        for _, waiter in self._power_waiters:
            waiter.cancel()

    async def describe(self) -> DeviceDescription:
        return TASMOTA_PLUG

    async def read(self) -> dict[str, PointValue]:
        return self._view.read(self._link.connected)

    async def _write(self, point: str, value: PointValue) -> None:
        if point != "switch":
            raise PointError(f"tasmota: {point} cannot be written")
        if not self._view.read(self._link.connected)["online"]:
            raise DeviceOffline(f"tasmota {self.topics.topic} is offline")
        wanted = bool(value)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, waiter)
        self._power_waiters.append(entry)
        reports_before = self._power_reports
        try:
            await self._link.publish(self.topics.command("POWER"), "ON" if wanted else "OFF")
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                await waiter
        except TimeoutError:
            if self._power_reports != reports_before:
                raise DeviceProtocolError(
                    f"tasmota {self.topics.topic} was told POWER {'ON' if wanted else 'OFF'} "
                    f"but reports {'ON' if self._view.values.get('switch') else 'OFF'}"
                ) from None
            raise DeviceOffline(
                f"tasmota {self.topics.topic} did not confirm POWER within {CONFIRM_TIMEOUT_S} s"
            ) from None
        finally:
            self._power_waiters.remove(entry)

    async def _query(self) -> None:
        """Ask for the relay and sensors, so values do not wait for the next TelePeriod."""
        await self._link.publish(self.topics.command("POWER"), "")
        await self._link.publish(self.topics.command("STATUS"), "10")

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        was_online = self._view.device_online
        try:
            changed = self._view.handle(topic, payload, retained)
        except DeviceProtocolError as error:
            log.warning(
                "tasmota %s: ignored a bad message on %s: %s", self.topics.topic, topic, error
            )
            return
        if "switch" in changed:
            self._power_reports += 1
            reported = self._view.values["switch"]
            for wanted, waiter in self._power_waiters:
                if wanted == reported and not waiter.done():
                    waiter.set_result(None)
        if "online" in changed:
            log.info("tasmota %s: online=%s", self.topics.topic, self._view.device_online)
            if self._view.device_online and was_online is False:
                await self._query()
