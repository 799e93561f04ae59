"""The smart plug's credits, end to end in separate processes on loopback: an owner enrolls a
site meter and a plug (plug-in → pending → enroll with the pairing code), both restart as
enrolled devices, the plug replays a peak through the Demand Management app, claims each peak
interval, and the meter attests and pays the rewards. The plug's wallet then holds exactly
the credits the app (and ``ioe plug simulate``) computed, each reward with its provenance."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, enroll, init, ioe, run_device, stop, wait_for

from ioe.node.client import call_api

pytestmark = pytest.mark.process

PRICES = [100.0] * 14 + [400.0] * 6 + [100.0] * 6 + [390.0] * 4 + [100.0] * 4
APP = ("--threshold-pct", "30", "--load-w", "1200", "--min-off-minutes", "0")
ZONE = "au/nsw/newtown"


def write_prices(path: Path) -> None:
    lines = ["time,price"]
    for i, price in enumerate(PRICES):
        minutes = 5 * (i + 1)
        lines.append(f"2023-01-18T{10 + minutes // 60:02d}:{minutes % 60:02d}:00+10:00,{price}")
    path.write_text("\n".join(lines) + "\n")


def test_a_plug_s_peak_credits_are_attested_and_paid_by_its_site_meter(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    write_prices(prices)
    simulated = ioe(
        "plug", "simulate", "--prices", str(prices), *APP, "--verification", "meter",
        "--zone", ZONE, "--json",
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    expected = json.loads(simulated.stdout.strip().splitlines()[-1])
    assert len(expected["off"]) == 10 and expected["credits_mc"] > 1000

    owner_dir = tmp_path / "owner"
    owner = NodeProcess(owner_dir, init(owner_dir)).start("--no-mdns")
    processes: list[subprocess.Popen[str]] = []
    try:
        meter_dir, plug_dir = tmp_path / "meter", tmp_path / "plug"
        meter_agent = enroll(owner_dir, owner.addr, meter_dir, "monitor", "Site meter")
        plug_agent = enroll(owner_dir, owner.addr, plug_dir, "consumption", "Fridge plug")
        processes.append(
            run_device(meter_dir, owner.addr, "meter", "Site meter", "--demand-rewards")
        )
        plug_app = ("--demand-prices", str(prices), "--demand-speed", "300", *APP, "--zone", ZONE)
        processes.append(
            run_device(
                plug_dir, owner.addr, "plug", "Fridge plug", *plug_app,
                "--demand-rewarder", meter_agent,
            )
        )  # fmt: skip
        assert call_api(plug_dir, "GET", "/v1/info")["agent"] == plug_agent

        def settled() -> dict[str, Any] | None:
            report = call_api(plug_dir, "GET", "/v1/apps/demand")["report"]
            done = report["intervals"] == len(PRICES) and report["settled_mc"] > 0
            return report if done and report["settled_mc"] == report["credits_mc"] else None

        report = wait_for(settled, timeout=150)
        assert report["credits_mc"] == expected["credits_mc"]
        assert report["off_intervals"] == len(expected["off"])

        history = call_api(plug_dir, "GET", "/v1/wallet/history")["items"]
        rewards = [item for item in history if item["kind"] == "reward"]
        assert len(rewards) == 10  # one per peak interval
        assert sum(item["delta_mc"] for item in rewards) == expected["credits_mc"]
        for item in rewards:
            assert item["counterparty"] == meter_agent
            provenance = item["provenance"]
            assert provenance["clean"] is True and provenance["trust"] == "meter_attested"
            assert provenance["origin_zone"] == ZONE and provenance["energy_wh"] == 100
            assert provenance["claim"]
        meter = call_api(meter_dir, "GET", "/v1/wallet")
        assert meter["balance_mc"] == -expected["credits_mc"]
        # every chain re-verifies offline, citations included
        for process in processes:
            stop(process)
        for data in (plug_dir, meter_dir):
            verified = ioe("chain", "verify", "--data-dir", str(data))
            assert verified.returncode == 0, verified.stderr
    finally:
        for process in processes:
            stop(process)
        owner.stop()
