"""Shelly Gen2+ plugs and relays (e.g. Plus Plug S) over their JSON-RPC API, by HTTP or MQTT.

Both transports call the same methods on the ``switch:<id>`` component:

- ``Switch.GetStatus {"id":0}`` → ``{"id":0,"source":…,"output":true,"apower":…,"voltage":…,
  "current":…,"aenergy":{"total":…,"by_minute":[…],"minute_ts":…},"temperature":{"tC":…,"tF":…}}``
  (``apower`` W, ``aenergy.total`` Wh, ``temperature.tC`` °C);
- ``Switch.Set {"id":0,"on":true}`` → ``{"was_on":false}``.

Over HTTP they are ``GET /rpc/<method>?<params>``. Over MQTT a request frame
``{"id":1,"src":"<client>","method":…,"params":…}`` goes to ``<device-id>/rpc`` and the answer
comes back on ``<client>/rpc``; the device also publishes ``NotifyStatus`` frames (changed keys
only, removed keys as ``null``) on ``<device-id>/events/rpc`` and ``true``/``false`` (retained, its
last will) on ``<device-id>/online``.

Parsing is pure (:func:`switch_values`, :func:`parse_frame`, :func:`notify_values`, …); the
drivers only move bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import reprlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from ioe.drivers.base import Driver
from ioe.drivers.model import (
    POINTS,
    DeviceDescription,
    DeviceOffline,
    DeviceProtocolError,
    PointError,
    PointValue,
)
from ioe.drivers.mqtt import MqttLink, stop_task
from ioe.vocabulary import DeviceType

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 3.0
RPC_TIMEOUT_S = 3.0
POLL_INTERVAL_S = 30.0
MAX_BODY_BYTES = 64 * 1024


class ShellyRpcError(DeviceProtocolError):
    """The device answered a call with an RPC error (``code`` as in Shelly's common errors)."""

    def __init__(self, method: str, code: object, message: object) -> None:
        text = message[:200] if isinstance(message, str) else reprlib.repr(message)
        super().__init__(f"shelly {method}: error {reprlib.repr(code)}: {text}")
        self.code = code


# --- pure Shelly protocol ----------------------------------------------------------------------


def _json(payload: bytes, what: str) -> object:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise DeviceProtocolError(f"{what} is not JSON: {payload[:80]!r}") from None


def _number(status: Mapping[str, object], key: str, point: str) -> float | None:
    raw = status[key]
    if raw is None:
        return None
    number = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        with contextlib.suppress(OverflowError):
            number = float(raw)
    if not math.isfinite(number):
        raise DeviceProtocolError(f"switch status {key} is not a number: {str(raw)[:40]}")
    try:
        POINTS[point].check(number)
    except PointError as error:
        raise DeviceProtocolError(f"switch status {key}: {error}") from None
    return number


def _nested(status: Mapping[str, object], key: str, inner: str) -> Mapping[str, object] | None:
    """``status[key]`` when it is an object holding ``inner``; None when the key says "gone"."""
    value = status[key]
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeviceProtocolError(f"switch status {key} is not an object: {reprlib.repr(value)}")
    return value if inner in value else {inner: None}


def switch_values(status: Mapping[str, object]) -> dict[str, PointValue | None]:
    """Values from a switch status object, whole (GetStatus) or partial (NotifyStatus).

    Only keys present give values; a key present as ``null`` gives ``None`` (the value is gone).
    Raises :class:`DeviceProtocolError` for values of the wrong type.
    """
    out: dict[str, PointValue | None] = {}
    if "output" in status:
        output = status["output"]
        if not isinstance(output, bool):
            raise DeviceProtocolError(
                f"switch status output is not a boolean: {reprlib.repr(output)}"
            )
        out["switch"] = output
    for key, point in (("apower", "power_w"), ("voltage", "voltage_v"), ("current", "current_a")):
        if key in status:
            out[point] = _number(status, key, point)
    if "aenergy" in status:
        energy = _nested(status, "aenergy", "total")
        out["energy_wh"] = None if energy is None else _number(energy, "total", "energy_wh")
    if "temperature" in status:
        temperature = _nested(status, "temperature", "tC")
        out["temperature_c"] = (
            None if temperature is None else _number(temperature, "tC", "temperature_c")
        )
    return out


def merge(values: dict[str, PointValue], update: Mapping[str, PointValue | None]) -> None:
    """Overlay a (partial) update on known values, as Shelly asks for NotifyStatus."""
    for name, value in update.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value


@dataclass(frozen=True, slots=True)
class RpcFrame:
    """A JSON-RPC frame from a device: a response (``id`` with result or error) or a
    notification (``method`` with params)."""

    id: object = None
    src: str = ""
    result: Mapping[str, object] | None = None
    error: Mapping[str, object] | None = None
    method: str | None = None
    params: Mapping[str, object] | None = None

    def unwrap(self, called: str) -> Mapping[str, object]:
        """The result of a response, or :class:`ShellyRpcError`."""
        if self.error is not None:
            raise ShellyRpcError(called, self.error.get("code"), self.error.get("message"))
        if self.result is None:
            raise DeviceProtocolError(f"shelly {called}: a response without result or error")
        return self.result


def _object_or_none(frame: Mapping[str, object], key: str) -> Mapping[str, object] | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeviceProtocolError(f"RPC frame {key} is not an object: {reprlib.repr(value)}")
    return value


def parse_frame(payload: bytes) -> RpcFrame:
    """A frame from ``<client>/rpc`` or ``<device-id>/events/rpc``."""
    frame = _json(payload, "RPC frame")
    if not isinstance(frame, dict):
        raise DeviceProtocolError(f"RPC frame is not a JSON object: {payload[:80]!r}")
    method = frame.get("method")
    if method is not None and not isinstance(method, str):
        raise DeviceProtocolError(f"RPC frame method is not a string: {reprlib.repr(method)}")
    result = _object_or_none(frame, "result")
    error = _object_or_none(frame, "error")
    if method is None and "id" not in frame:
        raise DeviceProtocolError("RPC frame has neither id nor method")
    return RpcFrame(
        id=frame.get("id"),
        src=src if isinstance(src := frame.get("src"), str) else "",
        result=result,
        error=error,
        method=method,
        params=_object_or_none(frame, "params"),
    )


def notify_values(frame: RpcFrame, switch_id: int) -> dict[str, PointValue | None]:
    """The values a NotifyStatus / NotifyFullStatus frame carries for ``switch:<id>``."""
    if frame.method not in ("NotifyStatus", "NotifyFullStatus") or frame.params is None:
        return {}
    status = frame.params.get(f"switch:{switch_id}")
    if status is None:
        return {}
    if not isinstance(status, dict):
        raise DeviceProtocolError(
            f"NotifyStatus switch:{switch_id} is not an object: {reprlib.repr(status)}"
        )
    return switch_values(status)


def parse_online(payload: bytes) -> bool:
    """``<device-id>/online``: ``true`` or ``false``."""
    text = payload.decode("utf-8", "replace").strip()
    if text in ("true", "false"):
        return text == "true"
    raise DeviceProtocolError(f"online is not true or false: {payload[:80]!r}")


def rpc_request(request_id: int, src: str, method: str, params: Mapping[str, object]) -> bytes:
    return json.dumps(
        {"id": request_id, "src": src, "method": method, "params": dict(params)},
        separators=(",", ":"),
    ).encode()


def http_result(method: str, status: int, body: bytes) -> Mapping[str, object]:
    """The result of ``GET /rpc/<method>``: the JSON object on 200, else the device's error."""
    parsed: object = None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        if status == 200:
            raise DeviceProtocolError(f"shelly {method}: body is not JSON: {body[:80]!r}") from None
    if status != 200:
        if isinstance(parsed, dict) and "code" in parsed:
            raise ShellyRpcError(method, parsed.get("code"), parsed.get("message"))
        raise DeviceProtocolError(f"shelly {method}: HTTP {status}: {body[:80]!r}")
    if not isinstance(parsed, dict):
        raise DeviceProtocolError(f"shelly {method}: body is not a JSON object: {body[:80]!r}")
    return parsed


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def switch_set_result(result: Mapping[str, object]) -> bool:
    was_on = result.get("was_on")
    if not isinstance(was_on, bool):
        raise DeviceProtocolError(
            f"Switch.Set answered without was_on: {reprlib.repr(dict(result))}"
        )
    return was_on


SHELLY_PLUG = DeviceDescription(
    device_type=DeviceType.CONSUMPTION,
    points=(
        POINTS["switch"],
        POINTS["power_w"],
        POINTS["energy_wh"],
        POINTS["voltage_v"],
        POINTS["current_a"],
        POINTS["temperature_c"],
        POINTS["online"],
    ),
    driver="shelly",
    manufacturer="Shelly",
    model="Gen2+ switch",
)


def _known(values: Mapping[str, PointValue | None]) -> dict[str, PointValue]:
    return {name: value for name, value in values.items() if value is not None}


# --- HTTP RPC ----------------------------------------------------------------------------------


class ShellyHttpDriver(Driver):
    """A Shelly switch by HTTP RPC. Every read asks the device (no background task).

    An unreachable device reads as ``{"online": False}``; an answer that breaks the protocol is
    logged and raised as :class:`DeviceProtocolError`.
    """

    name = "shelly-http"

    def __init__(
        self, base_url: str, switch_id: int = 0, *, timeout_s: float = HTTP_TIMEOUT_S
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.switch_id = switch_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._online: bool | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def describe(self) -> DeviceDescription:
        return SHELLY_PLUG

    async def call(self, method: str, **params: object) -> Mapping[str, object]:
        """One RPC; :class:`DeviceOffline` if the device cannot be reached."""
        if self._session is None:
            raise RuntimeError("ShellyHttpDriver is not started (use it as an async context)")
        url = f"{self.base_url}/rpc/{method}"
        query = {key: _query_value(value) for key, value in params.items()}
        body = bytearray()
        try:
            async with self._session.get(url, params=query) as response:
                status = response.status
                async for chunk in response.content.iter_chunked(16 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise DeviceProtocolError(
                            f"shelly {method}: answer larger than {MAX_BODY_BYTES} bytes"
                        )
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            self._set_online(False)
            reason = str(error) or type(error).__name__
            raise DeviceOffline(f"shelly {self.base_url}: {reason}") from None
        except aiohttp.ClientError as error:
            raise DeviceProtocolError(f"shelly {self.base_url} {method}: {error}") from None
        self._set_online(True)
        return http_result(method, status, bytes(body))

    async def read(self) -> dict[str, PointValue]:
        try:
            status = await self.call("Switch.GetStatus", id=self.switch_id)
            values = switch_values(status)
        except DeviceOffline:
            return {"online": False}
        except DeviceProtocolError as error:
            log.warning("shelly %s: bad status: %s", self.base_url, error)
            raise
        return {**_known(values), "online": True}

    async def _write(self, point: str, value: PointValue) -> None:
        if point != "switch":
            raise PointError(f"shelly: {point} cannot be written")
        switch_set_result(await self.call("Switch.Set", id=self.switch_id, on=bool(value)))

    def _set_online(self, online: bool) -> None:
        if online != self._online:
            log.info("shelly %s: online=%s", self.base_url, online)
            self._online = online


# --- MQTT RPC ----------------------------------------------------------------------------------


class ShellyMqttDriver(Driver):
    """A Shelly switch through an MQTT broker: RPC calls on ``<device-id>/rpc``, values kept up
    to date from NotifyStatus events and a status call on (re)connection and every
    ``poll_interval_s``."""

    name = "shelly-mqtt"

    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        switch_id: int = 0,
        *,
        client_id: str | None = None,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        super().__init__()
        if not device_id or any(c in device_id for c in "/+#"):
            raise ValueError(f"bad Shelly device id {device_id!r}")
        self.device_id = device_id
        self.switch_id = switch_id
        self.src = client_id or f"ioe-{secrets.token_hex(6)}"
        self._rpc_timeout_s = rpc_timeout_s
        self._poll_interval_s = poll_interval_s
        self._values: dict[str, PointValue] = {}
        self._device_online: bool | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[RpcFrame]] = {}
        self._refresh = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._link = MqttLink(
            host,
            port,
            name=f"shelly:{device_id}",
            client_id=self.src,
            subscriptions=[f"{device_id}/online", f"{device_id}/events/rpc", f"{self.src}/rpc"],
            on_message=self._on_message,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            logger=log,
        )

    async def start(self) -> None:
        await self._link.start()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name=f"shelly-poll:{self.device_id}")

    async def close(self) -> None:
        poller, self._poller = self._poller, None
        await stop_task(poller)
        await self._link.close()

    async def describe(self) -> DeviceDescription:
        return SHELLY_PLUG

    @property
    def online(self) -> bool:
        return self._link.connected and self._device_online is True

    async def read(self) -> dict[str, PointValue]:
        if not self.online:
            return {"online": False}
        if "switch" not in self._values:  # nothing known yet: ask rather than report nothing
            try:
                await self._refresh_status()
            except (DeviceOffline, DeviceProtocolError) as error:
                log.info("shelly %s: status not available yet: %s", self.device_id, error)
        return {**self._values, "online": self.online}

    async def call(self, method: str, **params: object) -> Mapping[str, object]:
        """One RPC over MQTT; :class:`DeviceOffline` without a connection or an answer in time."""
        if not self._link.connected:
            raise DeviceOffline(f"shelly {self.device_id}: not connected to the MQTT broker")
        self._next_id += 1
        request_id = self._next_id
        answer: asyncio.Future[RpcFrame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            payload = rpc_request(request_id, self.src, method, params)
            await self._link.publish(f"{self.device_id}/rpc", payload, qos=1)
            async with asyncio.timeout(self._rpc_timeout_s):
                frame = await answer
        except TimeoutError:
            raise DeviceOffline(
                f"shelly {self.device_id}: no answer to {method} in {self._rpc_timeout_s} s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
            if answer.done() and not answer.cancelled():
                answer.exception()  # retrieved: a broker loss may have failed it unawaited
        return frame.unwrap(method)

    async def _write(self, point: str, value: PointValue) -> None:
        if point != "switch":
            raise PointError(f"shelly: {point} cannot be written")
        if not self.online:
            raise DeviceOffline(f"shelly {self.device_id} is offline")
        switch_set_result(await self.call("Switch.Set", id=self.switch_id, on=bool(value)))
        self._values["switch"] = bool(value)

    async def _refresh_status(self) -> None:
        status = await self.call("Switch.GetStatus", id=self.switch_id)
        merge(self._values, switch_values(status))

    async def _poll(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._poll_interval_s):
                    await self._refresh.wait()
            except TimeoutError:
                pass
            self._refresh.clear()
            if not self.online:
                continue
            try:
                await self._refresh_status()
            except (DeviceOffline, DeviceProtocolError) as error:
                log.info("shelly %s: status refresh failed: %s", self.device_id, error)

    async def _on_connect(self) -> None:
        self._refresh.set()

    def _on_disconnect(self) -> None:
        self._device_online = None
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(DeviceOffline(f"shelly {self.device_id}: broker lost"))

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            self._handle(topic, payload, retained)
        except DeviceProtocolError as error:
            log.warning("shelly %s: ignored a bad message on %s: %s", self.device_id, topic, error)

    def _handle(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == f"{self.src}/rpc":
            frame = parse_frame(payload)
            answer = self._pending.get(frame.id) if isinstance(frame.id, int) else None
            if answer is None:
                raise DeviceProtocolError(
                    f"an answer to no pending call (id {reprlib.repr(frame.id)})"
                )
            if not answer.done():
                answer.set_result(frame)
        elif topic == f"{self.device_id}/online":
            self._set_device_online(parse_online(payload))
        elif topic == f"{self.device_id}/events/rpc":
            merge(self._values, notify_values(parse_frame(payload), self.switch_id))
            if not retained:
                self._set_device_online(True)

    def _set_device_online(self, online: bool) -> None:
        if online == self._device_online:
            return
        log.info("shelly %s: online=%s", self.device_id, online)
        came_back = online and self._device_online is False
        self._device_online = online
        if came_back or (online and "switch" not in self._values):
            self._refresh.set()
