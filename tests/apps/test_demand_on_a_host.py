"""The demand app's network half (the plug's claims, the meter's rewarder) run against the app
host port in memory (``ioe.testing.app_host``): no node, the same code a node runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ioe.apps.demand.rewarder import PAID_KEY, REWARDS_SERVICE, DemandRewarder
from ioe.apps.demand.runner import OffPeriod
from ioe.apps.demand.service import CLAIMS_KEY, DemandService, DemandSetup
from ioe.apps.host import AppHost, FetchedRecord
from ioe.crypto.keys import KeyPair
from ioe.encoding import Value
from ioe.hashing import ActionHash, AgentPubKey
from ioe.testing.app_host import MemoryAppHost
from ioe.zomes.currency.entries import ReductionClaim
from ioe.zomes.currency.value import ValueRules

PLUG = KeyPair(bytes([1]) * 32).agent
METER = KeyPair(bytes([2]) * 32).agent
STRANGER = KeyPair(bytes([3]) * 32).agent
T0 = 1_673_919_300_000_000
FIVE_MIN_US = 300_000_000
REWARD_MC = 120  # what the host's "rules" give each reward, so sums can be checked by hand


def peak(i: int, wh: int = 100) -> ReductionClaim:
    start = T0 + i * FIVE_MIN_US
    return ReductionClaim(wh, "au/nsw", start, start + FIVE_MIN_US, 40_000, 10_000)


def meter_host() -> MemoryAppHost:
    host = MemoryAppHost(METER, price_mc=lambda terms: REWARD_MC)

    def attest(payload: Any) -> ActionHash:
        assert set(payload) == {"claim"}
        return host.new_hash()

    host.zome_functions[("currency", "attest")] = attest
    return host


def record(host: MemoryAppHost, author: AgentPubKey, claim: ReductionClaim) -> str:
    action = host.new_hash()
    host.records[action] = FetchedRecord(action, author, claim)
    return action.to_text()


def test_the_memory_host_is_an_app_host() -> None:
    host: AppHost = MemoryAppHost(PLUG)  # mypy checks the port; this checks it at run time too
    assert host.agent == PLUG and host.has_device is False


def test_the_rewarder_attests_and_pays_each_plausible_claim_once() -> None:
    host = meter_host()
    rewarder = DemandRewarder(host)
    rewarder.start()
    assert host.services[REWARDS_SERVICE][0] == ("claim",)
    good = [record(host, PLUG, peak(i)) for i in range(3)]
    greedy = record(host, PLUG, peak(3, wh=10_000))  # more than 16 A draws in five minutes
    theirs = record(host, STRANGER, peak(4))

    async def ask() -> Any:
        request: Value = {"claims": [*good, greedy, theirs]}
        return await host.call_service(PLUG, REWARDS_SERVICE, "claim", request)

    first = asyncio.run(ask())
    assert first["paid"] == 3
    assert first["credits_mc"] == 3 * REWARD_MC
    by_claim = {item["claim"]: item for item in first["claims"]}
    assert "more than a plug draws" in by_claim[greedy]["reason"]
    assert by_claim[theirs]["reason"] == "a reward is claimed by the device that reduced"
    assert [p.to for p in host.payments] == [PLUG] * 3
    assert all(p.kind == "reward" and p.amount_mc == REWARD_MC for p in host.payments)
    assert [c for c in host.calls if c[1] == "attest"] == [
        ("currency", "attest", {"claim": ActionHash.from_text(h)}) for h in good
    ]
    # each cites its own attestation, as the currency's rules require
    cited = [p.terms["cites"] for p in host.payments]  # type: ignore[index]
    assert len(set(cited)) == 3
    assert host.observations == [
        *[(PLUG, ActionHash.from_text(h), True) for h in good],
        (PLUG, ActionHash.from_text(greedy), False),
    ]

    again = asyncio.run(ask())  # the plug asks again (its answer was lost): nothing twice
    assert again["paid"] == 3 and again["credits_mc"] == 0
    # ... and it is told, claim by claim, what was paid before
    assert [item.get("credits_mc") for item in again["claims"][:3]] == [REWARD_MC] * 3
    assert len(host.payments) == 3
    assert len([c for c in host.calls if c[1] == "attest"]) == 3
    assert set(host.settings[PAID_KEY]) == set(good)  # type: ignore[arg-type]


def test_a_refused_payment_is_paid_later_on_the_same_attestation() -> None:
    host = meter_host()
    DemandRewarder(host).start()
    claim = record(host, PLUG, peak(0))
    host.refuse_payments = "locked by another session"

    async def ask() -> Any:
        return await host.call_service(PLUG, REWARDS_SERVICE, "claim", {"claims": [claim]})

    refused = asyncio.run(ask())
    assert refused["paid"] == 0 and "locked by another session" in refused["claims"][0]["reason"]
    host.refuse_payments = None
    paid = asyncio.run(ask())
    assert paid["paid"] == 1 and paid["credits_mc"] == REWARD_MC
    assert len([c for c in host.calls if c[1] == "attest"]) == 1


def test_only_the_opened_function_answers_other_agents() -> None:
    host = meter_host()
    DemandRewarder(host).start()
    with pytest.raises(Exception, match="not open"):
        asyncio.run(host.call_service(PLUG, REWARDS_SERVICE, "drain", {}))


def test_a_plug_claims_each_interval_once_even_when_the_meter_is_away() -> None:
    """The plug's side: claims are made and kept before the meter is asked, so a retry after
    the meter failed to answer claims nothing twice, and the rewarder pays each claim once."""
    meter = meter_host()
    DemandRewarder(meter).start()
    plug = MemoryAppHost(PLUG, device={"power_w": 1200.0, "switch": True})

    def claim_reduction(payload: Any) -> ActionHash:
        claim = ReductionClaim(**payload)
        action = plug.new_hash()
        meter.records[action] = FetchedRecord(action, PLUG, claim)  # published to the network
        return action

    plug.zome_functions[("currency", "claim_reduction")] = claim_reduction
    away = [True]

    async def meter_node(zome: str, function: str, payload: Value) -> object:
        if away[0]:
            raise ConnectionError("the meter did not answer")
        return await meter.call_service(PLUG, zome, function, payload)

    plug.remote_agents[METER] = meter_node
    service = DemandService(plug, DemandSetup("nsw1", rewarder=METER))
    decisions = [
        {
            "end_us": T0 + (i + 1) * FIVE_MIN_US,
            "wh": 100,
            "credits_mc": 50,
            "price": 400.0,
            "average": 100.0,
        }
        for i in range(4)
    ]
    decisions.append({**decisions[-1], "end_us": T0 + 9 * FIVE_MIN_US, "credits_mc": 0})

    class History:  # the one part of the running app that settling reads
        feed_info = type("Info", (), {"interval_s": 300})()

        @staticmethod
        def history_between(start_us: int, end_us: int) -> list[dict[str, Any]]:
            return decisions

    service.app = History()  # type: ignore[assignment]
    period = OffPeriod(T0, T0 + 9 * FIVE_MIN_US, wh_avoided=400, credits_mc=200)
    with pytest.raises(ConnectionError):
        asyncio.run(service._settle(period))
    assert len(plug.settings[CLAIMS_KEY]) == 4  # type: ignore[arg-type]  # no credit, no claim
    away[0] = False
    # paid: what the meter's rules gave each of the four claims (not the plug's 50 each)
    assert asyncio.run(service._settle(period)) == 4 * REWARD_MC
    assert len([c for c in plug.calls if c[1] == "claim_reduction"]) == 4
    assert len(meter.payments) == 4 and {p.to for p in meter.payments} == {PLUG}
    # asked again (say its answer was lost), the meter pays nothing twice and the plug still
    # knows what the period was paid
    assert asyncio.run(service._settle(period)) == 4 * REWARD_MC
    assert len(meter.payments) == 4


# Value rules unlike the defaults, so a valuation by the defaults cannot pass for them:
# locality 1200 ‰ on the own site, demand +500 ‰ per 1000 of need up to 1500 ‰, device-signed
# readings trusted at 900 ‰.
NETWORK_RULES = ValueRules(
    locality_pm=(1200, 1100, 1000, 950, 900),
    demand_slope_pm=500,
    demand_max_pm=1500,
    trust_pm=(500, 900, 1250, 1300),
)


def test_the_app_values_a_reduction_by_the_network_s_rules(tmp_path: Path) -> None:
    """The plug's own valuation uses the rules the network pays by (``AppHost.value_rules``),
    not the defaults, so the page's "earned" is what the wallet would receive.

    Worked by hand: an hour at $100/MWh, then one interval at $400: its trailing average is
    100, 400 > 1.3 × 100, so the plug (1200 W) is off for 5 minutes and avoids 100 Wh. The need
    index is (400 − 100) / 100 = 3 → clamped to 1000 ‰; the demand factor 1000 + 1000 × 500 /
    1000 = 1500 ‰ (the maximum). Clean (1000 ‰) × own site (1200 ‰) × demand (1500 ‰) ×
    device-signed (900 ‰) × reputation (1000 ‰): 100 Wh × 1.2 × 1.5 × 0.9 = 162 mc. (By the
    defaults it would be 100 × 1.1 × 1.3 × 0.8 = 114 mc.) The cost avoided: 0.1 kWh at
    $400/MWh = $0.04."""
    prices = tmp_path / "prices.csv"
    rows = [100.0] * 12 + [400.0] + [100.0] * 3
    first = dt.datetime(2023, 1, 18, 10, 5, tzinfo=dt.timezone(dt.timedelta(hours=10)))
    lines = [f"{(first + dt.timedelta(minutes=5 * i)).isoformat()},{p}" for i, p in enumerate(rows)]
    prices.write_text("\n".join(["time,price", *lines]) + "\n")
    host = MemoryAppHost(
        PLUG, device={"power_w": 1200.0, "switch": True}, rules=NETWORK_RULES, balance=651
    )
    instant = {"threshold_pct": 30, "min_off_minutes": 0, "min_on_minutes": 0}
    setup = DemandSetup(str(prices), speed=300_000, settings=instant, load_w=1200.0)
    service = DemandService(host, setup)

    async def run() -> dict[str, Any]:
        await service.start()
        assert service.app is not None
        async with asyncio.timeout(10):
            while service.app.alert != "the price feed ended":
                await asyncio.sleep(0.01)
        state = service.app.state()
        await service.close()
        return state

    state = asyncio.run(run())
    assert [p["on"] for p in state["prices"]] == [True] * 12 + [False] + [True] * 3
    assert state["credits_mc"] == 162
    assert state["off_periods"][0]["credits_mc"] == 162
    assert state["cost_avoided"] == pytest.approx(0.04)
    assert state["feed"]["price_unit"] == "$/MWh"
    assert state["wallet"]["balance"] == "0.651 kWh-c"
    assert state["rewarded"] is False and state["off_periods"][0]["paid_mc"] is None
