"""The demand app's page in a real browser: against a real plug node replaying a price file, and
against a small stand-in node serving a fixed state, at desktop and phone widths.

The real node is ``ioe device run`` with a simulated plug and the demand app fed by a replay of
a price file written here: flat prices with a short peak every hour and a quarter, at 300× real
time (a 5-minute interval a second). The node starts with a threshold the peaks never cross, so
the plug is on whatever the replay has reached when the page first looks; the test then lowers
the threshold from the page, and the next peak must turn the plug off on screen.

The stand-in node (:class:`StandInNode`) serves the page's real files and the state of a real
``DemandApp`` that has run through an evening and a night of prices crossing midnight, with
negative prices after it and off periods paid, waiting and still open. It can change its token
as a restarted node does, to check the page then asks for the new link. Screenshots of each
check are saved under pytest's temporary directory (``.../screenshots0/``; the path is
printed, ``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from playwright.sync_api import Browser, Page, ViewportSize, expect

from ioe.apps.demand.routes import add_page_routes
from ioe.apps.demand.rule import PeakSettings
from ioe.apps.demand.runner import DemandApp, FeedInfo, OffPeriod
from ioe.market_data import PricePoint
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
        "--standalone",
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
    expect(page.locator("#current-price")).to_have_text(re.compile(r"^\$\d+\.\d\d/MWh "))
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


# ------------------------------------------------------------------- at desktop and phone widths

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# An evening and a night in NEM time: 20:05 to 03:00 the next day. Prices are $80/MWh with two
# evening peaks at $250, a third peak that is still on at the end, and a stretch of negative
# prices after midnight (rooftop-free hours where wind floods the market, as in SA).
EVENING = dt.datetime(2023, 1, 17, 20, 5, tzinfo=NEM_TIME)
NIGHT_PRICES = (
    [80.0] * 12 + [250.0] * 3 + [80.0] * 21 + [250.0] * 2 + [80.0] * 10
    + [-40.0] * 6 + [-12.5] * 6 + [80.0] * 18 + [250.0] * 6
)  # fmt: skip
BALANCE_MC = 1651


class _Plug:
    on = True

    async def power_w(self) -> float:
        return 1200.0 if self.on else 0.0

    async def set_on(self, on: bool) -> None:
        self.on = on


class _Store:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get_setting(self, key: str) -> Any:
        return self.values.get(key)

    def put_setting(self, key: str, value: Any) -> None:
        self.values[key] = value


async def _no_feed() -> AsyncIterator[PricePoint]:
    return
    yield


async def night_state() -> dict[str, Any]:
    """The state of a real app that ran through :data:`NIGHT_PRICES` with a rewarder that paid
    the first off period, has not yet paid the second, and a third still open."""
    paid = [True]

    async def settle(period: OffPeriod) -> int | None:
        if paid:
            paid.pop()
            return period.credits_mc
        return None

    async def balance() -> int:
        return BALANCE_MC

    app = DemandApp(
        feed=_no_feed(),
        feed_info=FeedInfo("replay of nem_nsw1.csv (bundled) at 300x", region="NSW1"),
        plug=_Plug(),
        store=_Store(),
        publish=lambda _name, _payload: None,
        settle=settle,
        # the floor keeps the $80 after the negative prices from counting as a peak
        settings=PeakSettings(
            threshold_pct=30, floor_price=100, min_off_minutes=0, min_on_minutes=0
        ),
        load_w=1200.0,
        balance=balance,
    )
    await app.refresh_balance()
    for i, price in enumerate(NIGHT_PRICES):
        end = EVENING + dt.timedelta(minutes=5 * i)
        await app.on_price(PricePoint(int(end.timestamp()) * 1_000_000, price))
    await app.settle_closed()
    return app.state()


class StandInNode:
    """The part of a plug node the page talks to: the page's own files (the node's handler),
    the app's state behind the API token, and the signal socket. :meth:`restart` gives it a
    new token and drops the open sockets, as a node that restarted."""

    def __init__(self, state: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._make_state = state
        self.state: dict[str, Any] = {}
        self.token = "first-token"
        self.api = ""
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stand-in node", daemon=True)
        self._stop: asyncio.Event | None = None

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "") or request.query.get("token", "")
        return given in (f"Bearer {self.token}", self.token)

    async def _state(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "missing or wrong API token"}, status=401)
        return web.json_response(self.state)

    async def _signals(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "missing or wrong API token"}, status=401)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        try:
            async for message in socket:
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            self._sockets.discard(socket)
        return socket

    async def _main(self) -> None:
        self.state = await self._make_state()  # in this thread: the browser's owns its loop
        app = web.Application()
        add_page_routes(app)
        app.router.add_get("/v1/apps/demand", self._state)
        app.router.add_get("/v1/signals", self._signals)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.api = f"http://{host}:{port}"
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        for socket in list(self._sockets):
            await socket.close()
        await runner.cleanup()

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    def __enter__(self) -> StandInNode:
        self._thread.start()
        assert self._ready.wait(10), "the stand-in node did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def restart(self) -> None:
        """A new token, and every open socket closed."""

        async def drop() -> None:
            self.token = "token-after-restart"
            for socket in list(self._sockets):
                await socket.close()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)

    @property
    def page_url(self) -> str:
        return f"{self.api}/app/demand/#token={self.token}"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInNode]:
    with StandInNode(night_state) as node:
        yield node


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: a directory under pytest's temporary directory."""
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots of the demand page: {folder}")
    return folder


def _open(browser: Browser, viewport: ViewportSize) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(UI_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    return opened, errors


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_at_desktop_and_phone_width(
    browser: Browser, stand_in: StandInNode, screenshots: Path, viewport: ViewportSize
) -> None:
    """Units on every price and sum, the two credit figures and the balance, a chart whose
    zero line and negative prices stay inside the plot with dated time labels, and an off-period
    table whose every column is on screen."""
    page, errors = _open(browser, viewport)
    try:
        page.goto(stand_in.page_url)
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.locator("#problem")).to_be_hidden()

        # units: prices in $/MWh, the cost avoided in $, credits in the currency's symbol
        expect(page.locator("#feed-unit")).to_have_text("(NSW1, in $/MWh)")
        expect(page.locator("#current-price")).to_have_text(
            re.compile(r"^\$250\.00/MWh \(interval ending 03:00\)$")
        )
        expect(page.locator("#cost-avoided")).to_have_text(re.compile(r"^\$0\.\d{4}$"))
        expect(page.locator("#price-chart .axis-unit")).to_have_text("$/MWh")
        state = stand_in.state
        first_paid = state["off_periods"][0]["paid_mc"]
        expect(page.locator("#credits")).to_have_text(state["credits"])
        expect(page.locator("#paid")).to_have_text(f"{first_paid / 1000:.3f} CPC")
        expect(page.locator("#paid-count")).to_have_text("(1 of 2 off periods)")
        expect(page.locator("#balance")).to_have_text("1.651 CPC")

        # the chart: zero gridline inside the plot, negative prices above the time axis
        zero = page.locator("#price-chart line[data-series=zero]")
        expect(zero).to_have_count(1)
        zero_y = float(zero.get_attribute("y1") or "nan")
        axis_y = float(page.locator("#price-chart line.axis").first.get_attribute("y1") or "nan")
        grid_ys = [float(y or "nan") for y in page.locator("#price-chart line.grid").evaluate_all(
            "lines => lines.map(l => l.getAttribute('y1'))"
        )]  # fmt: skip
        assert zero_y < axis_y and any(abs(y - zero_y) < 0.01 for y in grid_ys)
        assert max(grid_ys) == pytest.approx(axis_y)  # a gridline on the axis, below the lows
        path = page.locator("#price-chart path[data-series=price]").get_attribute("d") or ""
        ys = [float(m or v) for m, v in re.findall(r"M[\d.]+,([\d.]+)|V([\d.]+)", path)]
        assert ys and max(ys) > zero_y  # some prices are drawn below zero ...
        assert max(ys) <= axis_y  # ... and none below the plot
        # the time axis: labels every round step, the date where the day changes
        times = page.locator("#price-chart .time-label").all_text_contents()
        dates = page.locator("#price-chart .date-label").all_text_contents()
        assert len(times) >= (8 if viewport is DESKTOP else 4)
        assert dates == ["17 Jan", "18 Jan"] and "00:00" in times

        # the off periods: every column on screen; paid, waiting and still off
        rows = page.locator("#off-periods tr")
        expect(rows).to_have_count(3)
        for cell in [*page.locator("#off-periods-table th").all(), *rows.first.locator("td").all()]:
            box = cell.bounding_box()
            assert box is not None and box["x"] >= 0
            assert box["x"] + box["width"] <= viewport["width"], cell.text_content()
        expect(rows.nth(0).locator("td").nth(1)).to_have_text("still off")
        expect(rows.nth(1).locator("td").nth(5)).to_have_text("waiting")
        expect(rows.nth(2).locator("td").nth(5)).to_have_text(f"{first_paid / 1000:.3f}")
        expect(rows.nth(2).locator("td").nth(0)).to_have_text("17 Jan 21:00")
        expect(rows.nth(2).locator("td").nth(1)).to_have_text("21:15")  # same day: time only
        no_scroll = page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert no_scroll, "the page scrolls sideways"

        shot = screenshots / f"demand-{viewport['width']}x{viewport['height']}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
    finally:
        page.context.close()
    assert not errors, f"the page raised: {errors}"


def test_a_node_restart_asks_for_the_new_link(browser: Browser, screenshots: Path) -> None:
    """A tab open while the node restarts (a new API token) gets 401s: it stops reconnecting
    and says how to get the new link, instead of "reconnecting" forever."""
    page, errors = _open(browser, PHONE)
    with StandInNode(night_state) as stand_in:
        resuming = "resuming after 18:30 (market time), where the last run stopped: ..."
        stand_in.state["notice"] = resuming  # what a restarted app says while it skips
        page.goto(stand_in.page_url)
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.locator("#notice")).to_have_text(f"The app is {resuming}.")
        stand_in.restart()
        expect(page.locator("#connection")).to_have_text("new link needed")
        problem = page.locator("#problem")
        expect(problem).to_contain_text("New link needed")
        expect(problem).to_contain_text("restarted")
        expect(problem).to_contain_text("#token=")
        shot = screenshots / "demand-new-link-needed.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        page.context.close()
    assert not errors, f"the page raised: {errors}"
