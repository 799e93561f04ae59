"""The demand app's page in a real browser, against a real plug node replaying a price file.

The node is ``ioe device run`` with a simulated plug and the demand app fed by a replay of a
price file written here: flat prices with a short peak every hour and a quarter, at 300× real time
(a 5-minute interval a second). The node starts with a threshold the peaks never cross, so the
plug is on whatever the replay has reached when the page first looks; the test then lowers the
threshold from the page, and the next peak must turn the plug off on screen.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ioe.node.nodefile import NoRunningNode, read_node_file

pytestmark = pytest.mark.process

FLAT = 50.0
PEAK = 100.0
CYCLE = (FLAT,) * 12 + (PEAK,) * 3  # an hour flat, then a 15-minute peak at twice the average
CYCLES = 24  # 6 minutes of replay at SPEED: longer than any test here waits
SPEED = 300
# Off iff price > (1 + X/100) × average: at 150 % a peak needs over 2.5 × the average (it never
# gets there); at 20 % every peak's first interval (100 against an average of 50) is far over.
START_THRESHOLD = 150
PAGE_THRESHOLD = 20
NEM_TIME = dt.timezone(dt.timedelta(hours=10))
START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000
# From the threshold change to a peak: at most one cycle of the replay, plus the minimum on time.
PEAK_TIMEOUT_MS = 90_000


def write_prices(path: Path) -> None:
    first_end = dt.datetime(2023, 1, 17, 0, 5, tzinfo=NEM_TIME)
    lines = ["time,price"]
    for i, price in enumerate(CYCLE * CYCLES):
        end = first_end + dt.timedelta(minutes=5 * i)
        lines.append(f"{end.isoformat()},{price:.2f}")
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True, slots=True)
class DemandNode:
    api: str
    token: str
    data_dir: Path

    @property
    def page_url(self) -> str:
        return f"{self.api}/app/demand/#token={self.token}"

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.api + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def _wait_until_ready(data_dir: Path, process: subprocess.Popen[bytes], log: Path) -> DemandNode:
    """Wait (bounded) for ``DIR/node.json``, which the node writes once its API listens."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            pytest.fail(f"`ioe device run` exited with {code} before it was ready:\n{_tail(log)}")
        try:
            found = read_node_file(data_dir)
        except NoRunningNode:
            time.sleep(0.1)
            continue
        return DemandNode(api=found.api, token=found.token, data_dir=data_dir)
    pytest.fail(f"no {data_dir}/node.json after {START_TIMEOUT_S} s:\n{_tail(log)}")


@pytest.fixture(scope="module")
def demand_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemandNode]:
    data_dir = tmp_path_factory.mktemp("plug")
    work = tmp_path_factory.mktemp("demand")
    prices = work / "prices.csv"
    write_prices(prices)
    log = work / "node.log"
    command = [
        sys.executable,
        "-m",
        "ioe",
        "device",
        "run",
        "--data-dir",
        str(data_dir),
        "--driver",
        "sim",
        "--sim",
        "plug",
        "--name",
        "plug",
        "--demand-prices",
        str(prices),
        "--demand-speed",
        str(SPEED),
        "--threshold-pct",
        str(START_THRESHOLD),
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--no-mdns",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield _wait_until_ready(data_dir, process, log)
        finally:
            process.terminate()
            code: int | None
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                code = None
    assert code == 0, f"the node did not stop cleanly ({code}):\n{_tail(log)}"


def test_a_wrong_token_is_refused_and_the_page_says_so(demand_node: DemandNode, page: Page) -> None:
    page.goto(f"{demand_node.api}/app/demand/#token=not-the-token")
    expect(page.locator("#problem")).to_contain_text("token", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#plug-state")).not_to_have_text(re.compile("ON|OFF"))


def test_the_page_shows_the_plug_sit_out_a_peak(demand_node: DemandNode, page: Page) -> None:
    page.goto(demand_node.page_url)

    # (a) the page loads: the plug is on and the replayed prices are drawn
    expect(page.locator("#plug-state")).to_have_text("ON", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#plug-power")).to_have_text(re.compile(r"^\d+(\.\d+)? W$"))
    expect(page.locator("#threshold-value")).to_have_text(f"{START_THRESHOLD} %")
    price_line = page.locator("#price-chart path[data-series=price]")
    expect(price_line).to_have_attribute(
        "d", re.compile(r"^M[\d.]+,[\d.]+H"), timeout=UI_TIMEOUT_MS
    )
    expect(page.locator("#current-price")).to_contain_text("/MWh")
    expect(page.locator("#alert")).to_be_hidden()
    expect(page.locator("#problem")).to_be_hidden()

    # (b) the threshold is changed from the page, and the node stores it
    page.locator("#threshold-input").fill("")
    page.locator("#threshold-save").click()
    expect(page.locator("#threshold-message")).to_contain_text("Enter the threshold")
    expect(page.locator("#threshold-value")).to_have_text(f"{START_THRESHOLD} %")
    page.locator("#threshold-input").fill(str(PAGE_THRESHOLD))
    page.locator("#threshold-save").click()
    expect(page.locator("#threshold-message")).to_contain_text("Saved", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#threshold-value")).to_have_text(f"{PAGE_THRESHOLD} %")
    assert demand_node.get("/v1/apps/demand")["settings"]["threshold_pct"] == PAGE_THRESHOLD

    # (c) the next peak turns the plug off on screen, and the off period is listed and shaded
    expect(page.locator("#plug-state")).to_have_text("OFF", timeout=PEAK_TIMEOUT_MS)
    expect(page.locator("#off-periods tr")).not_to_have_count(0, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#price-chart rect[data-series=off]")).not_to_have_count(0)
    assert demand_node.get("/v1/apps/demand")["off_periods"]

    # ... and the plug is back on once the peak has passed, the period closed in the table
    expect(page.locator("#plug-state")).to_have_text("ON", timeout=PEAK_TIMEOUT_MS)
    closed = page.locator("#off-periods tr").first.locator("td").nth(1)
    expect(closed).not_to_have_text("still off", timeout=UI_TIMEOUT_MS)
