"""The Demand Management app on a node: its plug, its feed, its page, its rewards.

A device node started with ``--demand-prices`` runs :class:`~ioe.apps.demand.runner.DemandApp`
on its own device (the plug): the app reads the plug's power and sets its ``switch`` point
through the node's driver, keeps its settings and history in the node's settings table, and
publishes ``demand.tick`` / ``demand.alert`` events on the node's signal hub. Its page is served
at ``/app/demand/`` and its state at ``GET /v1/apps/demand`` (:func:`add_routes`).

**Rewards.** A node started with ``--demand-rewards`` (a site or grid operator's meter) runs a
:class:`DemandRewarder`: it answers ``demand_rewards.claim`` from any member (an unrestricted
grant it makes at start, as the wallet does for ``ledger_head``), checks the claim, recomputes
the credits from the claimed intervals with the currency's reward rule, and pays them with a
``reward`` transfer carrying the provenance of the avoided energy. A plug started with
``--demand-rewarder AGENT`` sends each closed off-period there; the credits then show in both
wallets.

What the rewarder checks today: the claim's shape and bounds (each interval's energy at most
what a 16 A plug can draw in it, a price above its average, intervals of the claimed period),
that the credits follow from the intervals by the rule, and that a plug is paid once per
period. It does not yet compare the claim with its own meter's readings, so its attestation is
only as good as the plug's word — see ``docs/demand-app.md``.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ioe.apps.demand.rule import PeakSettings
from ioe.apps.demand.runner import DemandApp, FeedInfo, OffPeriod
from ioe.drivers.sim.plug import PLUG_MAX_W
from ioe.encoding import Value
from ioe.errors import ZomeCallError
from ioe.hashing import AgentPubKey
from ioe.market_data import BUNDLED_REGIONS, FeedError, PricePoint, bundled_prices, replay
from ioe.market_data.csv_feed import load_price_csv
from ioe.market_data.live import NEMWEB_DISPATCHIS_URL, fetch_latest_prices
from ioe.node.open_grant import ensure_open_grant
from ioe.zomes.currency.rewards import (
    demand_reduction_reward_mc,
    need_index_from_cents,
    price_cents,
)
from ioe.zomes.currency.value import ValueRules, Verification

if TYPE_CHECKING:
    from ioe.node.runtime import Node

log = logging.getLogger(__name__)

REWARDS_SERVICE = "demand_rewards"
REWARDS_TAG = "demand-rewards"
PAID_KEY = "apps.demand.rewarded"
MAX_CLAIM_INTERVALS = 288
LIVE_POLL_S = 30.0
MAX_PRICE_C = 10**9
"""Prices beyond ±10 million per MWh are not prices."""
APP_KEY: web.AppKey[DemandApp] = web.AppKey("demand_app", DemandApp)


@dataclass(frozen=True, slots=True)
class DemandSetup:
    """How a node runs the Demand Management app (``ioe device run --demand-*``)."""

    prices: str
    """A ``time,price`` CSV file, or a bundled recording by region name (``nsw1``, ``sa1``), or
    ``nemweb:REGION`` for AEMO's live 5-minute prices."""
    speed: float = 1.0
    """Replay pace: recorded intervals per real interval (300: 5 minutes a second)."""
    settings: dict[str, Value] | None = None
    """Settings to apply at start (else the stored ones, else the defaults)."""
    load_w: float | None = None
    """The appliance's load for the avoided energy; None: the plug's last measured power."""
    rewarder: AgentPubKey | None = None
    zone: str = "au/nsw"


def _points(prices: str) -> tuple[list[PricePoint], str]:
    path = Path(prices)
    if path.exists():
        rows = load_price_csv(path)
        return [PricePoint(row.end_us, row.price) for row in rows], path.name
    if prices in BUNDLED_REGIONS:
        return bundled_prices(prices), f"nem_{prices}.csv (bundled)"
    raise ValueError(
        f"--demand-prices: {prices!r} is not a file, a bundled region {sorted(BUNDLED_REGIONS)}"
        " or nemweb:REGION"
    )


def check_prices(prices: str) -> None:
    """``ValueError`` saying what is wrong with a ``--demand-prices`` source (a file is read)."""
    if prices.startswith("nemweb:"):
        if not prices.split(":", 1)[1].strip():
            raise ValueError("--demand-prices nemweb:REGION names a region (NSW1, VIC1, ...)")
        return
    try:
        _points(prices)
    except OSError as exc:
        raise ValueError(f"--demand-prices: {prices}: {exc.strerror or exc}") from None


async def poll_nemweb(
    region: str, *, poll_s: float = LIVE_POLL_S, base_url: str = NEMWEB_DISPATCHIS_URL
) -> AsyncIterator[PricePoint]:
    """AEMO's live 5-minute prices of ``region``: the newest DISPATCHIS report every
    ``poll_s``, each interval once. A failed poll is logged and retried; the app's stopped-feed
    watch turns a long silence into its safe state and an alert."""
    last: int | None = None
    while True:
        try:
            points = await fetch_latest_prices(region, base_url=base_url)
        except FeedError as exc:
            log.warning("NEMWeb poll failed: %s", exc)
            points = []
        for point in points:
            if last is None or point.end_us > last:
                last = point.end_us
                yield point
        await asyncio.sleep(poll_s)


def open_feed(setup: DemandSetup) -> tuple[AsyncIterator[PricePoint], FeedInfo]:
    """The feed named by ``setup.prices``, and how to show it."""
    if setup.prices.startswith("nemweb:"):
        region = setup.prices.split(":", 1)[1].upper()
        return poll_nemweb(region), FeedInfo(f"AEMO NEMWeb live, {region}")
    points, name = _points(setup.prices)
    if len(points) < 2:
        raise ValueError(f"{setup.prices}: a replay needs at least two intervals")
    interval_s = (points[1].end_us - points[0].end_us) // 1_000_000
    if setup.speed <= 0:
        raise ValueError("--demand-speed is a positive number")
    info = FeedInfo(
        source=f"replay of {name} at {setup.speed:g}x",
        interval_s=interval_s,
        pace_s=interval_s / setup.speed,
    )
    return replay(points, speed=setup.speed), info


class _PlugPort:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def power_w(self) -> float:
        assert self.node.device is not None
        values = await self.node.device.read()
        power = values.get("power_w", 0.0)
        return float(power) if isinstance(power, int | float) else 0.0

    async def set_on(self, on: bool) -> None:
        assert self.node.device is not None
        await self.node.device.write("switch", on)


class DemandService:
    """The app attached to a running node (see the module docstring)."""

    def __init__(self, node: Node, setup: DemandSetup) -> None:
        self.node = node
        self.setup = setup
        self.app: DemandApp | None = None

    async def start(self) -> None:
        if self.node.device is None:
            raise ValueError("the demand app runs on a device node (a plug)")
        feed, info = open_feed(self.setup)
        settings = None
        if self.setup.settings:
            settings = PeakSettings.from_value({**PeakSettings().to_value(), **self.setup.settings})
        self.app = DemandApp(
            feed=feed,
            feed_info=info,
            plug=_PlugPort(self.node),
            store=self.node.conductor.db,
            publish=self._publish,
            settle=self._settle if self.setup.rewarder is not None else None,
            settings=settings,
            load_w=self.setup.load_w,
            verification=Verification.METER_ATTESTED
            if self.setup.rewarder is not None
            else Verification.DEVICE_SIGNED,
            zone=self.setup.zone,
            symbol=self.node.wallet.symbol(),
        )
        await self.app.start()

    async def close(self) -> None:
        if self.app is not None:
            await self.app.close()

    def _publish(self, name: str, payload: dict[str, Any]) -> None:
        self.node.signals.publish(
            {"type": "signal", "zome": "demand", "name": name, "payload": payload}
        )

    async def _settle(self, period: OffPeriod) -> bool:
        assert self.app is not None and self.setup.rewarder is not None
        intervals = claim_intervals(self.app.history_between(period.start_us, period.end_us))
        claim = {
            "start_us": period.start_us,
            "end_us": period.end_us,
            "interval_s": self.app.feed_info.interval_s,
            "zone": self.setup.zone,
            "intervals": intervals,
            "credits_mc": period.credits_mc,
        }
        cell = self.node.wallet.cell()
        result = await self.node.remote.call(
            cell, self.setup.rewarder, REWARDS_SERVICE, "claim", claim, timeout_s=20.0
        )
        return isinstance(result, dict) and bool(result.get("paid"))


# ------------------------------------------------------------------------------ the rewarder


def claim_intervals(decisions: list[dict[str, Any]]) -> list[dict[str, int]]:
    """The off intervals of a claim, prices in integer hundredths (what the reward rule
    uses; a claim crosses the network as canonical CBOR, which has no floats)."""
    return [
        {
            "end_us": d["end_us"],
            "price_c": price_cents(d["price"]),
            "average_c": price_cents(d["average"]),
            "wh": d["wh"],
        }
        for d in decisions
        if not d["on"] and d["average"] is not None
    ]


def claim_credits_mc(claim: Any, verification: Verification) -> tuple[int, int]:
    """Check a reduction claim's shape and bounds; the credits and the energy it is worth
    (``ZomeCallError`` saying what is wrong)."""
    if not isinstance(claim, dict):
        raise ZomeCallError("a reward claim is a map")
    start, end, interval_s = claim.get("start_us"), claim.get("end_us"), claim.get("interval_s")
    zone, intervals = claim.get("zone"), claim.get("intervals")
    if not (type(start) is int and type(end) is int and type(interval_s) is int):
        raise ZomeCallError("start_us, end_us and interval_s are integers")
    if not 60 <= interval_s <= 3600 or not start < end:
        raise ZomeCallError("a claim covers a period of whole intervals of 1 to 60 minutes")
    if not isinstance(zone, str):
        raise ZomeCallError("zone is a zone path")
    if not isinstance(intervals, list) or not 0 < len(intervals) <= MAX_CLAIM_INTERVALS:
        raise ZomeCallError(f"a claim lists 1 to {MAX_CLAIM_INTERVALS} intervals")
    rules = ValueRules()
    most_wh = int(PLUG_MAX_W * interval_s // 3600)
    total_mc = 0
    total_wh = 0
    previous = start
    for item in intervals:
        if not isinstance(item, dict):
            raise ZomeCallError("each interval is a map")
        end_us, price, average, wh = (item.get(k) for k in ("end_us", "price_c", "average_c", "wh"))
        if type(end_us) is not int or end_us - interval_s * 1_000_000 < previous or end_us > end:
            raise ZomeCallError("intervals are in order, inside the claimed period")
        previous = end_us
        if not (type(price) is int and type(average) is int and abs(price) <= MAX_PRICE_C):
            raise ZomeCallError("each interval has a price and its average (integer hundredths)")
        if not price > average:
            raise ZomeCallError("a reduction is rewarded only while the price is above average")
        if type(wh) is not int or not 0 <= wh <= most_wh:
            raise ZomeCallError(f"an interval's energy is an integer of Wh in [0, {most_wh}]")
        try:
            total_mc += demand_reduction_reward_mc(
                rules,
                avoided_wh=wh,
                need_index=need_index_from_cents(price, average),
                verification=verification,
                zone=zone,
            )
        except ValueError as exc:
            raise ZomeCallError(str(exc)) from exc
        total_wh += wh
    if claim.get("credits_mc") != total_mc:
        raise ZomeCallError(f"the credits claimed are not the rule's {total_mc} mc")
    return total_mc, total_wh


class DemandRewarder:
    """Pays demand-reduction rewards to plugs that claim them (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._lock = asyncio.Lock()
        self.granted = False

    def start(self) -> None:
        self.node.remote.services[REWARDS_SERVICE] = self.serve
        self.ensure_grant()

    def ensure_grant(self) -> None:
        if self.granted:
            return
        self.granted = ensure_open_grant(
            self.node, self.node.wallet.cell(), REWARDS_SERVICE, "claim", REWARDS_TAG
        )

    async def serve(self, function: str, payload: Value, caller: AgentPubKey) -> object:
        if function != "claim":
            raise ZomeCallError(f"the {REWARDS_SERVICE} service has no function {function!r}")
        credits_mc, wh = claim_credits_mc(payload, Verification.METER_ATTESTED)
        assert isinstance(payload, dict)
        key = f"{caller.to_text()}/{payload['start_us']}"
        async with self._lock:
            db = self.node.conductor.db
            paid = db.get_setting(PAID_KEY)
            paid_set = set(paid) if isinstance(paid, list) else set()
            if key in paid_set:
                return {"paid": True, "again": True}
            if credits_mc == 0:
                return {"paid": True, "credits_mc": 0}
            payment = await self.node.wallet.pay(
                caller,
                credits_mc,
                kind="reward",
                provenance={
                    "energy_wh": wh,
                    "source": "grid_mix",
                    "clean": False,
                    "origin_zone": payload["zone"],
                    "trust": "meter_attested",
                },
                memo="demand reduction at a price peak",
            )
            paid_set.add(key)
            db.put_setting(PAID_KEY, sorted(paid_set))
        return {"paid": True, "credits_mc": credits_mc, "action": payment.action_hash.to_text()}


# ------------------------------------------------------------------------------ HTTP


def _web_dir() -> Any:
    return importlib.resources.files("ioe.apps.demand") / "web"


def add_routes(app: web.Application, demand: DemandApp) -> None:
    app[APP_KEY] = demand
    app.router.add_get("/v1/apps/demand", _state)
    app.router.add_put("/v1/apps/demand/settings", _settings)


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[APP_KEY].state())


async def _settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    try:
        settings = request.app[APP_KEY].update_settings(body)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(settings.to_value())


async def page(request: web.Request) -> web.StreamResponse:
    """``/app/demand/`` and its assets (no token: the page reads it from the URL fragment)."""
    name = request.match_info.get("file") or "index.html"
    if "/" in name or name.startswith("."):
        raise web.HTTPNotFound()
    resource = _web_dir() / name
    if not resource.is_file():
        raise web.HTTPNotFound()
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    suffix = Path(name).suffix
    return web.Response(
        body=resource.read_bytes(),
        content_type=types.get(suffix, "application/octet-stream"),
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
