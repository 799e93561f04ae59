"""The Demand Management app on a node: its plug, its feed, its page, its rewards.

A device node started with ``--demand-prices`` runs :class:`~ioe.apps.demand.runner.DemandApp`
on its own device (the plug): the app reads the plug's power and sets its ``switch`` point
through the node's driver, keeps its settings and history in the node's settings table, and
publishes ``demand.tick`` / ``demand.alert`` events on the node's signal hub. Its page is served
at ``/app/demand/`` and its state at ``GET /v1/apps/demand`` (:func:`add_routes`).

**Rewards.** A node started with ``--demand-rewards`` (a site meter: a device enrolled as a
``monitor``) runs a :class:`DemandRewarder`: it answers ``demand_rewards.claim`` from any
member (an unrestricted grant it makes at start, as the wallet does for ``ledger_head``). A
plug started with ``--demand-rewarder AGENT`` settles each closed off-period in three steps,
all in the currency zome (``docs/currency.md``, Issuance and value):

1. the plug commits one ``ReductionClaim`` per off interval (energy avoided, the interval,
   the price and its average) and waits until the claims are published;
2. it names them to the meter, which fetches them from the network, checks them
   (:func:`reduction_problem`) and attests them (``ClaimAttestation``; as a site meter it may
   attest only its own owner's devices);
3. the meter pays each reward with a ``reward`` transfer citing its attestation; the amount is
   the currency's rule (``demand_reduction_reward_mc``), which the plug and every authority
   recompute. The credits then show in both wallets with their provenance.

The meter attests the energy the plug claims: it does not yet compare claims with its own
readings (see ``docs/demand-app.md``).
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
from ioe.dht.service import DnaNetwork
from ioe.drivers.sim.plug import PLUG_MAX_W
from ioe.encoding import Value
from ioe.engine.cell import Cell
from ioe.errors import IoEError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.market_data import BUNDLED_REGIONS, FeedError, PricePoint, bundled_prices, replay
from ioe.market_data.csv_feed import load_price_csv
from ioe.market_data.live import NEMWEB_DISPATCHIS_URL, fetch_latest_prices
from ioe.node.open_grant import ensure_open_grant
from ioe.node.resolve import prefetch, resolving
from ioe.zomes.currency.entries import ReductionClaim
from ioe.zomes.currency.rewards import (
    price_cents,
)
from ioe.zomes.currency.value import Verification

if TYPE_CHECKING:
    from ioe.node.runtime import Node

log = logging.getLogger(__name__)

REWARDS_SERVICE = "demand_rewards"
REWARDS_TAG = "demand-rewards"
PAID_KEY = "apps.demand.rewarded"
"""The rewarder's record of what it attested and paid, by claim."""
CLAIMS_KEY = "apps.demand.claims"
"""The plug's record of the reduction claims it made, by interval end."""
CURRENCY_ZOME = "currency"
MAX_CLAIM_INTERVALS = 288
CLAIM_PUBLISH_S = 10.0
ATTESTATION_PUBLISH_S = 10.0
REWARD_CALL_S = 180.0
LIVE_POLL_S = 30.0
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
        """Claim the period's reductions on this device's chain (one claim per off interval,
        kept so a retry claims nothing twice), wait until they are published, then ask the
        rewarder to attest and pay them. True once every claim is paid."""
        assert self.app is not None and self.setup.rewarder is not None
        decisions = self.app.history_between(period.start_us, period.end_us)
        payloads = reduction_claims(
            decisions, interval_s=self.app.feed_info.interval_s, zone=self.setup.zone
        )
        if not payloads:
            return True
        cell = self.node.wallet.cell()
        db = self.node.conductor.db
        stored = db.get_setting(CLAIMS_KEY)
        made: dict[str, str] = dict(stored) if isinstance(stored, dict) else {}
        hashes = []
        for payload in payloads:
            key = str(payload["end_us"])
            if key not in made:
                claim = self.node.conductor.call(cell, CURRENCY_ZOME, "claim_reduction", payload)
                assert isinstance(claim, ActionHash)
                made[key] = claim.to_text()
                db.put_setting(CLAIMS_KEY, made)
            hashes.append(made[key])
        dht = self.node.dnas[cell.dna.hash]
        claims = [ActionHash.from_text(h) for h in hashes]
        if not await dht.wait_published(claims, timeout_s=CLAIM_PUBLISH_S):
            log.info("claims not yet held by their authorities; asking for the reward anyway")
        result = await self.node.remote.call(
            cell,
            self.setup.rewarder,
            REWARDS_SERVICE,
            "claim",
            {"claims": hashes},
            timeout_s=REWARD_CALL_S,
        )
        if not isinstance(result, dict):
            return False
        for item in result.get("claims", []):
            if isinstance(item, dict) and not item.get("paid"):
                log.warning("reward refused for %s: %s", item.get("claim"), item.get("reason"))
        return result.get("paid") == len(hashes)


# ------------------------------------------------------------------------------ the rewarder


def reduction_claims(
    decisions: list[dict[str, Any]], *, interval_s: int, zone: str
) -> list[dict[str, Value]]:
    """The ``currency.claim_reduction`` payloads of an off-period: one per off interval that
    earned credits (energy avoided while the price stood above its average), priced as the
    market stood then (integer hundredths: the claim crosses the network as canonical CBOR,
    which has no floats)."""
    return [
        {
            "avoided_wh": int(d["wh"]),
            "zone": zone,
            "start_us": d["end_us"] - interval_s * 1_000_000,
            "end_us": d["end_us"],
            "price_cents": price_cents(d["price"]),
            "average_cents": price_cents(d["average"]),
        }
        for d in decisions
        if d["credits_mc"] > 0  # an interval at a peak (``report.interval_credits_mc``)
    ]


def claim_hashes(payload: Any) -> list[ActionHash]:
    """The claims a ``demand_rewards.claim`` request names (``{"claims": [action hash text,
    ...]}``, 1 to :data:`MAX_CLAIM_INTERVALS`, no repeats); ``ZomeCallError`` otherwise."""
    if not isinstance(payload, dict) or set(payload) != {"claims"}:
        raise ZomeCallError('a reward request is {"claims": [action hash, ...]}')
    raw = payload["claims"]
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_CLAIM_INTERVALS:
        raise ZomeCallError(f"a reward request names 1 to {MAX_CLAIM_INTERVALS} claims")
    hashes = []
    for item in raw:
        try:
            hashes.append(ActionHash.from_text(item) if isinstance(item, str) else None)
        except ValueError:
            hashes.append(None)
    if None in hashes:
        raise ZomeCallError("each claim is named by its action hash (text)")
    if len(set(hashes)) != len(hashes):
        raise ZomeCallError("a claim is named once")
    return [h for h in hashes if h is not None]


def reduction_problem(claim: ReductionClaim) -> str | None:
    """Why this rewarder does not pay for ``claim``, or None. Beyond what validation checks:
    a claim covers one market interval, no more energy than a 16 A plug draws in it, at a
    price above its average (a peak)."""
    duration_s = (claim.end_us - claim.start_us) // 1_000_000
    if not 60 <= duration_s <= 3600:
        return "a claim covers one market interval (1 to 60 minutes)"
    most_wh = int(PLUG_MAX_W * duration_s // 3600)
    if claim.avoided_wh > most_wh:
        return f"{claim.avoided_wh} Wh is more than a plug draws in {duration_s} s ({most_wh})"
    if claim.price_cents <= claim.average_cents:
        return "a reduction is rewarded only while the price is above its average"
    return None


class DemandRewarder:
    """Pays demand-reduction rewards to plugs that claim them (see the module docstring).

    For each claim named by a plug: fetch it from the network; check it is the caller's and
    worth paying (:func:`reduction_problem`); attest it as this site meter
    (``currency.attest``, meter-attested, all the claimed energy); once the attestation is
    published, pay the reward the currency's rule gives, citing the attestation. What was
    attested and paid is kept (setting :data:`PAID_KEY`), so a repeated request pays
    nothing twice."""

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

    def _done(self) -> dict[str, dict[str, str]]:
        found = self.node.conductor.db.get_setting(PAID_KEY)
        return dict(found) if isinstance(found, dict) else {}

    def _keep(self, key: str, **values: str) -> None:
        done = self._done()
        done[key] = {**done.get(key, {}), **values}
        self.node.conductor.db.put_setting(PAID_KEY, done)

    async def serve(self, function: str, payload: Value, caller: AgentPubKey) -> object:
        if function != "claim":
            raise ZomeCallError(f"the {REWARDS_SERVICE} service has no function {function!r}")
        hashes = claim_hashes(payload)
        async with self._lock:
            cell = self.node.wallet.cell()
            dht = self.node.dnas[cell.dna.hash]
            results: dict[ActionHash, dict[str, Any]] = {}
            claims: dict[ActionHash, ReductionClaim] = {}
            attested: list[ActionHash] = []
            for claim_hash in hashes:
                try:
                    claims[claim_hash], fresh = await self._attest(cell, dht, claim_hash, caller)
                except (ZomeCallError, ValidationError) as exc:
                    results[claim_hash] = {"paid": False, "reason": str(exc)}
                    continue
                if fresh is not None:
                    attested.append(fresh)
            if attested:  # the plug's node fetches them to judge the rewards
                await dht.wait_published(attested, timeout_s=ATTESTATION_PUBLISH_S)
            for claim_hash, claim in claims.items():
                results[claim_hash] = await self._pay(claim_hash, claim, caller)
        items = [{"claim": h.to_text(), **results[h]} for h in hashes]
        return {
            "paid": sum(1 for item in items if item["paid"]),
            "credits_mc": sum(int(item.get("credits_mc", 0)) for item in items),
            "claims": items,
        }

    async def _attest(
        self, cell: Cell, dht: DnaNetwork, claim_hash: ActionHash, caller: AgentPubKey
    ) -> tuple[ReductionClaim, ActionHash | None]:
        """The claim, checked, and this meter's attestation of it if made now (None: made
        before)."""
        await prefetch(dht, [claim_hash])
        record = dht.store.get_record(claim_hash)
        claim = None if record is None else cell.entry_value(record)
        if record is None or not isinstance(claim, ReductionClaim):
            raise ZomeCallError(f"no reduction claim {claim_hash.short()} on the network")
        if record.action.author != caller:
            raise ZomeCallError("a reward is claimed by the device that reduced")
        problem = reduction_problem(claim)
        if problem:
            self.node.reputation.reduction_judged(caller, claim_hash, delivered=False)
            raise ZomeCallError(problem)
        if "attestation" in self._done().get(claim_hash.to_text(), {}):
            return claim, None
        attestation = await resolving(
            dht,
            lambda: self.node.conductor.call(cell, CURRENCY_ZOME, "attest", {"claim": claim_hash}),
        )
        assert isinstance(attestation, ActionHash)
        self._keep(claim_hash.to_text(), attestation=attestation.to_text())
        self.node.reputation.reduction_judged(caller, claim_hash, delivered=True)
        return claim, attestation

    async def _pay(
        self, claim_hash: ActionHash, claim: ReductionClaim, caller: AgentPubKey
    ) -> dict[str, Any]:
        done = self._done().get(claim_hash.to_text(), {})
        if "payment" in done:
            return {"paid": True, "again": True}
        provenance = {
            "energy_wh": claim.avoided_wh,
            "source": "grid_mix",
            "clean": True,  # energy not drawn burns nothing
            "origin_zone": claim.zone,
            "trust": "meter_attested",
            "claim": claim_hash,
        }
        attestation = ActionHash.from_text(done["attestation"])
        terms = {"reward": "demand_reduction", "cites": attestation}
        try:
            payment = await self.node.wallet.pay(
                caller,
                None,  # the currency's rule prices it
                kind="reward",
                provenance=provenance,
                terms=terms,
                memo="demand reduction at a price peak",
            )
        except (TimeoutError, IoEError) as exc:
            log.warning("reward for %s not paid: %s", claim_hash.short(), exc)
            return {"paid": False, "reason": str(exc)}
        self._keep(claim_hash.to_text(), payment=payment.action_hash.to_text())
        return {"paid": True, "credits_mc": payment.transfer.amount_mc}


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
