"""The reconnecting MQTT link the MQTT adapters share (Tasmota, Shelly, Home Assistant).

It keeps one aiomqtt client connected with bounded backoff, re-subscribes after every reconnect,
drops oversized payloads unread, and hands messages to a callback. Two aiomqtt 2.5.1 socket
lifecycle bugs are worked around in :class:`MqttClient` (see its methods); re-check them if the
aiomqtt pin moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho

from ioe.drivers.model import DeviceOffline, DriverError

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024
"""Larger payloads are dropped unread: no plug sends that much, and parsing it costs memory."""

RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to end, without swallowing a cancellation of our own."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class MqttClient(aiomqtt.Client):
    """aiomqtt's client without two hazards of version 2.x:

    - cancelled while connecting (the TCP connect runs in a thread), ``__aenter__`` leaves an
      open socket with no owner, which paho later closes from a finalizer in whatever event loop
      is current. Here the attempt is shielded, finished and disconnected before the
      cancellation goes on;
    - paho asks for a write watch from a publish, aiomqtt defers it to the next loop turn, and if
      the connection drops in between the watch is added on a closed file descriptor (an OSError
      in the event loop). Here a closed socket is skipped.
    """

    async def __aenter__(self) -> Self:
        entering = asyncio.ensure_future(super().__aenter__())
        try:
            return await asyncio.shield(entering)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await entering
                await self.__aexit__(None, None, None)
            raise

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def on_writable() -> None:
            try:
                client.loop_write()
            except Exception as error:
                if not self._disconnected.done():
                    self._disconnected.set_exception(error)

        def watch() -> None:
            fileno = sock.fileno()
            if fileno >= 0:
                self._loop.add_writer(fileno, on_writable)

        self._loop.call_soon_threadsafe(watch)


MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]
"""``(topic, payload, retained)``; exceptions are logged, never end the link."""


class MqttLink:
    """One MQTT connection kept up by a named background task.

    It connects, subscribes, calls ``on_connect`` and hands every message to ``on_message``; when
    the broker goes away it calls ``on_disconnect`` and tries again after a delay that doubles from
    ``backoff[0]`` up to ``backoff[1]`` seconds (reset by a successful connection), so a broker
    that comes back is picked up without a restart. Library errors stay inside: callers see
    :class:`DeviceOffline` from :meth:`publish` when there is no connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str,
        subscriptions: Sequence[str],
        on_message: MessageHandler,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        client_id: str | None = None,
        will: aiomqtt.Will | None = None,
        backoff: tuple[float, float] = (RECONNECT_MIN_S, RECONNECT_MAX_S),
        keepalive_s: int = 15,
        logger: logging.Logger | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._client_id = client_id
        self._will = will
        self._backoff = backoff
        self._keepalive_s = keepalive_s
        self._client: MqttClient | None = None
        self._log = logger or log
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-link:{self.name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def publish(
        self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0
    ) -> None:
        client = self._client
        if client is None:
            raise DeviceOffline(f"{self.name}: not connected to the MQTT broker")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as error:
            raise DeviceOffline(f"{self.name}: publish to {topic} failed: {error}") from None

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                async with MqttClient(
                    self.host,
                    self.port,
                    identifier=self._client_id,
                    will=self._will,
                    keepalive=self._keepalive_s,
                    timeout=5,
                ) as client:
                    for topic in self._subscriptions:
                        await client.subscribe(topic)
                    self._client = client
                    delay = self._backoff[0]
                    self._log.info("%s: connected to %s:%d", self.name, self.host, self.port)
                    if self._on_connect is not None:
                        await self._on_connect()
                    async for message in client.messages:
                        await self._dispatch(message)
            except aiomqtt.MqttError as error:
                self._log.info("%s: MQTT broker %s:%d: %s", self.name, self.host, self.port, error)
            except DriverError as error:
                self._log.warning("%s: %s", self.name, error)
            except Exception:
                self._log.exception(
                    "%s: unexpected error in the MQTT link; reconnecting", self.name
                )
            finally:
                was_up = self._client is not None
                self._client = None
                if was_up and self._on_disconnect is not None:
                    self._on_disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._log.warning("%s: dropped a %d-byte payload on %s", self.name, len(payload), topic)
            return
        try:
            await self._on_message(topic, bytes(payload), bool(message.retain))
        except Exception:
            self._log.exception("%s: handling a message on %s failed", self.name, topic)
