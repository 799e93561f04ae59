"""``ioe device emulate tasmota|shelly``: a plug emulator to point a driver at, so the drivers
chapter of the tutorial can be tried before a real plug is involved.

``tasmota`` connects to an MQTT broker as a Tasmota plug would (start one first, e.g.
``/usr/sbin/mosquitto -p 18830``: Debian keeps /usr/sbin out of a user's PATH); ``shelly``
serves a Shelly Plus Plug S's HTTP RPC on 127.0.0.1. Each prints one JSON line saying what it
serves, then runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any

from ioe.drivers.emulators import ShellyPlugEmulator, TasmotaPlugEmulator
from ioe.drivers.registry import host_port


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def _tasmota(args: argparse.Namespace) -> None:
    host, port = host_port(args.mqtt, "mqtt")
    plug = TasmotaPlugEmulator(host, port, args.topic, load_w=args.load_w, power_on=args.on)
    try:
        await plug.start()
    except (OSError, TimeoutError) as exc:
        raise SystemExit(
            f"error: no MQTT broker at {args.mqtt} ({exc}); start one, e.g."
            f" `/usr/sbin/mosquitto -p {port}`"
        ) from None
    print(json.dumps({"emulating": "tasmota", "mqtt": args.mqtt, "topic": args.topic}), flush=True)
    try:
        await _until_stopped()
    finally:
        await plug.stop()


async def _shelly(args: argparse.Namespace) -> None:
    host, port = host_port(args.listen, "listen")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("error: the Shelly emulator listens on 127.0.0.1 only")
    plug = ShellyPlugEmulator(args.device_id, load_w=args.load_w, output=args.on)
    try:
        url = await plug.start_http(port)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {args.listen}: {exc}") from None
    print(json.dumps({"emulating": "shelly", "url": url}), flush=True)
    try:
        await _until_stopped()
    finally:
        await plug.stop_http()


def cmd_emulate(args: argparse.Namespace) -> int:
    run = _tasmota if args.kind == "tasmota" else _shelly
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


def add_emulate_command(device_commands: Any) -> None:
    emulate = device_commands.add_parser(
        "emulate",
        help="run a Tasmota or Shelly plug emulator to try a driver on",
        description="A plug emulator speaking the real wire format: tasmota on an MQTT broker "
        "(start one first: /usr/sbin/mosquitto -p 18830), shelly over HTTP on 127.0.0.1. It "
        "prints one JSON line, then runs until Ctrl-C.",
    )
    emulate.add_argument("kind", choices=["tasmota", "shelly"], help="which plug to emulate")
    emulate.add_argument(
        "--mqtt", default="127.0.0.1:18830", help="tasmota: the broker's HOST:PORT"
    )
    emulate.add_argument("--topic", default="tasmota_5A9AE8", help="tasmota: the plug's topic")
    emulate.add_argument(
        "--listen", default="127.0.0.1:18080", help="shelly: where its HTTP RPC listens"
    )
    emulate.add_argument(
        "--device-id", default="shellyplusplugs-e86beae9a1b0", help="shelly: its device id"
    )
    emulate.add_argument("--load-w", type=float, default=120.0, help="the load behind the plug")
    emulate.add_argument("--on", action="store_true", help="start with the relay on")
    emulate.set_defaults(handler=cmd_emulate)
