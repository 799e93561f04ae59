"""``ioe device run/read/write/describe`` with a simulated device, as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.process


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def plug(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("plug")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ioe",
            "device",
            "run",
            "--data-dir",
            str(data),
            "--driver",
            "sim",
            "--sim",
            "plug",
            "--name",
            "Fridge plug",
            "--no-mdns",
            "--interval",
            "0.2",
            "--batch-every",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["peer_id"].startswith("12D3KooW")
        yield data
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert not (data / "node.json").exists()
    assert (data / "device.key").stat().st_mode & 0o077 == 0


def test_describe_lists_the_plug_points(plug: Path) -> None:
    done = ioe("device", "describe", "--data-dir", str(plug), "--json")
    assert done.returncode == 0, done.stderr
    description = json.loads(done.stdout.splitlines()[-1])
    assert description["name"] == "Fridge plug"
    assert description["device_type"] == "consumption"
    points = {p["name"]: p for p in description["points"]}
    assert points["switch"]["writable"] is True
    assert points["power_w"]["writable"] is False


def test_write_then_read_back(plug: Path) -> None:
    assert ioe("device", "write", "--data-dir", str(plug), "switch", "off").returncode == 0
    values = json.loads(ioe("device", "read", "--data-dir", str(plug), "--json").stdout)
    assert values["online"] is True
    assert values["switch"] is False
    assert values["power_w"] == 0
    assert ioe("device", "write", "--data-dir", str(plug), "switch", "on").returncode == 0
    values = json.loads(ioe("device", "read", "--data-dir", str(plug), "--json").stdout)
    assert values["switch"] is True


@pytest.mark.parametrize(
    ("point", "value", "message"),
    [
        ("no_such_point", "1", "no point"),
        ("power_w", "5", "read-only"),
        ("switch", "maybe", "on/off"),
    ],
)
def test_bad_writes_fail_clearly(plug: Path, point: str, value: str, message: str) -> None:
    before = json.loads(ioe("device", "read", "--data-dir", str(plug), "--json").stdout)["switch"]
    done = ioe("device", "write", "--data-dir", str(plug), point, value)
    assert done.returncode != 0
    assert message in done.stderr
    after = json.loads(ioe("device", "read", "--data-dir", str(plug), "--json").stdout)["switch"]
    assert after == before


def test_readings_are_signed_onto_the_chain(plug: Path) -> None:
    for _ in range(50):
        shown = ioe("chain", "show", "--data-dir", str(plug))
        if "reading_batch" in shown.stdout:
            break
    assert "reading_batch" in shown.stdout
    assert ioe("chain", "verify", "--data-dir", str(plug)).returncode == 0


def test_device_commands_without_a_running_node_fail_clearly(tmp_path: Path) -> None:
    done = ioe("device", "read", "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert "no node is running" in done.stderr
