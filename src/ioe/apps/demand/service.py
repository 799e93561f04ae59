"""The Demand Management app on a node: its plug, its feed, its settings, its claims.

A device node started with ``--demand-prices`` runs :class:`~ioe.apps.demand.runner.DemandApp`
on its own device (the plug), through the app host port (:class:`ioe.apps.host.AppHost`): the
app reads the plug's power and sets its ``switch`` point, keeps its settings and history in the
host's settings, and publishes ``demand.tick`` / ``demand.alert`` signals. Its page and state
are served by :mod:`ioe.apps.demand.routes`.

**Rewards.** A plug started with ``--demand-rewarder AGENT`` settles each closed off-period: it
commits one ``ReductionClaim`` per off interval (:func:`~ioe.apps.demand.claims.
reduction_claims`), waits until they are published, and names them to the rewarder
(:mod:`ioe.apps.demand.rewarder`), which attests and pays them and says what it paid for each.

**Valuation.** The app values each off interval by the network's value rules
(:meth:`AppHost.value_rules`), the same rules the rewarder's payments are made and validated
by, so what the page says was earned is what the wallet receives; it reads the wallet's balance
(:meth:`AppHost.balance_mc`) to show that too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ioe.apps.demand.claims import reduction_claims
from ioe.apps.demand.feed import open_feed
from ioe.apps.demand.rewarder import REWARDS_SERVICE
from ioe.apps.demand.rule import PeakSettings
from ioe.apps.demand.runner import DemandApp, OffPeriod
from ioe.apps.host import AppHost
from ioe.encoding import Value
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.value import Verification

log = logging.getLogger(__name__)

CLAIMS_KEY = "apps.demand.claims"
"""The plug's record of the reduction claims it made, by interval end."""
PAID_CLAIMS_KEY = "apps.demand.claims_paid"
"""What the rewarder said it paid for each claim (milli-credits, by claim hash)."""
CURRENCY_ZOME = "currency"
CLAIM_PUBLISH_S = 10.0
ALERTS_TOPIC = "demand.alerts"
"""Where the app posts its alerts in its app network (``docs/apps.md``)."""
REWARD_CALL_S = 180.0


@dataclass(frozen=True, slots=True)
class DemandSetup:
    """How a node runs the Demand Management app (``ioe device run --demand-*``)."""

    prices: str
    """A ``time,price`` CSV file, or a bundled recording by region name (``nsw1``, ``sa1``), or
    ``nemweb:REGION`` for AEMO's live 5-minute prices (:mod:`ioe.apps.demand.feed`)."""
    speed: float = 1.0
    """Replay pace: recorded intervals per real interval (300: 5 minutes a second)."""
    settings: dict[str, Value] | None = None
    """Settings to apply at start (else the stored ones, else the defaults)."""
    load_w: float | None = None
    """The appliance's load for the avoided energy; None: the plug's last measured power."""
    rewarder: AgentPubKey | None = None
    zone: str = "au/nsw"


SETTING_KEYS = frozenset({"prices", "speed", "rewarder", "zone", "load_w", "peak"})


def setup_from_settings(settings: dict[str, Any]) -> DemandSetup:
    """How the app runs when installed from the store: the installation's settings
    (``{"prices": "nsw1", "speed": 300, "rewarder": AGENT, "zone": "au/nsw", "load_w": 1100,
    "peak": {...PeakSettings}}``, every key optional). ``ValueError`` naming what is wrong."""
    unknown = set(settings) - SETTING_KEYS
    if unknown:
        raise ValueError(
            f"unknown demand settings {sorted(unknown)} (known: {sorted(SETTING_KEYS)})"
        )
    prices = settings.get("prices", "nsw1")
    speed = settings.get("speed", 1.0)
    zone = settings.get("zone", "au/nsw")
    load_w = settings.get("load_w")
    peak = settings.get("peak")
    if not isinstance(prices, str) or not isinstance(zone, str):
        raise ValueError("prices and zone are text")
    if not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0:
        raise ValueError("speed is a positive number")
    if load_w is not None and (not isinstance(load_w, int | float) or load_w < 0):
        raise ValueError("load_w is a non-negative number")
    if peak is not None and not isinstance(peak, dict):
        raise ValueError("peak is an object of the app's peak settings")
    rewarder = None
    if settings.get("rewarder") is not None:
        rewarder = AgentPubKey.from_text(str(settings["rewarder"]))
    return DemandSetup(
        prices=prices,
        speed=float(speed),
        settings=peak,
        load_w=None if load_w is None else float(load_w),
        rewarder=rewarder,
        zone=zone,
    )


class HostPlug:
    """The app's plug: the host's device."""

    def __init__(self, host: AppHost) -> None:
        self.host = host

    async def power_w(self) -> float:
        power = (await self.host.read_device()).get("power_w", 0.0)
        return float(power) if isinstance(power, int | float) else 0.0

    async def set_on(self, on: bool) -> None:
        await self.host.write_device("switch", on)


class DemandService:
    """The app attached to a running node (see the module docstring)."""

    def __init__(self, host: AppHost, setup: DemandSetup) -> None:
        self.host = host
        self.setup = setup
        self.app: DemandApp | None = None
        self._posting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if not self.host.has_device:
            raise ValueError("the demand app runs on a device node (a plug)")
        feed, info = open_feed(self.setup.prices, self.setup.speed)
        settings = None
        if self.setup.settings:
            settings = PeakSettings.from_value({**PeakSettings().to_value(), **self.setup.settings})
        self.app = DemandApp(
            feed=feed,
            feed_info=info,
            plug=HostPlug(self.host),
            store=self.host,
            publish=self._publish,
            settle=self._settle if self.setup.rewarder is not None else None,
            settings=settings,
            load_w=self.setup.load_w,
            verification=Verification.METER_ATTESTED
            if self.setup.rewarder is not None
            else Verification.DEVICE_SIGNED,
            zone=self.setup.zone,
            symbol=self.host.currency_symbol(),
            rules=self.host.value_rules(),
            balance=self.host.balance_mc,
        )
        await self.app.start()

    async def close(self) -> None:
        if self.app is not None:
            await self.app.close()
        for task in list(self._posting):
            task.cancel()

    def _publish(self, name: str, payload: dict[str, Any]) -> None:
        """A tick or alert for the page; an alert also goes to the community's app network
        (when the app was installed from the store), so the other members see it."""
        self.host.signal("demand", name, payload)
        if name == "demand.alert" and payload.get("alert"):
            task = asyncio.create_task(self._post(payload))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        try:
            await self.host.post_to_app(ALERTS_TOPIC, payload)
        except Exception as exc:  # a note lost is no reason to stop the plug
            log.info("demand alert not posted to the app network: %s", exc)

    async def _settle(self, period: OffPeriod) -> int | None:
        """Claim the period's reductions on this device's chain (one claim per off interval,
        kept so a retry claims nothing twice), wait until they are published, then ask the
        rewarder to attest and pay them. Once every claim is paid: the milli-credits paid for
        them (remembered claim by claim, so a period paid over several tries adds up); None
        while some are not."""
        assert self.app is not None and self.setup.rewarder is not None
        decisions = self.app.history_between(period.start_us, period.end_us)
        payloads = reduction_claims(
            decisions, interval_s=self.app.feed_info.interval_s, zone=self.setup.zone
        )
        if not payloads:
            return 0
        stored = self.host.get_setting(CLAIMS_KEY)
        made: dict[str, Value] = dict(stored) if isinstance(stored, dict) else {}
        hashes: list[str] = []
        for payload in payloads:
            key = str(payload["end_us"])
            if key not in made:
                claim = await self.host.call_zome(CURRENCY_ZOME, "claim_reduction", payload)
                assert isinstance(claim, ActionHash)
                made[key] = claim.to_text()
                self.host.put_setting(CLAIMS_KEY, made)
            hashes.append(str(made[key]))
        claims = [ActionHash.from_text(h) for h in hashes]
        if not await self.host.wait_published(claims, timeout_s=CLAIM_PUBLISH_S):
            log.info("claims not yet held by their authorities; asking for the reward anyway")
        result = await self.host.remote_call(
            self.setup.rewarder,
            REWARDS_SERVICE,
            "claim",
            {"claims": list[Value](hashes)},
            timeout_s=REWARD_CALL_S,
        )
        if not isinstance(result, dict):
            return None
        paid = self._keep_paid(result.get("claims", []))
        if result.get("paid") != len(hashes):
            return None
        return sum(paid.get(h, 0) for h in hashes)

    def _keep_paid(self, items: object) -> dict[str, int]:
        """Keep what the rewarder says it paid per claim; all that is known so far."""
        stored = self.host.get_setting(PAID_CLAIMS_KEY)
        paid: dict[str, int] = {}
        if isinstance(stored, dict):
            paid = {k: v for k, v in stored.items() if isinstance(v, int)}
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            if not item.get("paid"):
                log.warning("reward refused for %s: %s", item.get("claim"), item.get("reason"))
                continue
            amount = item.get("credits_mc")
            if isinstance(item.get("claim"), str) and type(amount) is int:
                paid[item["claim"]] = amount
        self.host.put_setting(PAID_CLAIMS_KEY, dict[str, Value](paid))
        return paid
