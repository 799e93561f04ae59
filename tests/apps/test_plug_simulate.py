"""``ioe plug simulate`` replaying a bundled real NEM day, checked against an independent
computation of the rule and of the credits."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from ioe.cli.main import main
from ioe.market_data import bundled_price_rows
from ioe.zomes.currency.rewards import demand_reduction_reward_mc, need_index_from_price
from ioe.zomes.currency.value import ValueRules, Verification

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "ioe" / "data" / "prices"


def read_file(path: Path) -> list[tuple[str, int, float]]:
    """(time as written, end µs, price) of a time,price file, parsed without the package."""
    lines = path.read_text().splitlines()
    assert lines[0] == "time,price"
    out = []
    for line in lines[1:]:
        time, price = line.split(",")
        end = datetime.fromisoformat(time)
        out.append((time, int(end.timestamp()) * 1_000_000, float(price)))
    return out


def expected_result(
    rows: list[tuple[str, int, float]], x: float, w: int, f: float, load_w: float, level: int
) -> tuple[list[str], int, float]:
    off_times: list[str] = []
    credits_mc = 0
    cost = 0.0
    for i, (time, end, price) in enumerate(rows):
        before = [p for (_, e, p) in rows[:i] if end - w * 60_000_000 <= e < end]
        if not before:
            continue
        avg = math.fsum(before) / len(before)
        if price > (1 + x / 100) * max(avg, f):
            off_times.append(time)
            cost += load_w * 300 / 3600 / 1e6 * price
            credits_mc += demand_reduction_reward_mc(
                ValueRules(),
                avoided_wh=math.floor(load_w * 300 / 3600),
                need_index=need_index_from_price(price, avg),
                verification=Verification(level),
                zone="au/nsw",
            )
    return off_times, credits_mc, cost


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["plug", "simulate", *args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result: dict[str, object] = json.loads(out[-1])
    return result


@pytest.mark.parametrize(("region", "x", "level"), [("nsw1", 20.0, 1), ("sa1", 30.0, 2)])
def test_a_bundled_day_replays_exactly_as_the_rule_says(
    capsys: pytest.CaptureFixture[str], region: str, x: float, level: int
) -> None:
    path = BUNDLED / f"nem_{region}.csv"
    rows = read_file(path)
    off_times, credits_mc, cost = expected_result(rows, x, 60, 50.0, 1500.0, level)
    assert off_times, "a real day with no peak would not test much"
    verification = "device" if level == 1 else "meter"
    args = [
        "--threshold-pct", str(x), "--window-minutes", "60", "--floor-price", "50",
        "--min-off-minutes", "0", "--min-on-minutes", "0", "--max-off-minutes", "0",
        "--load-w", "1500", "--verification", verification,
    ]  # fmt: skip
    for prices in (str(path), region):  # the file, and the bundled name for the same file
        result = run_in_process(capsys, "--prices", prices, *args)
        assert result["intervals"] == len(rows)
        assert result["off"] == off_times
        assert result["kwh_avoided"] == pytest.approx(1.5 * len(off_times) * 300 / 3600)
        assert result["cost_avoided"] == pytest.approx(cost)
        assert result["credits_mc"] == credits_mc
        assert result["credits"] == credits_mc / 1000


def test_minimum_times_on_a_real_day(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_in_process(
        capsys, "--prices", "nsw1", "--threshold-pct", "10", "--min-off-minutes", "15",
        "--min-on-minutes", "20", "--max-off-minutes", "30",
    )  # fmt: skip
    times = [row.time for row in bundled_price_rows("nsw1")]
    off = set(result["off"])  # type: ignore[arg-type]
    states = [t not in off for t in times]
    runs: list[list[bool]] = []
    for state in states:
        if runs and runs[-1][0] == state:
            runs[-1].append(state)
        else:
            runs.append([state])
    assert any(not run[0] for run in runs)
    for index, run in enumerate(runs[:-1]):
        if not run[0]:
            assert 3 <= len(run) <= 6  # 15 to 30 minutes off (max-off may end a run early too)
        elif index > 0:
            assert len(run) >= 4  # 20 minutes on after switching back


def test_human_output_and_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plug", "simulate", "--prices", "sa1"]) == 0
    out = capsys.readouterr().out
    assert "864 intervals of 300 s" in out and "credits earned" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("time,price\n2023-01-18T00:05:00+10:00,12\n2023-01-18T00:10:00+10:00,nan\n")
    assert main(["plug", "simulate", "--prices", str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "line 3" in captured.err
    assert main(["plug", "simulate", "--prices", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in capsys.readouterr().err
    assert main(["plug", "simulate", "--prices", "sa1", "--window-minutes", "0"]) == 1
    assert "window_minutes" in capsys.readouterr().err


@pytest.mark.process
def test_the_command_as_a_subprocess() -> None:
    rows = read_file(BUNDLED / "nem_nsw1.csv")
    off_times, credits_mc, _ = expected_result(rows, 30.0, 60, 50.0, 1000.0, 1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ioe",
            "plug",
            "simulate",
            "--prices",
            "nsw1",
            "--threshold-pct",
            "30",
            "--min-off-minutes",
            "0",
            "--min-on-minutes",
            "0",
            "--max-off-minutes",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["off"] == off_times
    assert result["credits_mc"] == credits_mc
