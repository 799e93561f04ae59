"""``ioe device emulate``: the tutorial's plug emulators as commands, each driven by the real
driver from another process (the drivers chapter can be tried as written)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ioe.drivers.registry import DriverOptions, open_driver
from ioe.testing.mosquitto import MosquittoBroker, free_port, mosquitto_fixture

pytestmark = [pytest.mark.process, pytest.mark.anyio]
mosquitto = mosquitto_fixture()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _emulate(*args: str) -> Iterator[dict[str, object]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ioe", "device", "emulate", *args, "--load-w", "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        yield json.loads(line)
    finally:
        process.terminate()
        process.communicate(timeout=10)


async def _switch_and_read(options: DriverOptions) -> dict[str, object]:
    async with open_driver(options) as unstarted, unstarted as driver:
        for _ in range(50):  # the driver hears the plug is online: bounded
            if (await driver.read()).get("online", True):
                break
            await asyncio.sleep(0.1)
        await driver.write("switch", True)
        for _ in range(50):  # the plug reports its new state: bounded
            values = await driver.read()
            if values.get("switch") is True and values.get("power_w"):
                return dict(values)
            await asyncio.sleep(0.1)
    raise AssertionError(f"the emulated plug never reported on: {values}")


async def test_the_tasmota_emulator_is_switched_by_the_tasmota_driver(
    mosquitto: MosquittoBroker,
) -> None:
    broker = f"{mosquitto.host}:{mosquitto.port}"
    for started in _emulate("tasmota", "--mqtt", broker, "--topic", "tasmota_TUTOR"):
        assert started == {"emulating": "tasmota", "mqtt": broker, "topic": "tasmota_TUTOR"}
        values = await _switch_and_read(
            DriverOptions(driver="tasmota", mqtt=broker, topic="tasmota_TUTOR")
        )
        assert values["power_w"] == pytest.approx(150.0, rel=0.01)


async def test_the_shelly_emulator_is_switched_by_the_shelly_driver() -> None:
    port = free_port()
    for started in _emulate("shelly", "--listen", f"127.0.0.1:{port}"):
        assert started == {"emulating": "shelly", "url": f"http://127.0.0.1:{port}"}
        values = await _switch_and_read(DriverOptions(driver="shelly", url=str(started["url"])))
        assert values["power_w"] == pytest.approx(150.0, rel=0.01)


def test_without_a_broker_the_tasmota_emulator_says_how_to_start_one() -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "device", "emulate", "tasmota", "--mqtt",
         f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and f"mosquitto -p {port}" in done.stderr, done.stderr[-500:]
