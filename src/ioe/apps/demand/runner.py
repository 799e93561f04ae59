"""The Demand Management app, live: a price feed in, the plug's switch out, credits earned.

The rule is :mod:`ioe.apps.demand.rule` (pure); this module runs it against the world through
small ports, so the same code drives a simulated plug in the demo, a real Tasmota or Shelly plug
through its driver, and the tests:

- ``feed``: an async iterator of :class:`~ioe.market_data.PricePoint` (a live NEMWeb fetcher, a
  replay of recorded prices, a CSV file);
- ``plug``: reads the plug's power and sets its switch (the node's device driver);
- ``store``: the node's settings table, where the settings, the recent intervals, the
  off-periods and the totals are kept (so a restart keeps the threshold and the history);
- ``publish``: the node's signal hub (the web page's live updates);
- ``settle``: pays out an off-period's demand-reduction credits (the node's wallet, through the
  rewarder — see :mod:`ioe.apps.demand.service`) and says how much was paid, or None when
  nobody rewards this plug;
- ``balance``: reads the wallet's balance, so the page shows what actually arrived.

Two figures of credits are kept apart because they can differ: what the plug **earned by the
rule** (its own valuation of each off interval, by the network's value rules handed in as
``rules``) and what was **paid into the wallet** (what the rewarder reports it paid, per off
period). With the same rules on both sides they agree claim by claim; a difference means the
rules or the claims differ, and the page shows it instead of hiding it.

Safety first: a feed that stops, ends or sends garbage leaves the plug **on** (the appliance
keeps running; the app never keeps a load off on data it cannot trust) and raises an alert
until good prices arrive again. The switch is written only when the decision changes, and once
at start so the plug and the app agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from ioe.apps.demand.report import avoided_wh, interval_credits_mc
from ioe.apps.demand.rule import Decision, PeakSettings, initial_state, safe_decision, step
from ioe.market_data import PricePoint
from ioe.zomes.currency.ledger import format_mc
from ioe.zomes.currency.value import ValueRules, Verification

log = logging.getLogger(__name__)

SETTINGS_KEY = "apps.demand.settings"
HISTORY_KEY = "apps.demand.history"
KEEP_INTERVALS = 288
"""Intervals kept for the page's chart: a day of 5-minute prices."""
KEEP_OFF_PERIODS = 200
SETTLE_RETRY_S = 2.0
SETTLE_RETRY_MAX_S = 60.0
STALE_INTERVALS = 3
"""A feed silent for this many intervals (at its pace) has stopped."""
BALANCE_REFRESH_S = 10.0
"""How often the wallet's balance is read again (other payments move it too)."""
MONEY_SIGNS = {"AUD": "$", "NZD": "$", "USD": "$", "EUR": "€", "GBP": "£"}

Settle = Callable[["OffPeriod"], Awaitable[int | None]]
"""Pays an off-period's credits: the milli-credits the rewarder paid into the wallet for it
once every claim of it is paid, None while some are not (tried again later)."""


class Plug(Protocol):
    async def power_w(self) -> float: ...

    async def set_on(self, on: bool) -> None: ...


class Store(Protocol):
    def get_setting(self, key: str) -> Any: ...

    def put_setting(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class OffPeriod:
    start_us: int
    """The start of the first off interval."""
    end_us: int | None
    """The end of the last off interval; None while the plug is still off."""
    wh_avoided: int
    credits_mc: int
    """Earned by the rule: the plug's own valuation of the period's off intervals."""
    settled: bool = False
    paid_mc: int | None = None
    """Paid into the wallet for the period, as the rewarder reported it (None: not yet)."""


@dataclass(frozen=True, slots=True)
class FeedInfo:
    source: str
    interval_s: int = 300
    utc_offset_s: int = 36_000
    """How interval times are shown (NEM time is UTC+10)."""
    pace_s: float = 300.0
    """Real seconds between points as the feed delivers them (the interval, or less in a
    replay), for spotting a stopped feed."""
    region: str | None = None
    """The market region the prices are for (``NSW1``), when known."""
    currency: str = "AUD"
    """The money prices are in, per MWh (the NEM's: Australian dollars)."""

    @property
    def money_sign(self) -> str:
        """How an amount of :attr:`currency` is written (``$`` for the NEM's dollars)."""
        return MONEY_SIGNS.get(self.currency, self.currency + " ")

    @property
    def price_unit(self) -> str:
        """The prices' unit, shown wherever a price is (``$/MWh``)."""
        return f"{self.money_sign.strip()}/MWh"


@dataclass(slots=True)
class _Totals:
    intervals: int = 0
    off_intervals: int = 0
    wh_avoided: int = 0
    cost_avoided: float = 0.0
    credits_mc: int = 0
    settled_mc: int = 0


@dataclass(slots=True)
class _History:
    decisions: list[dict[str, Any]] = field(default_factory=list)
    off_periods: list[OffPeriod] = field(default_factory=list)
    totals: _Totals = field(default_factory=_Totals)


def _iso(end_us: int, offset_s: int) -> str:
    zone = timezone(timedelta(seconds=offset_s))
    return datetime.fromtimestamp(end_us / 1e6, UTC).astimezone(zone).isoformat()


def _stored_period(value: dict[str, Any]) -> OffPeriod:
    """An off period as stored; one settled before paid amounts were kept counts as paid what
    it earned (what the app then counted as settled)."""
    period = OffPeriod(**value)
    if period.settled and period.paid_mc is None:
        return replace(period, paid_mc=period.credits_mc)
    return period


def _duration(seconds: float) -> str:
    """``75`` → ``"1 min 15 s"``, ``5400`` → ``"1 h 30 min"``: a wait as a person reads it."""
    whole = max(0, round(seconds))
    if whole >= 3600:
        hours, minutes = divmod(round(whole / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    minutes, secs = divmod(whole, 60)
    if minutes == 0:
        return f"{secs} s"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def resume_notice(
    *,
    decided_end_us: int,
    point_end_us: int,
    skipped: int,
    interval_s: int,
    pace_s: float,
    utc_offset_s: int,
) -> str:
    """What a restarted app tells while it skips the intervals its last run decided.

    A replay starts again from its first interval, and an interval is decided once, so after
    a restart the app passes over the feed's intervals up to ``decided_end_us`` (the last one
    decided) without a decision. Said plainly, that stretch looks like a frozen page; this says
    where the app resumes, how many intervals of the feed are passed over (``skipped`` so far,
    the one ending at ``point_end_us`` included, and those still to come) and about when the
    first new decision comes, at the feed's pace (``pace_s`` real seconds per interval)."""
    interval_us = interval_s * 1_000_000
    remaining = max(0, (decided_end_us - point_end_us) // interval_us)
    wait_s = (remaining + 1) * pace_s
    at = _iso(decided_end_us, utc_offset_s)[11:16]
    return (
        f"resuming after {at} (market time), where the last run stopped: "
        f"{skipped + remaining} intervals already decided are skipped; "
        f"first new decision in about {_duration(wait_s)}"
    )


class DemandApp:
    """One plug's Demand Management app (see the module docstring)."""

    def __init__(
        self,
        *,
        feed: AsyncIterator[PricePoint],
        feed_info: FeedInfo,
        plug: Plug,
        store: Store,
        publish: Callable[[str, dict[str, Any]], None],
        settle: Settle | None = None,
        settings: PeakSettings | None = None,
        load_w: float | None = None,
        verification: Verification = Verification.DEVICE_SIGNED,
        zone: str = "au/nsw",
        symbol: str = "CPC",
        monotonic: Callable[[], float] | None = None,
        rules: ValueRules | None = None,
        balance: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._feed = feed
        self.feed_info = feed_info
        self._plug = plug
        self._store = store
        self._publish = publish
        self._settle = settle
        self._balance = balance
        self._load_w = load_w
        self.verification = verification
        self.zone = zone
        self.symbol = symbol
        self.rules = rules or ValueRules()
        """The network's value rules: the app values each reduction as the rewarder pays it."""
        self._monotonic = monotonic or asyncio.get_running_loop().time
        stored = self._get(SETTINGS_KEY)
        if settings is not None:
            self.settings = settings
            self._put(SETTINGS_KEY, settings.to_value())
        elif stored is not None:
            self.settings = PeakSettings.from_value(stored)
        else:
            self.settings = PeakSettings()
        self._history = self._load_history()
        self._revalue_unpaid()
        self._state = initial_state()
        self.on = True
        self.reason = "starting"
        self.power = 0.0
        self._baseline_w: float | None = None
        self.alert: str | None = None
        self.feed_status = "ok"
        self._last_point_at: float | None = None
        self._last_end_us: int | None = None
        self.notice: str | None = None
        """What the app is doing that is not a decision (resuming after a restart)."""
        self.balance_mc: int | None = None
        self.balance_problem: str | None = None
        self._balance_read_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._settling: asyncio.Lock = asyncio.Lock()
        self._settle_wake = asyncio.Event()

    # ------------------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        await self._switch(True, "starting")
        await self.refresh_balance()
        self._tasks = [
            asyncio.create_task(self._follow_feed(), name="demand-feed"),
            asyncio.create_task(self._watch(), name="demand-watch"),
        ]
        if self._settle is not None:
            self._settle_wake.set()  # periods a previous run closed but did not settle
            self._tasks.append(asyncio.create_task(self._settler(), name="demand-settle"))

    async def close(self) -> None:
        await self._stop_tasks(lambda _task: True)

    async def stop_deciding(self) -> None:
        """Stop following the price feed, leaving the plug and every decision as they are;
        closed off-periods are still settled (the demo's end: its figures stop with its ticks,
        while the site meter pays what closed)."""
        await self._stop_tasks(lambda task: task.get_name() in {"demand-feed", "demand-watch"})

    async def _stop_tasks(self, which: Callable[[asyncio.Task[None]], bool]) -> None:
        stopping = [task for task in self._tasks if which(task)]
        for task in stopping:
            task.cancel()
        for task in stopping:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = [task for task in self._tasks if task not in stopping]

    # ------------------------------------------------------------------------------ settings

    def update_settings(self, changes: dict[str, Any]) -> PeakSettings:
        """Apply a subset of settings (``ValueError`` saying what is wrong); takes effect at the
        next interval and is stored at once."""
        if not isinstance(changes, dict) or not changes:
            raise ValueError("settings: give a map of the settings to change")
        merged = {**self.settings.to_value(), **changes}
        settings = PeakSettings.from_value(merged)
        self.settings = settings
        self._put(SETTINGS_KEY, settings.to_value())
        self._emit()
        return settings

    # ------------------------------------------------------------------------------ the loop

    async def _follow_feed(self) -> None:
        decided = self._history.decisions[-1]["end_us"] if self._history.decisions else None
        skipped = 0
        try:
            async for point in self._feed:
                self._last_point_at = self._monotonic()
                if decided is not None and point.end_us <= decided:
                    # already decided (a restart on the same replay, or a feed that repeats
                    # itself): decided and counted once, never again
                    skipped += 1
                    self._skipping(decided, point.end_us, skipped)
                    continue
                if skipped:
                    log.info(
                        "demand app: resumed at the interval ending %s, after skipping %d"
                        " already decided",
                        _iso(point.end_us, self.feed_info.utc_offset_s)[11:16],
                        skipped,
                    )
                    skipped = 0
                self.notice = None
                try:
                    await self.on_price(point)
                except ValueError as exc:
                    await self._to_safe_state(f"the price feed sent bad data: {exc}", "error")
        except Exception as exc:
            log.warning("price feed failed: %s", exc)
            await self._to_safe_state(f"the price feed failed: {exc}", "error")
            return
        await self._to_safe_state("the price feed ended", "stale")

    def _skipping(self, decided_end_us: int, point_end_us: int, skipped: int) -> None:
        """Tell the page and the log that a restart is passing over decided intervals."""
        info = self.feed_info
        self.notice = resume_notice(
            decided_end_us=decided_end_us,
            point_end_us=point_end_us,
            skipped=skipped,
            interval_s=info.interval_s,
            pace_s=info.pace_s,
            utc_offset_s=info.utc_offset_s,
        )
        self.reason = "resuming"
        if skipped == 1:
            # a warning, as a node logs only those unless --verbose: until the feed reaches new
            # intervals the app decides nothing, and whoever watches the plug should know why
            log.warning("demand app: %s", self.notice)
        self._emit()

    async def _watch(self) -> None:
        """Spot a feed that went quiet; sample the plug's power for the page; read the
        wallet's balance now and then."""
        period = max(0.05, min(1.0, self.feed_info.pace_s / 4))
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                self.power = float(await self._plug.power_w())
                if self.on and self.power > 0:
                    self._baseline_w = self.power
            read_at = self._balance_read_at
            if read_at is None or self._monotonic() - read_at >= BALANCE_REFRESH_S:
                await self.refresh_balance()
            if self._last_point_at is not None and self.feed_status == "ok":
                silent = self._monotonic() - self._last_point_at
                if silent > STALE_INTERVALS * self.feed_info.pace_s:
                    await self._to_safe_state(
                        f"the price feed stopped: nothing for {silent:.0f} s", "stale"
                    )

    async def on_price(self, point: PricePoint) -> Decision:
        """One interval's price: decide, switch, account, tell the page."""
        if not math.isfinite(point.price):
            raise ValueError(f"price {point.price!r} is not a number")
        interval_s = self.feed_info.interval_s
        state, decision = step(self.settings, self._state, point.end_us, point.price, interval_s)
        self._state = state
        self._last_end_us = point.end_us
        if self.alert is not None:
            self.alert = None
            self.feed_status = "ok"
            self._publish("demand.alert", {"alert": None})
        was_on = self.on
        await self._switch(decision.on, decision.reason)
        self._account(decision, was_on, interval_s)
        self._save_history()
        self._emit()
        if not was_on and decision.on:
            self._settle_wake.set()  # settled in the background: the feed never waits for it
        return decision

    async def _to_safe_state(self, why: str, status: str) -> None:
        if self.alert == why:
            return
        log.warning("demand app: %s; the plug stays on", why)
        self.alert = why
        self.notice = None  # whatever it said, the alert says what matters now
        self.feed_status = status
        # the rule restarts from "on": the minimum on time applies from here
        self._state, _ = safe_decision(self._state, self._last_end_us or 0, why)
        was_on = self.on
        await self._switch(True, "safe state: " + why)
        if not was_on:
            self._close_off_period(self._last_end_us)
            self._save_history()
            self._settle_wake.set()
        self._publish("demand.alert", {"alert": why})
        self._emit()

    async def _switch(self, on: bool, reason: str) -> None:
        self.reason = reason
        if on == self.on and reason != "starting":
            return
        try:
            await self._plug.set_on(on)
        except Exception as exc:
            log.warning("demand app could not switch the plug %s: %s", "on" if on else "off", exc)
            self.alert = f"the plug did not answer: {exc}"
            return
        self.on = on

    # ------------------------------------------------------------------------------ accounting

    def _load(self) -> float:
        if self._load_w is not None:
            return self._load_w
        return self._baseline_w or 0.0

    def _account(self, decision: Decision, was_on: bool, interval_s: int) -> None:
        history = self._history
        totals = history.totals
        totals.intervals += 1
        off = not decision.on
        wh = 0
        credits = 0
        if off:
            load = self._load()
            wh = avoided_wh(load, interval_s)
            credits = interval_credits_mc(
                decision,
                avoided_wh=wh,
                verification=self.verification,
                zone=self.zone,
                rules=self.rules,
            )
            totals.off_intervals += 1
            totals.wh_avoided += wh
            totals.cost_avoided += load * interval_s / 3600 / 1e6 * decision.price
            totals.credits_mc += credits
            start = decision.end_us - interval_s * 1_000_000
            if was_on or not history.off_periods or history.off_periods[-1].end_us is not None:
                history.off_periods.append(OffPeriod(start, None, wh, credits))
            else:
                last = history.off_periods[-1]
                history.off_periods[-1] = replace(
                    last, wh_avoided=last.wh_avoided + wh, credits_mc=last.credits_mc + credits
                )
            del history.off_periods[:-KEEP_OFF_PERIODS]
        elif not was_on:
            self._close_off_period(decision.end_us - interval_s * 1_000_000)
        history.decisions.append(
            {
                "end_us": decision.end_us,
                "price": decision.price,
                "average": decision.average,
                "threshold": decision.threshold,
                "on": decision.on,
                "reason": decision.reason,
                "wh": wh,
                "credits_mc": credits,
            }
        )
        del history.decisions[:-KEEP_INTERVALS]

    def _revalue_unpaid(self) -> None:
        """Value the off periods not paid yet as this run does (its verification, zone and
        value rules), since a rewarder pays them as they stand when they are settled: a period
        earned while nobody rewarded the plug was valued on the plug's own signed readings, and
        a site meter given later pays it as attested, which is worth more. A period whose
        intervals are no longer all kept stays as it was."""
        history = self._history
        interval_s = self.feed_info.interval_s
        changed = False
        for index, period in enumerate(history.off_periods):
            if period.settled:
                continue
            decisions = self.history_between(period.start_us, period.end_us)
            first_end_us = period.start_us + interval_s * 1_000_000
            if not decisions or decisions[0]["end_us"] != first_end_us:
                continue
            if period.end_us is not None and len(decisions) != round(
                (period.end_us - period.start_us) / (interval_s * 1_000_000)
            ):
                continue
            credits = 0
            for item in decisions:
                decision = Decision(
                    item["end_us"],
                    item["price"],
                    item["average"],
                    item["threshold"],
                    item["on"],
                    item["reason"],
                    interval_s,
                )
                item["credits_mc"] = interval_credits_mc(
                    decision,
                    avoided_wh=item["wh"],
                    verification=self.verification,
                    zone=self.zone,
                    rules=self.rules,
                )
                credits += item["credits_mc"]
            if credits != period.credits_mc:
                history.totals.credits_mc += credits - period.credits_mc
                history.off_periods[index] = replace(period, credits_mc=credits)
                changed = True
        if changed:
            self._save_history()

    def _close_off_period(self, end_us: int | None) -> None:
        periods = self._history.off_periods
        if periods and periods[-1].end_us is None:
            periods[-1] = replace(periods[-1], end_us=end_us or periods[-1].start_us)

    async def _settler(self) -> None:
        """Settle closed off-periods in the background: when one closes, and after a failure
        again, waiting :data:`SETTLE_RETRY_S` doubling up to :data:`SETTLE_RETRY_MAX_S`."""
        retry: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry):
                    await self._settle_wake.wait()
            self._settle_wake.clear()
            done = await self.settle_closed()
            await self.refresh_balance()  # what was paid shows in the wallet at once
            if done:
                retry = None  # nothing left: wait until a period closes
            else:
                retry = SETTLE_RETRY_S if retry is None else min(SETTLE_RETRY_MAX_S, retry * 2)

    async def settle_closed(self) -> bool:
        """Pay out every closed off-period not yet settled, in order; True when none is left
        (False: one failed, and it and the later ones wait for the next try). Each settled
        period keeps what the rewarder paid for it, which is what the page calls paid."""
        if self._settle is None:
            return True
        async with self._settling:
            pending = [
                p
                for p in self._history.off_periods
                if not p.settled and p.end_us is not None and p.credits_mc > 0
            ]
            for period in pending:
                try:
                    paid = await self._settle(period)
                except Exception as exc:
                    log.warning("demand credits not settled yet: %s", exc)
                    return False
                if paid is None:
                    return False
                if paid != period.credits_mc:
                    log.warning(
                        "demand app: the off period from %s earned %s by the rule but %s was"
                        " paid into the wallet (do the plug and the rewarder use the same value"
                        " rules?)",
                        _iso(period.start_us, self.feed_info.utc_offset_s),
                        format_mc(period.credits_mc, self.symbol),
                        format_mc(paid, self.symbol),
                    )
                periods = self._history.off_periods  # found again: it may have moved on
                for index, current in enumerate(periods):
                    if current.start_us == period.start_us:
                        periods[index] = replace(current, settled=True, paid_mc=paid)
                self._history.totals.settled_mc += paid
                self._save_history()
                self._emit()
        return True

    async def refresh_balance(self) -> None:
        """Read the wallet's balance for the page (kept as it was, with the reason, when it
        cannot be read: a wallet that is away is no reason to stop the plug)."""
        if self._balance is None:
            return
        self._balance_read_at = self._monotonic()
        found: int | None
        try:
            found = await self._balance()
        except Exception as exc:
            problem: str | None = str(exc) or type(exc).__name__
            found = self.balance_mc
        else:
            problem = None
        if (found, problem) != (self.balance_mc, self.balance_problem):
            if problem and problem != self.balance_problem:
                log.info("demand app: the wallet's balance cannot be read: %s", problem)
            self.balance_mc, self.balance_problem = found, problem
            self._emit()

    # ------------------------------------------------------------------------------ storage

    def _get(self, key: str) -> Any:
        """A stored value (JSON text: prices are floats, which canonical CBOR refuses)."""
        stored = self._store.get_setting(key)
        if not isinstance(stored, str):
            return None
        try:
            return json.loads(stored)
        except ValueError:
            log.warning("demand app: stored %s unreadable; using defaults", key)
            return None

    def _put(self, key: str, value: Any) -> None:
        self._store.put_setting(key, json.dumps(value, separators=(",", ":")))

    def _load_history(self) -> _History:
        stored = self._get(HISTORY_KEY)
        if not isinstance(stored, dict):
            return _History()
        try:
            totals = _Totals(**stored["totals"])
            periods = [_stored_period(p) for p in stored["off_periods"]]
            decisions = list(stored["decisions"])
        except (KeyError, TypeError):
            log.warning("demand app: stored history unreadable; starting afresh")
            return _History()
        return _History(decisions, periods, totals)

    def _save_history(self) -> None:
        history = self._history
        self._put(
            HISTORY_KEY,
            {
                "totals": asdict(history.totals),
                "off_periods": [asdict(p) for p in history.off_periods],
                "decisions": history.decisions,
            },
        )

    # ------------------------------------------------------------------------------ views

    def _money(self, amount_mc: int | None) -> str | None:
        return None if amount_mc is None else format_mc(amount_mc, self.symbol)

    def report(self) -> dict[str, Any]:
        """What the app did since it first ran (``ioe plug report``).

        ``credits`` is what the plug **earned by the rule** (its own valuation, by the
        network's value rules); ``settled_credits`` is what was **paid into the wallet** for
        the off periods settled so far (what the rewarder reported paying). They differ while
        periods wait to be paid (``periods_paid`` of ``periods_to_pay``), or when the two
        sides value a reduction differently. ``balance`` is the wallet's own figure, which
        other payments move too (None: not known here)."""
        totals = self._history.totals
        payable = [p for p in self._history.off_periods if p.end_us is not None and p.credits_mc]
        return {
            "intervals": totals.intervals,
            "off_intervals": totals.off_intervals,
            "hours_off": totals.off_intervals * self.feed_info.interval_s / 3600,
            "kwh_avoided": totals.wh_avoided / 1000,
            "cost_avoided": round(totals.cost_avoided, 6),
            "currency": self.feed_info.currency,
            "credits": totals.credits_mc / 1000,
            "credits_mc": totals.credits_mc,
            "settled_credits": totals.settled_mc / 1000,
            "settled_mc": totals.settled_mc,
            "periods_to_pay": len(payable),
            "periods_paid": sum(1 for p in payable if p.settled),
            "rewarded": self._settle is not None,
            "symbol": self.symbol,
            "balance_mc": self.balance_mc,
            "balance": self._money(self.balance_mc),
        }

    def history_between(self, start_us: int, end_us: int | None) -> list[dict[str, Any]]:
        """The stored intervals ending inside ``(start_us, end_us]`` (all after ``start_us``
        when ``end_us`` is None), oldest first."""
        return [
            d
            for d in self._history.decisions
            if d["end_us"] > start_us and (end_us is None or d["end_us"] <= end_us)
        ]

    def _feed_view(self) -> dict[str, Any]:
        info = self.feed_info
        return {
            "source": info.source,
            "status": self.feed_status,
            "region": info.region,
            "currency": info.currency,
            "money_sign": info.money_sign,
            "price_unit": info.price_unit,
            "interval_s": info.interval_s,
            "utc_offset_s": info.utc_offset_s,
        }

    def _period_view(self, period: OffPeriod) -> dict[str, Any]:
        offset = self.feed_info.utc_offset_s
        return {
            "start": _iso(period.start_us, offset),
            "end": None if period.end_us is None else _iso(period.end_us, offset),
            "kwh_avoided": period.wh_avoided / 1000,
            "credits_mc": period.credits_mc,
            "settled": period.settled,
            "paid_mc": period.paid_mc,
        }

    def state(self) -> dict[str, Any]:
        """What the page shows (``GET /v1/apps/demand``, and each ``demand.tick``)."""
        offset = self.feed_info.utc_offset_s
        totals = self._history.totals
        return {
            "settings": self.settings.to_value(),
            "plug": {"on": self.on, "power_w": self.power, "reason": self.reason},
            "notice": self.notice,
            "prices": [
                {
                    "time": _iso(d["end_us"], offset),
                    "end_us": d["end_us"],
                    "price": d["price"],
                    "average": d["average"],
                    "threshold": d["threshold"],
                    "on": d["on"],
                }
                for d in self._history.decisions
            ],
            "off_periods": [self._period_view(p) for p in self._history.off_periods],
            "symbol": self.symbol,
            "credits_mc": totals.credits_mc,
            "credits": format_mc(totals.credits_mc, self.symbol),
            "settled_mc": totals.settled_mc,
            "settled": format_mc(totals.settled_mc, self.symbol),
            "rewarded": self._settle is not None,
            "wallet": {
                "balance_mc": self.balance_mc,
                "balance": self._money(self.balance_mc),
                "problem": self.balance_problem,
            },
            "kwh_avoided": totals.wh_avoided / 1000,
            "cost_avoided": round(totals.cost_avoided, 4),
            "alert": self.alert,
            "report": self.report(),
            "feed": self._feed_view(),
        }

    def _emit(self) -> None:
        self._publish("demand.tick", self.state())
