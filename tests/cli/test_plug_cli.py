"""The live Demand Management app in a real device node process: the replayed prices switch
the plug exactly as ``ioe plug simulate`` says, ``ioe plug report`` adds up the same, and a feed
that ends leaves the plug on with an alert."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.process

PRICES = [100.0] * 14 + [400.0] * 6 + [100.0] * 6 + [390.0] * 4 + [100.0] * 6
ARGS = ("--threshold-pct", "30", "--load-w", "1200")


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_prices(path: Path) -> None:
    lines = ["time,price"]
    for i, price in enumerate(PRICES):
        minutes = 5 * (i + 1)
        lines.append(f"2023-01-18T{10 + minutes // 60:02d}:{minutes % 60:02d}:00+10:00,{price}")
    path.write_text("\n".join(lines) + "\n")


def api(data: Path, path: str) -> Any:
    node = json.loads((data / "node.json").read_text())
    request = urllib.request.Request(
        node["api"] + path, headers={"Authorization": f"Bearer {node['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_live_plug_does_what_the_replay_says(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    write_prices(prices)
    simulated = ioe("plug", "simulate", "--prices", str(prices), *ARGS, "--json")
    assert simulated.returncode == 0, simulated.stderr
    expected = json.loads(simulated.stdout.strip().splitlines()[-1])
    assert len(expected["off"]) >= 6

    data = tmp_path / "plug"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "ioe", "device", "run", "--data-dir", str(data),
            "--driver", "sim", "--sim", "plug", "--name", "Heater plug", "--no-mdns",
            "--standalone", "--demand-prices", str(prices), "--demand-speed", "1500", *ARGS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert "/app/demand/#token=" in ready["page"]
        deadline = time.monotonic() + 60
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = api(data, "/v1/apps/demand")
            if state["alert"]:
                break
            time.sleep(0.2)
        assert state["alert"] == "the price feed ended"
        assert state["plug"]["on"] is True  # the safe state
        off = [p["time"] for p in state["prices"] if not p["on"]]
        assert off == expected["off"]
        assert len(state["off_periods"]) == 2
        values = api(data, "/v1/device/values")
        assert values["switch"] is True

        report = ioe("plug", "report", "--data-dir", str(data), "--json")
        assert report.returncode == 0, report.stderr
        totals = json.loads(report.stdout.strip().splitlines()[-1])
        assert totals["intervals"] == expected["intervals"] == len(PRICES)
        assert totals["kwh_avoided"] == pytest.approx(expected["kwh_avoided"])
        assert totals["cost_avoided"] == pytest.approx(expected["cost_avoided"])
        assert totals["credits"] == pytest.approx(expected["credits"])
        assert totals["credits"] > 0
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_app_s_options_need_a_price_source(tmp_path: Path) -> None:
    done = ioe(
        "device", "run", "--data-dir", str(tmp_path), "--driver", "sim", "--sim", "plug",
        "--name", "p", "--no-mdns", "--threshold-pct", "20",
    )  # fmt: skip
    assert done.returncode == 2
    assert "--demand-prices" in done.stderr


def test_a_missing_price_file_is_a_clear_error(tmp_path: Path) -> None:
    done = ioe(
        "device", "run", "--data-dir", str(tmp_path), "--driver", "sim", "--sim", "plug",
        "--name", "p", "--no-mdns", "--demand-prices", str(tmp_path / "none.csv"),
    )  # fmt: skip
    assert done.returncode != 0
    assert "none.csv" in done.stderr
