"""The live Demand Management app (``ioe.apps.demand.runner``) against fake ports, and the
rewarder's checks of what a plug claims (``ioe.apps.demand.claims``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.apps.demand.claims import claim_hashes, reduction_claims, reduction_problem
from ioe.apps.demand.report import summarize
from ioe.apps.demand.rule import PeakSettings, decide_all
from ioe.apps.demand.runner import DemandApp, FeedInfo, OffPeriod, resume_notice
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash
from ioe.market_data import PricePoint
from ioe.zomes.currency.entries import ReductionClaim
from ioe.zomes.currency.rewards import demand_reduction_reward_mc, need_index_from_cents
from ioe.zomes.currency.value import ValueRules, Verification

US = 1_000_000
START_US = 1_673_919_300 * US
STEP_S = 300
LOAD_W = 1200.0  # 100 Wh per 5-minute interval, exactly
NEM = dt.timezone(dt.timedelta(hours=10))


class FakePlug:
    def __init__(self) -> None:
        self.on = True
        self.writes: list[bool] = []

    async def power_w(self) -> float:
        return LOAD_W if self.on else 0.0

    async def set_on(self, on: bool) -> None:
        self.on = on
        self.writes.append(on)


class FakeStore:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get_setting(self, key: str) -> Any:
        return self.values.get(key)

    def put_setting(self, key: str, value: Any) -> None:
        self.values[key] = value


def points(prices: Iterable[float]) -> list[PricePoint]:
    return [PricePoint(START_US + (i + 1) * STEP_S * US, p) for i, p in enumerate(prices)]


async def fed(
    items: list[PricePoint], gate: asyncio.Event | None = None
) -> AsyncIterator[PricePoint]:
    for item in items:
        yield item
    if gate is not None:
        await gate.wait()


def make_app(
    feed: AsyncIterator[PricePoint],
    store: FakeStore | None = None,
    settle: Any = None,
    settings_: PeakSettings | None = None,
    pace_s: float = 3600.0,
) -> tuple[DemandApp, FakePlug, FakeStore, list[tuple[str, dict[str, Any]]]]:
    plug = FakePlug()
    store = store or FakeStore()
    events: list[tuple[str, dict[str, Any]]] = []
    app = DemandApp(
        feed=feed,
        feed_info=FeedInfo("test", interval_s=STEP_S, pace_s=pace_s),
        plug=plug,
        store=store,
        publish=lambda name, payload: events.append((name, payload)),
        settle=settle,
        settings=settings_,
        load_w=LOAD_W,
    )
    return app, plug, store, events


# flat, a peak of six intervals, flat again
PRICES = [100.0] * 14 + [400.0] * 6 + [100.0] * 10
RULE = PeakSettings(threshold_pct=30, min_off_minutes=0, min_on_minutes=0, max_off_minutes=0)


async def run_through(app: DemandApp, items: list[PricePoint]) -> None:
    for item in items:
        await app.on_price(item)


def test_the_live_app_switches_exactly_as_the_rule_and_accounts_as_the_report() -> None:
    async def main() -> None:
        items = points(PRICES)
        app, plug, _store, events = make_app(fed([]), settings_=RULE)
        await app.start()
        await run_through(app, items)
        await app.close()
        expected = decide_all(RULE, items, STEP_S)
        # the switch follows the rule's decisions, written only when they change
        states = [True]
        for decision in expected:
            if decision.on != states[-1]:
                states.append(decision.on)
        assert plug.writes == states
        assert [d["on"] for d in app.state()["prices"]] == [d.on for d in expected]
        totals = summarize(expected, load_w=LOAD_W, interval_s=STEP_S)
        report = app.report()
        assert report["off_intervals"] == totals.off_intervals == 6
        assert report["credits_mc"] == totals.credits_mc > 0
        assert math.isclose(report["kwh_avoided"], totals.kwh_avoided)
        assert math.isclose(report["cost_avoided"], totals.cost_avoided, rel_tol=1e-9)
        periods = app.state()["off_periods"]
        assert len(periods) == 1 and periods[0]["end"] is not None
        assert any(name == "demand.tick" for name, _ in events)

    asyncio.run(main())


def test_a_threshold_change_is_stored_and_takes_effect_at_the_next_interval() -> None:
    async def main() -> None:
        store = FakeStore()
        app, plug, _, _ = make_app(fed([]), store=store, settings_=RULE)
        items = points(PRICES)
        await run_through(app, items[:14])
        app.update_settings({"threshold_pct": 500})  # 400 is no longer a peak over 100
        await run_through(app, items[14:])
        assert plug.writes == []  # never switched off
        assert app.report()["off_intervals"] == 0
        with pytest.raises(ValueError, match="threshold_pct"):
            app.update_settings({"threshold_pct": -5})
        # a restart on the same store keeps the threshold and the history
        again, _, _, _ = make_app(fed([]), store=store)
        assert again.settings.threshold_pct == 500
        assert again.report()["intervals"] == len(items)

    asyncio.run(main())


def test_garbage_from_the_feed_leaves_the_plug_on_with_an_alert() -> None:
    async def main() -> None:
        items = points(PRICES[:16])  # ends inside the peak: the plug is off
        bad = PricePoint(items[-1].end_us + STEP_S * US, math.nan)
        gate = asyncio.Event()
        app, plug, _, events = make_app(fed([*items, bad], gate), settings_=RULE)
        await app.start()
        async with asyncio.timeout(10):
            while app.alert is None:
                await asyncio.sleep(0.01)
        assert plug.on is True
        assert "bad data" in (app.alert or "")
        assert ("demand.alert", {"alert": app.alert}) in events
        # good data clears the alert
        await app.on_price(PricePoint(bad.end_us + STEP_S * US, 100.0))
        assert app.alert is None
        gate.set()
        await app.close()

    asyncio.run(main())


def test_a_feed_that_ends_or_goes_quiet_leaves_the_plug_on() -> None:
    async def main() -> None:
        items = points(PRICES[:16])
        app, plug, _, _ = make_app(fed(items), settings_=RULE)
        await app.start()
        async with asyncio.timeout(10):
            while app.alert is None:
                await asyncio.sleep(0.01)
        assert app.alert == "the price feed ended" and plug.on
        await app.close()

        gate = asyncio.Event()
        quiet, plug2, _, _ = make_app(fed(items, gate), settings_=RULE, pace_s=0.05)
        await quiet.start()
        async with asyncio.timeout(10):
            while quiet.alert is None:
                await asyncio.sleep(0.01)
        assert "stopped" in (quiet.alert or "") and plug2.on
        assert quiet.state()["feed"]["status"] == "stale"
        gate.set()
        await quiet.close()

    asyncio.run(main())


def test_the_running_app_settles_in_the_background_while_the_feed_goes_on() -> None:
    async def main() -> None:
        release = asyncio.Event()
        paid: list[OffPeriod] = []

        async def slow_settle(period: OffPeriod) -> int:
            await release.wait()  # a meter that takes its time
            paid.append(period)
            return period.credits_mc

        items = points(PRICES)
        app, _, _, _ = make_app(fed(items), settle=slow_settle, settings_=RULE)
        await app.start()
        async with asyncio.timeout(10):
            while app.report()["intervals"] < len(items):  # the feed is not held up
                await asyncio.sleep(0.01)
        assert paid == [] and app.report()["credits_mc"] > 0
        release.set()
        async with asyncio.timeout(10):
            while app.report()["settled_mc"] < app.report()["credits_mc"]:
                await asyncio.sleep(0.01)
        assert sum(p.credits_mc for p in paid) == app.report()["credits_mc"]
        await app.close()

    asyncio.run(main())


def test_a_restart_on_the_same_replay_decides_and_counts_nothing_twice() -> None:
    async def run_once(store: FakeStore) -> dict[str, Any]:
        app, _, _, _ = make_app(fed(points(PRICES)), store=store, settings_=RULE)
        await app.start()
        async with asyncio.timeout(10):
            while app.alert is None:  # the feed ended
                await asyncio.sleep(0.01)
        await app.close()
        return app.report()

    async def main() -> None:
        store = FakeStore()
        first = await run_once(store)
        assert first["intervals"] == len(PRICES) and first["credits_mc"] > 0
        again = await run_once(store)  # the same recording replayed from its start
        assert again == first

    asyncio.run(main())


def test_closed_off_periods_are_settled_once_and_a_failure_is_retried() -> None:
    async def main() -> None:
        paid: list[OffPeriod] = []
        fail = [True]

        async def settle(period: OffPeriod) -> int:
            if fail[0]:
                fail[0] = False
                raise ConnectionError("the meter did not answer")
            paid.append(period)
            return period.credits_mc

        app, _, _, _ = make_app(fed([]), settle=settle, settings_=RULE)
        peak_twice = PRICES + [400.0] * 3 + [100.0] * 3
        await run_through(app, points(peak_twice))
        assert paid == []  # the feed never waits for settling: it happens in the background
        assert await app.settle_closed() is False  # the meter did not answer
        assert app.report()["settled_mc"] == 0
        assert await app.settle_closed() is True
        assert await app.settle_closed() is True  # nothing twice
        assert len(paid) == 2
        assert sum(p.credits_mc for p in paid) == app.report()["credits_mc"]
        assert app.report()["settled_mc"] == app.report()["credits_mc"]
        assert all(p["settled"] for p in app.state()["off_periods"])

    asyncio.run(main())


def test_a_restart_says_where_it_resumes_on_the_page_and_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Replayed again from its start after a restart, the feed's intervals up to the last one
    decided are passed over; meanwhile the page and the log say so instead of a silent, frozen
    "starting". The first run decided up to 14:05 NEM time (30 intervals after 11:35). At the
    replay's first interval again (11:40), 29 more are to be skipped and the new one follows:
    30 intervals, 2 s apart here, are about 1 min."""
    items = points(PRICES)
    newer = PricePoint(items[-1].end_us + STEP_S * US, 100.0)
    gate = asyncio.Event()

    async def replayed() -> AsyncIterator[PricePoint]:
        yield items[0]
        await gate.wait()  # the replay takes its time to reach new intervals
        for item in [*items[1:], newer]:
            yield item
        await asyncio.Event().wait()  # and then goes on (no "feed ended" here)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        store = FakeStore()
        first, _, _, _ = make_app(fed([]), store=store, settings_=RULE)
        await run_through(first, items)
        again, _, _, _ = make_app(replayed(), store=store, settings_=RULE, pace_s=2.0)
        with caplog.at_level(logging.INFO, logger="ioe.apps.demand.runner"):
            await again.start()
            async with asyncio.timeout(10):
                while again.notice is None:
                    await asyncio.sleep(0.01)
            resuming = again.state()
            gate.set()
            async with asyncio.timeout(10):
                while again.report()["intervals"] == len(items):
                    await asyncio.sleep(0.01)
        resumed = again.state()
        await again.close()
        return resuming, resumed

    resuming, resumed = asyncio.run(main())
    expected = (
        "resuming after 14:05 (market time), where the last run stopped: 30 intervals already"
        " decided are skipped; first new decision in about 1 min"
    )
    assert resuming["notice"] == expected
    assert resuming["plug"]["reason"] == "resuming"
    assert expected in caplog.text
    assert "resumed at the interval ending 14:10, after skipping 30" in caplog.text
    # decided again (the rule's trailing window starts afresh after a restart)
    assert resumed["notice"] is None and resumed["plug"]["reason"] == "no average yet"
    assert resumed["report"]["intervals"] == len(items) + 1


def test_the_resume_notice_worked_by_hand() -> None:
    """Decided up to 18:30; the replay restarts at 12:05, one interval a second: 12:05 to
    18:30 is 78 intervals already decided (77 still to come after 12:05), and the first new
    one, 18:35, arrives 78 s later."""
    end = dt.datetime(2023, 1, 18, 18, 30, tzinfo=NEM)
    start = dt.datetime(2023, 1, 18, 12, 5, tzinfo=NEM)
    notice = resume_notice(
        decided_end_us=int(end.timestamp()) * US,
        point_end_us=int(start.timestamp()) * US,
        skipped=1,
        interval_s=300,
        pace_s=1.0,
        utc_offset_s=36_000,
    )
    assert notice == (
        "resuming after 18:30 (market time), where the last run stopped: 78 intervals already"
        " decided are skipped; first new decision in about 1 min 18 s"
    )
    live = resume_notice(  # a live feed (5 minutes a point) just behind: 2 intervals away
        decided_end_us=int(end.timestamp()) * US,
        point_end_us=int(end.timestamp()) * US - 300 * US,
        skipped=1,
        interval_s=300,
        pace_s=300.0,
        utc_offset_s=36_000,
    )
    assert live.endswith(
        "2 intervals already decided are skipped; first new decision in about 10 min"
    )


def test_what_was_paid_is_kept_apart_from_what_the_rule_earned() -> None:
    """The rewarder's word on what it paid is what the page calls paid, period by period,
    even when it is not what the plug's rule earned: here it pays 500 mc for the first off
    period and 300 mc for the second (made-up amounts no valuation gives); a third period is
    still waiting."""

    async def main() -> DemandApp:
        amounts = [500, 300, None]

        async def settle(period: OffPeriod) -> int | None:
            return amounts.pop(0)

        balance = [2000]

        async def read_balance() -> int:
            return balance[0]

        plug = FakePlug()
        app = DemandApp(
            feed=fed([]),
            feed_info=FeedInfo("test", interval_s=STEP_S, pace_s=3600.0),
            plug=plug,
            store=FakeStore(),
            publish=lambda _n, _p: None,
            settle=settle,
            settings=RULE,
            load_w=LOAD_W,
            balance=read_balance,
        )
        await app.refresh_balance()
        three_peaks = PRICES + [400.0] * 3 + [100.0] * 3 + [400.0] * 3 + [100.0] * 3
        await run_through(app, points(three_peaks))
        assert await app.settle_closed() is False  # the third is not paid yet
        balance[0] = 2800
        await app.refresh_balance()
        return app

    app = asyncio.run(main())
    report = app.report()
    periods = app.state()["off_periods"]
    assert [p["paid_mc"] for p in periods] == [500, 300, None]
    assert [p["settled"] for p in periods] == [True, True, False]
    assert report["settled_mc"] == 800 and report["settled_credits"] == 0.8
    assert report["credits_mc"] == sum(p["credits_mc"] for p in periods) != 800
    assert (report["periods_paid"], report["periods_to_pay"]) == (2, 3)
    assert report["balance_mc"] == 2800 and report["balance"] == "2.800 CPC"
    assert app.state()["wallet"] == {"balance_mc": 2800, "balance": "2.800 CPC", "problem": None}


def test_periods_earned_before_the_plug_had_a_rewarder_are_valued_as_the_rewarder_pays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tutorial's order: the app runs first with nobody rewarding the plug (its periods are
    valued on its own signed readings), then again with a site meter, which pays them as
    attested, worth more. The restarted app values the periods not paid yet as it now runs, so
    what it says each earned is what the meter pays; periods already paid keep their figures."""

    def app_on(store: FakeStore, verification: Verification, settle: Any = None) -> DemandApp:
        return DemandApp(
            feed=fed([]),
            feed_info=FeedInfo("test", interval_s=STEP_S, pace_s=3600.0),
            plug=FakePlug(),
            store=store,
            publish=lambda _n, _p: None,
            settle=settle,
            settings=RULE,
            load_w=LOAD_W,
            verification=verification,
        )

    def meter_value(period: OffPeriod, app: DemandApp) -> int:
        claims = reduction_claims(
            app.history_between(period.start_us, period.end_us), interval_s=STEP_S, zone="au/nsw"
        )
        return sum(
            demand_reduction_reward_mc(
                ValueRules(),
                avoided_wh=c["avoided_wh"],
                need_index=need_index_from_cents(c["price_cents"], c["average_cents"]),
                verification=Verification.METER_ATTESTED,
                zone="au/nsw",
            )
            for c in claims
        )

    async def main() -> None:
        store = FakeStore()
        alone = app_on(store, Verification.DEVICE_SIGNED)
        await run_through(alone, points(PRICES))
        earned_alone = alone.report()["credits_mc"]
        assert earned_alone > 0

        paid: list[int] = []

        async def meter(period: OffPeriod) -> int:
            paid.append(meter_value(period, rewarded))
            return paid[-1]

        rewarded = app_on(store, Verification.METER_ATTESTED, settle=meter)
        assert rewarded.report()["credits_mc"] > earned_alone  # attested is worth more
        # a restarted rule has no average yet: an hour of flat prices, then a second peak
        later = points([*PRICES, *[100.0] * 12, *[400.0] * 3, *[100.0] * 3])[len(PRICES) :]
        await run_through(rewarded, later)
        assert await rewarded.settle_closed() is True
        report = rewarded.report()
        assert len(paid) == 2
        assert report["settled_mc"] == sum(paid) == report["credits_mc"]
        periods = rewarded.state()["off_periods"]
        assert [p["paid_mc"] for p in periods] == [p["credits_mc"] for p in periods]
        assert "paid into the wallet" not in caplog.text

        # paid periods are not valued again: a restart without the meter changes nothing
        again = app_on(store, Verification.DEVICE_SIGNED)
        assert again.report()["credits_mc"] == report["credits_mc"]

    caplog.set_level(logging.WARNING, logger="ioe.apps.demand.runner")
    asyncio.run(main())


def test_stop_deciding_leaves_the_figures_as_they_are_and_still_settles() -> None:
    """The demo's end: no interval is decided after it, while a closed period is still paid."""

    async def main() -> None:
        gate = asyncio.Event()
        paid: list[OffPeriod] = []

        async def settle(period: OffPeriod) -> int:
            await gate.wait()
            paid.append(period)
            return period.credits_mc

        more = asyncio.Event()
        items = points([*PRICES, *[100.0] * 20])

        async def feed() -> AsyncIterator[PricePoint]:
            for item in items[: len(PRICES)]:
                yield item
            await more.wait()
            for item in items[len(PRICES) :]:
                yield item

        app, _, _, _ = make_app(feed(), settle=settle, settings_=RULE)
        await app.start()
        async with asyncio.timeout(10):
            while app.report()["intervals"] < len(PRICES):
                await asyncio.sleep(0.01)
        await app.stop_deciding()
        more.set()
        gate.set()
        async with asyncio.timeout(10):
            while not paid:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert app.report()["intervals"] == len(PRICES)
        assert app.report()["settled_mc"] == app.report()["credits_mc"] > 0
        await app.close()

    asyncio.run(main())


def test_a_wallet_that_cannot_be_read_is_said_and_changes_nothing_else() -> None:
    async def main() -> DemandApp:
        async def no_wallet() -> int:
            raise PermissionError("app 'demand' was not granted trade (the wallet)")

        app = DemandApp(
            feed=fed([]),
            feed_info=FeedInfo("test", interval_s=STEP_S),
            plug=FakePlug(),
            store=FakeStore(),
            publish=lambda _n, _p: None,
            settings=RULE,
            load_w=LOAD_W,
            balance=no_wallet,
        )
        await app.refresh_balance()
        await run_through(app, points(PRICES))
        return app

    app = asyncio.run(main())
    wallet = app.state()["wallet"]
    assert wallet["balance"] is None and "not granted trade" in wallet["problem"]
    assert app.report()["off_intervals"] == 6


# ------------------------------------------------------------------------------ the rewarder

ZONE = "au/nsw"


def _claimed_app() -> DemandApp:
    async def main() -> DemandApp:
        app = DemandApp(
            feed=fed([]),
            feed_info=FeedInfo("test", interval_s=STEP_S),
            plug=FakePlug(),
            store=FakeStore(),
            publish=lambda _n, _p: None,
            settings=RULE,
            load_w=LOAD_W,
            verification=Verification.METER_ATTESTED,
            zone=ZONE,
        )
        await run_through(app, points(PRICES))
        return app

    return asyncio.run(main())


def _claims(app: DemandApp) -> list[dict[str, Any]]:
    period = app._history.off_periods[0]
    decisions = app.history_between(period.start_us, period.end_us)
    return reduction_claims(decisions, interval_s=STEP_S, zone=ZONE)


def test_an_off_period_is_claimed_interval_by_interval_and_the_rewards_add_up() -> None:
    """What the plug claims, priced by the currency's reward rule claim by claim (as the
    rewarder's payments and every validator price them), is what the app reported."""
    app = _claimed_app()
    period = app._history.off_periods[0]
    claims = _claims(app)
    assert len(claims) == 6 and all(c["avoided_wh"] == 100 for c in claims)
    assert [c["end_us"] - c["start_us"] for c in claims] == [STEP_S * US] * 6
    decoded = [ReductionClaim(**c) for c in claims]  # type: ignore[arg-type]
    assert all(reduction_problem(c) is None for c in decoded)
    rewards = [
        demand_reduction_reward_mc(
            ValueRules(),
            avoided_wh=c.avoided_wh,
            need_index=need_index_from_cents(c.price_cents, c.average_cents),
            verification=Verification.METER_ATTESTED,
            zone=c.zone,
        )
        for c in decoded
    ]
    assert sum(rewards) == period.credits_mc > 600  # a peak: more than par


def test_the_rewarder_pays_only_for_plausible_peaks() -> None:
    claim = ReductionClaim(**_claims(_claimed_app())[0])  # type: ignore[arg-type]
    assert reduction_problem(claim) is None
    for change, message in (
        ({"avoided_wh": 10_000}, "more than a plug draws"),
        ({"price_cents": claim.average_cents}, "above its average"),
        ({"start_us": claim.end_us - 10 * US}, "one market interval"),
        ({"start_us": claim.end_us - 7200 * US}, "one market interval"),
    ):
        assert message in (reduction_problem(replace(claim, **change)) or "")


def test_a_reward_request_names_claims_by_hash() -> None:
    one = ActionHash(bytes(32)).to_text()
    two = ActionHash(bytes([1]) * 32).to_text()
    assert claim_hashes({"claims": [one, two]}) == [
        ActionHash.from_text(one),
        ActionHash.from_text(two),
    ]
    for bad, message in (
        ({"claims": []}, "1 to"),
        ({"claims": [one, one]}, "once"),
        ({"claims": ["nope"]}, "action hash"),
        ({"claims": [one], "credits_mc": 5}, "a reward request is"),
        ([one], "a reward request is"),
    ):
        with pytest.raises(ZomeCallError, match=message):
            claim_hashes(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    json_values | st.fixed_dictionaries({"claims": st.lists(json_values | st.text(), max_size=4)})
)
def test_any_reward_request_from_a_peer_is_judged_without_crashing(payload: Any) -> None:
    """Whatever a peer sends, the rewarder gets a list of distinct claim hashes or a refusal."""
    try:
        hashes = claim_hashes(payload)
    except ZomeCallError:
        return
    assert 0 < len(hashes) == len(set(hashes)) and all(isinstance(h, ActionHash) for h in hashes)
