"""Device emulators that speak the real wire formats: to try a setup before a real plug is
involved (``ioe device emulate tasmota|shelly``), and for the drivers' tests on loopback.

- :class:`TasmotaPlugEmulator`: a Tasmota plug with energy monitoring on an MQTT broker (``cmnd`` /
  ``stat`` / ``tele`` topics, ``ENERGY`` JSON as Tasmota formats it, retained ``LWT``).
- :class:`ShellyPlugEmulator`: a Shelly Plus Plug S (Gen2 RPC) with an HTTP server
  (``/rpc/<method>``) and an MQTT side (``<id>/rpc``, ``<id>/events/rpc``, ``<id>/online``).

The electrical values follow a small model: when on, the plug draws ``load_w`` at
``voltage_v`` and ``power_factor``; the energy counter integrates power over wall-clock time.
``stop`` on the MQTT side is a power cut: the socket is dropped without an MQTT DISCONNECT, so the
broker publishes the device's last will, as it would for a real plug pulled from the wall. Like
real firmware, the emulators reconnect on their own while the broker is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiomqtt
from aiohttp import web

from ioe.drivers.mqtt import MqttClient

log = logging.getLogger(__name__)

RECONNECT_S = 0.1
STOP_DEADLINE_S = 3.0

JsonObject = dict[str, Any]


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _MqttSession:
    """A device's MQTT session: connects with a last will, serves until stopped, reconnects."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str,
        will: aiomqtt.Will,
        subscriptions: list[str],
        on_connect: Callable[[aiomqtt.Client], Awaitable[None]],
        on_message: Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]],
        period_s: float | None = None,
        on_period: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self._will = will
        self._subscriptions = subscriptions
        self._on_connect = on_connect
        self._on_message = on_message
        self._period_s = period_s
        self._on_period = on_period
        self.client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"fake-device:{self.name}")

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.connected.wait()

    async def power_cut(self) -> None:
        """Drop the TCP connection without DISCONNECT (the broker sends the will), and stop."""
        self._stopping = True
        task, self._task = self._task, None
        client = self.client
        if client is not None:
            sock = client._client.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if task is None:
            return
        done: set[asyncio.Task[None]] = set()
        if client is not None:  # let it see the connection drop; else it is still connecting
            done, _ = await asyncio.wait({task}, timeout=STOP_DEADLINE_S)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish if connected (a device without a connection just drops the report)."""
        client = self.client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, payload, retain=retain)

    async def _periodic(self, client: aiomqtt.Client) -> None:
        assert self._period_s is not None and self._on_period is not None
        with contextlib.suppress(aiomqtt.MqttError):
            while True:
                await asyncio.sleep(self._period_s)
                await self._on_period(client)

    async def _run(self) -> None:
        while not self._stopping:
            ticker: asyncio.Task[None] | None = None
            try:
                async with MqttClient(
                    self.host, self.port, identifier=self.name, will=self._will, keepalive=10
                ) as client:
                    for topic in self._subscriptions:
                        await client.subscribe(topic)
                    self.client = client
                    await self._on_connect(client)
                    self.connected.set()
                    if self._period_s is not None:
                        ticker = asyncio.create_task(self._periodic(client))
                    async for message in client.messages:
                        await self._on_message(client, message)
            except aiomqtt.MqttError as error:
                log.debug("%s: %s", self.name, error)
            finally:
                self.client = None
                self.connected.clear()
                if ticker is not None:
                    ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ticker
            if not self._stopping:
                await asyncio.sleep(RECONNECT_S)


class _Meter:
    """Power and an energy counter integrated over wall-clock time."""

    def __init__(self, load_w: float, voltage_v: float, power_factor: float, total_wh: float):
        self.load_w = load_w
        self.voltage_v = voltage_v
        self.power_factor = power_factor
        self.total_wh = total_wh
        self.on = False
        self._since = time.monotonic()

    @property
    def power_w(self) -> float:
        return self.load_w if self.on else 0.0

    @property
    def current_a(self) -> float:
        return self.power_w / (self.voltage_v * self.power_factor) if self.on else 0.0

    def tick(self) -> float:
        """Add the energy since the last tick; the Wh added."""
        now = time.monotonic()
        added = self.power_w * (now - self._since) / 3600.0
        self.total_wh += added
        self._since = now
        return added

    def switch(self, on: bool) -> None:
        self.tick()
        self.on = on


# --- Tasmota -----------------------------------------------------------------------------------

TASMOTA_TOTAL_START = "2023-11-04T09:12:44"


class TasmotaPlugEmulator:
    """A Tasmota plug (energy-monitoring, one relay) on an MQTT broker."""

    def __init__(
        self,
        host: str,
        port: int,
        topic: str = "tasmota_5A9AE8",
        *,
        full_topic: str = "%prefix%/%topic%/",
        load_w: float = 60.0,
        voltage_v: float = 231.0,
        power_factor: float = 0.92,
        total_kwh: float = 12.345,
        power_on: bool = False,
        tele_period_s: float = 1.0,
    ) -> None:
        self.topic = topic
        self.full_topic = full_topic
        self.meter = _Meter(load_w, voltage_v, power_factor, total_kwh * 1000)
        self.meter.on = power_on
        self.today_wh = 123.0
        self.yesterday_wh = 456.0
        self.commands: list[tuple[str, str]] = []
        self._booted = time.monotonic()
        self._session = _MqttSession(
            host,
            port,
            name=f"DVES_{topic}",
            will=aiomqtt.Will(self.lwt_topic, "Offline", qos=1, retain=True),
            subscriptions=[self.topic_for("cmnd", "+")],
            on_connect=self._announce,
            on_message=self._on_command,
            period_s=tele_period_s,
            on_period=self._telemetry,
        )

    def topic_for(self, prefix: str, name: str) -> str:
        full = self.full_topic.replace("%prefix%", prefix).replace("%topic%", self.topic)
        return (full if full.endswith("/") else full + "/") + name

    @property
    def lwt_topic(self) -> str:
        return self.topic_for("tele", "LWT")

    @property
    def power_on(self) -> bool:
        return self.meter.on

    async def start(self, *, wait: bool = True) -> None:
        await self._session.start()
        if wait:
            await self._session.wait_connected()

    async def stop(self) -> None:
        """Pull the plug: the broker publishes ``Offline`` on the LWT topic."""
        await self._session.power_cut()

    async def press_button(self) -> None:
        """The plug's own button: toggles the relay and reports it."""
        self.meter.switch(not self.meter.on)
        await self._report_power()

    # the wire format

    @staticmethod
    def _now() -> str:
        return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")

    def energy(self) -> JsonObject:
        """The ENERGY object, with Tasmota's default resolutions (W and V whole, A to 1 mA)."""
        added = self.meter.tick()
        self.today_wh += added
        on = self.meter.on
        power = self.meter.power_w
        current = self.meter.current_a
        apparent = self.meter.voltage_v * current
        reactive = math.sqrt(max(apparent * apparent - power * power, 0.0))
        return {
            "TotalStartTime": TASMOTA_TOTAL_START,
            "Total": round(self.meter.total_wh / 1000, 3),
            "Yesterday": round(self.yesterday_wh / 1000, 3),
            "Today": round(self.today_wh / 1000, 3),
            "Period": round(added),
            "Power": round(power),
            "ApparentPower": round(apparent),
            "ReactivePower": round(reactive),
            "Factor": round(self.meter.power_factor, 2) if on else 0.0,
            "Voltage": round(self.meter.voltage_v),
            "Current": round(current, 3),
        }

    def sensor_payload(self) -> bytes:
        return _compact({"Time": self._now(), "ENERGY": self.energy()})

    def state_payload(self) -> bytes:
        uptime = int(time.monotonic() - self._booted)
        days, rest = divmod(uptime, 86400)
        clock = time.strftime("%H:%M:%S", time.gmtime(rest))
        return _compact(
            {
                "Time": self._now(),
                "Uptime": f"{days}T{clock}",
                "UptimeSec": uptime,
                "Heap": 26,
                "SleepMode": "Dynamic",
                "Sleep": 50,
                "LoadAvg": 19,
                "MqttCount": 1,
                "POWER": "ON" if self.meter.on else "OFF",
                "Wifi": {
                    "AP": 1,
                    "SSId": "ioe-test",
                    "BSSId": "02:00:00:00:00:01",
                    "Channel": 6,
                    "Mode": "11n",
                    "RSSI": 78,
                    "Signal": -61,
                    "LinkCount": 1,
                    "Downtime": "0T00:00:04",
                },
            }
        )

    async def _report_power(self) -> None:
        state = "ON" if self.meter.on else "OFF"
        await self._session.publish(self.topic_for("stat", "RESULT"), _compact({"POWER": state}))
        await self._session.publish(self.topic_for("stat", "POWER"), state)

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.lwt_topic, "Online", qos=1, retain=True)
        await self._telemetry(client)

    async def _telemetry(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topic_for("tele", "STATE"), self.state_payload())
        await client.publish(self.topic_for("tele", "SENSOR"), self.sensor_payload())

    async def _on_command(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        command = message.topic.value.rsplit("/", 1)[-1].upper()
        raw = message.payload if isinstance(message.payload, bytes) else b""
        payload = raw.decode("utf-8", "replace").strip()
        self.commands.append((command, payload))
        if command in ("POWER", "POWER1"):
            wanted = payload.upper()
            if wanted in ("ON", "1"):
                self.meter.switch(True)
            elif wanted in ("OFF", "0"):
                self.meter.switch(False)
            elif wanted in ("TOGGLE", "2"):
                self.meter.switch(not self.meter.on)
            await self._report_power()
        elif command == "STATUS" and payload in ("8", "10"):
            body = {"StatusSNS": {"Time": self._now(), "ENERGY": self.energy()}}
            await self._session.publish(self.topic_for("stat", f"STATUS{payload}"), _compact(body))
        else:
            await self._session.publish(
                self.topic_for("stat", "RESULT"), _compact({"Command": "Unknown"})
            )


# --- Shelly ------------------------------------------------------------------------------------


class RpcFailure(Exception):
    """An RPC error as a Shelly device returns it (``code``, ``message``)."""

    def __init__(self, code: int, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


class ShellyPlugEmulator:
    """A Shelly Plus Plug S: the ``switch:0`` component over HTTP RPC and MQTT RPC."""

    MODEL = "SNPL-00112EU"

    def __init__(
        self,
        device_id: str = "shellyplusplugs-e86beae9a1b0",
        *,
        load_w: float = 60.0,
        voltage_v: float = 230.4,
        power_factor: float = 0.95,
        total_wh: float = 1234.5,
        output: bool = False,
        temperature_c: float = 36.2,
    ) -> None:
        self.device_id = device_id
        self.meter = _Meter(load_w, voltage_v, power_factor, total_wh)
        self.meter.on = output
        self.temperature_c = temperature_c
        self.source = "init"
        self.requests: list[tuple[str, str, JsonObject]] = []
        self.garbage_answers: list[bytes] = []
        """Served as HTTP 200 bodies instead of the next answers (one per request)."""
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self._session: _MqttSession | None = None
        self._minute_ts = int(time.time()) // 60 * 60

    @property
    def output(self) -> bool:
        return self.meter.on

    # the component

    def status(self) -> JsonObject:
        """``Switch.GetStatus`` for id 0, as a Plus Plug S answers it."""
        self.meter.tick()
        celsius = self.temperature_c
        return {
            "id": 0,
            "source": self.source,
            "output": self.meter.on,
            "apower": round(self.meter.power_w, 1),
            "voltage": round(self.meter.voltage_v, 1),
            "current": round(self.meter.current_a, 3),
            "aenergy": {
                "total": round(self.meter.total_wh, 3),
                "by_minute": [round(self.meter.power_w / 60 * 1000, 3), 0.0, 0.0],  # mWh
                "minute_ts": self._minute_ts,
            },
            "temperature": {"tC": round(celsius, 1), "tF": round(celsius * 9 / 5 + 32, 1)},
        }

    def _switch_id(self, params: JsonObject) -> None:
        if "id" not in params:
            raise RpcFailure(-103, "Missing required argument 'id'!")
        if params["id"] != 0:
            raise RpcFailure(-105, f"Argument 'id', value {params['id']} not found!")

    async def rpc(self, method: str, params: JsonObject, source: str) -> JsonObject:
        """Run one call; :class:`RpcFailure` as the device would answer it."""
        if method == "Switch.GetStatus":
            self._switch_id(params)
            return self.status()
        if method in ("Switch.Set", "Switch.Toggle"):
            self._switch_id(params)
            if method == "Switch.Set":
                on = params.get("on")
                if not isinstance(on, bool):
                    raise RpcFailure(-103, "Missing required argument 'on'!")
            else:
                on = not self.meter.on
            was_on = self.meter.on
            await self._set_output(on, source)
            return {"was_on": was_on}
        if method == "Shelly.GetDeviceInfo":
            return {
                "name": None,
                "id": self.device_id,
                "mac": self.device_id.rsplit("-", 1)[-1].upper(),
                "slot": 0,
                "model": self.MODEL,
                "gen": 2,
                "fw_id": "20231107-164738/1.0.8-g3d05b1e",
                "ver": "1.0.8",
                "app": "PlusPlugS",
                "auth_en": False,
                "auth_domain": None,
            }
        raise RpcFailure(404, f"No handler for {method}", http_status=404)

    async def press_button(self) -> None:
        await self._set_output(not self.meter.on, "button")

    async def _set_output(self, on: bool, source: str) -> None:
        changed = on != self.meter.on
        self.meter.switch(on)
        self.source = source
        if changed:
            await self.notify({"id": 0, "output": on, "source": source})
            await self.notify(
                {
                    "id": 0,
                    "apower": round(self.meter.power_w, 1),
                    "current": round(self.meter.current_a, 3),
                }
            )

    async def notify(self, switch_status: JsonObject) -> None:
        """Publish a NotifyStatus for ``switch:0`` (if the MQTT side is up)."""
        if self._session is None:
            return
        frame = {
            "src": self.device_id,
            "dst": f"{self.device_id}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(time.time(), 2), "switch:0": switch_status},
        }
        await self._session.publish(f"{self.device_id}/events/rpc", _compact(frame))

    # HTTP

    @property
    def base_url(self) -> str:
        if self.http_port is None:
            raise RuntimeError("the HTTP server was never started")
        return f"http://127.0.0.1:{self.http_port}"

    async def start_http(self, port: int | None = None) -> str:
        """Serve HTTP RPC on 127.0.0.1 (the same port again after a stop); the base URL."""
        if self._runner is not None:
            raise RuntimeError("the HTTP server is already running")
        app = web.Application()
        app.router.add_get("/rpc/{method}", self._http_get)
        app.router.add_post("/rpc", self._http_post)
        app.router.add_get("/shelly", self._http_shelly)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        wanted = port if port is not None else (self.http_port or 0)
        site = web.TCPSite(runner, "127.0.0.1", wanted, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.http_port = runner.addresses[0][1]
        return self.base_url

    async def stop_http(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @staticmethod
    def _query_params(request: web.Request) -> JsonObject:
        params: JsonObject = {}
        for key, text in request.query.items():
            try:
                params[key] = json.loads(text)
            except ValueError:
                params[key] = text
        return params

    async def _http_get(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = self._query_params(request)
        self.requests.append(("http", method, params))
        if self.garbage_answers:
            return web.Response(body=self.garbage_answers.pop(0), content_type="application/json")
        try:
            result = await self.rpc(method, params, "HTTP_in")
        except RpcFailure as failure:
            return web.json_response(
                {"code": failure.code, "message": failure.message}, status=failure.http_status
            )
        return web.json_response(result)

    async def _http_post(self, request: web.Request) -> web.Response:
        try:
            frame = await request.json()
        except ValueError:
            return web.json_response({"code": -103, "message": "Bad request"}, status=400)
        if not isinstance(frame, dict):
            return web.json_response({"code": -103, "message": "Bad request"}, status=400)
        method = str(frame.get("method", ""))
        params = frame.get("params") or {}
        self.requests.append(("http", method, params))
        answer: JsonObject = {"id": frame.get("id"), "src": self.device_id}
        if "src" in frame:
            answer["dst"] = frame["src"]
        try:
            answer["result"] = await self.rpc(method, params, "HTTP_in")
        except RpcFailure as failure:
            answer["error"] = {"code": failure.code, "message": failure.message}
        return web.json_response(answer)

    async def _http_shelly(self, request: web.Request) -> web.Response:
        return web.json_response(await self.rpc("Shelly.GetDeviceInfo", {}, "HTTP_in"))

    # MQTT

    async def start_mqtt(self, host: str, port: int, *, wait: bool = True) -> None:
        if self._session is not None:
            raise RuntimeError("the MQTT side is already running")
        self._session = _MqttSession(
            host,
            port,
            name=self.device_id,
            will=aiomqtt.Will(f"{self.device_id}/online", "false", qos=1, retain=True),
            subscriptions=[f"{self.device_id}/rpc"],
            on_connect=self._mqtt_announce,
            on_message=self._mqtt_request,
        )
        await self._session.start()
        if wait:
            await self._session.wait_connected()

    async def stop_mqtt(self) -> None:
        """Pull the plug on the MQTT side: the broker publishes ``false`` on ``<id>/online``."""
        session, self._session = self._session, None
        if session is not None:
            await session.power_cut()

    async def _mqtt_announce(self, client: aiomqtt.Client) -> None:
        await client.publish(f"{self.device_id}/online", "true", qos=1, retain=True)

    async def _mqtt_request(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        try:
            frame = json.loads(message.payload) if isinstance(message.payload, bytes) else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("src"), str):
            log.info("%s: ignored a request that is not an RPC frame", self.device_id)
            return
        method = str(frame.get("method", ""))
        params = frame.get("params") or {}
        self.requests.append(("mqtt", method, params))
        answer: JsonObject = {"id": frame.get("id"), "src": self.device_id, "dst": frame["src"]}
        try:
            answer["result"] = await self.rpc(method, params, "MQTT")
        except RpcFailure as failure:
            answer["error"] = {"code": failure.code, "message": failure.message}
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(f"{frame['src']}/rpc", _compact(answer), qos=1)

    async def stop(self) -> None:
        """Stop both sides."""
        await self.stop_mqtt()
        await self.stop_http()
