"""A node's own view of other agents (``ioe.identity.service.reputation``): the bounded, durable
store of observations; the view under the owner's policy; observations from payments and warrants;
the co-signing minimum; signed claims found and weighed by another node."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import eventually
from ioe.apps.demand.rewarder import DemandRewarder
from ioe.cli.main import main
from ioe.conductor import DB_FILE
from ioe.crypto.keys import KeyPair
from ioe.engine.countersign_machine import PartyState, Phase, Verdict, VerdictKind
from ioe.engine.countersigning import SESSION_ID_BYTES, Preflight, Response
from ioe.engine.dht import publishable_ops
from ioe.engine.ports import ChainHead
from ioe.engine.records import Record, SignedAction
from ioe.errors import StoreError
from ioe.hashing import ActionHash, AgentPubKey, DnaHash
from ioe.identity.reputation import DAY_US, EventKind, ReputationClaim, score
from ioe.identity.service import reputation as rep
from ioe.identity.service.reputation import (
    MAX_DAYS,
    ReputationStore,
    changed_policy,
    load_policy,
    response_observation,
    save_policy,
    session_observations,
    weigh_claims,
)
from ioe.node.runtime import Node
from ioe.store.sqlite import SqliteDatabase
from ioe.wallet.service import PaymentError

NOW = 1_800_000_000_000_000
KEYS = [KeyPair(bytes([i]) * 32) for i in range(1, 5)]
A, B, C, D = (k.agent for k in KEYS)


def agent_of(node: Node) -> AgentPubKey:
    return node.conductor.owner_cell.agent


# ------------------------------------------------------------------------------- the store


def test_the_store_keeps_one_row_per_agent_kind_and_day(tmp_path: Path) -> None:
    with SqliteDatabase.open(tmp_path / "db") as db:
        store = ReputationStore(db)
        for minute in range(50):
            store.record(A, EventKind.COMMITMENT_KEPT, NOW + minute * 60_000_000)
        store.record(A, EventKind.WARRANT_UPHELD, NOW)
        rows = db._query("SELECT kind, count FROM reputation_events ORDER BY kind", ())
        day = NOW // DAY_US
        assert (NOW + 49 * 60_000_000) // DAY_US in (day, day + 1)
        assert sum(count for kind, count in rows if kind == "commitment_kept") == 50
        assert len(rows) <= 3
        assert len(store.observations(A)) == 51 and store.observations(B) == []


def test_the_store_is_bounded_per_agent_and_kind(tmp_path: Path) -> None:
    with SqliteDatabase.open(tmp_path / "db") as db:
        store = ReputationStore(db)
        store.record(A, EventKind.WARRANT_UPHELD, NOW)  # a rare kind is not pushed out
        for day in range(MAX_DAYS + 20):
            store.record(A, EventKind.COMMITMENT_KEPT, NOW + day * DAY_US)
        kept = [o for o in store.observations(A) if o.kind is EventKind.COMMITMENT_KEPT]
        assert len(kept) == MAX_DAYS
        assert min(o.at_us for o in kept) == NOW + 20 * DAY_US  # the oldest days went first
        assert [o.kind for o in store.observations(A)].count(EventKind.WARRANT_UPHELD) == 1


def test_the_store_forgets_the_agent_seen_least_recently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rep, "MAX_SUBJECTS", 2)
    with SqliteDatabase.open(tmp_path / "db") as db:
        store = ReputationStore(db)
        for i, agent in enumerate((A, B, C)):
            store.record(agent, EventKind.COMMITMENT_KEPT, NOW + i)
        assert set(store.subjects()) == {B, C}


def test_a_referenced_event_counts_once(tmp_path: Path) -> None:
    with SqliteDatabase.open(tmp_path / "db") as db:
        store = ReputationStore(db)
        assert store.record(A, EventKind.DR_MISSED, NOW, b"claim-1")
        assert not store.record(A, EventKind.DR_MISSED, NOW + 5, b"claim-1")
        assert store.record(A, EventKind.DR_MISSED, NOW, b"claim-2")
        assert store.record(B, EventKind.DR_MISSED, NOW, b"claim-1")  # another subject
        assert len(store.observations(A)) == 2


def test_observations_and_policy_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with SqliteDatabase.open(path) as db:
        store = ReputationStore(db)
        store.record(A, EventKind.COMMITMENT_KEPT, NOW)
        store.record(A, EventKind.COMMITMENT_BROKEN, NOW)
        policy = changed_policy(load_policy(db), weights={"commitment_kept": 50}, min_score=900)
        save_policy(db, policy)
        before = rep.view(db, NOW + DAY_US, A)
    with SqliteDatabase.open(path) as db:
        assert load_policy(db) == policy
        assert rep.view(db, NOW + DAY_US, A) == before
        assert before[0]["basis"]["commitment_kept"] == 1
        assert before[0]["score"] == 1000 + 49 - 59  # both a day old: faded by 1/60


EVENTS = st.lists(
    st.tuples(
        st.sampled_from([A, B]),
        st.sampled_from(list(EventKind)),
        st.integers(0, 400 * DAY_US),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(events=EVENTS, seed=st.randoms(use_true_random=False))
def test_recording_order_does_not_change_the_score(
    tmp_path_factory: pytest.TempPathFactory, events: list[Any], seed: Any
) -> None:
    shuffled = list(events)
    seed.shuffle(shuffled)
    scores = []
    for order in (events, shuffled):
        path = tmp_path_factory.mktemp("order") / "db"
        with SqliteDatabase.open(path) as db:
            store = ReputationStore(db)
            for agent, kind, at in order:
                store.record(agent, kind, NOW + at)
            seen = store.observations()
            scores.append([score(a, seen, NOW + 401 * DAY_US) for a in (A, B)])
            kinds = {(a, k) for a, k, _ in events}
            assert {(o.subject, o.kind) for o in seen} == kinds
    assert scores[0] == scores[1]


# ------------------------------------------------------------------------------- policy


def test_a_policy_is_checked_by_the_pure_rules() -> None:
    policy = rep.NodePolicy()
    with pytest.raises(ValueError, match="good events ≥ 0"):
        changed_policy(policy, weights={"commitment_kept": -5})
    with pytest.raises(ValueError, match="unknown event kind"):
        changed_policy(policy, weights={"charm": 5})
    with pytest.raises(ValueError, match="min_score"):
        changed_policy(policy, min_score=2001)
    with pytest.raises(ValueError, match="half-life"):
        changed_policy(policy, half_life_us=0)
    changed = changed_policy(policy, weights={"warrant_upheld": -2000}, min_score=0)
    assert changed.reputation.weights[EventKind.WARRANT_UPHELD] == -2000
    assert changed_policy(changed, clear_min_score=True).min_score is None


def test_claims_weigh_by_the_readers_view_of_each_claimant() -> None:
    seen = {A: 1000, B: 500, C: 0}

    def claim(keys: KeyPair, value: int, at: int) -> ReputationClaim:
        made = ReputationClaim.make(keys, D, [], NOW + at)
        return dataclasses.replace(made, score=value)  # (the signature is not checked here)

    weighed = weigh_claims(
        [
            claim(KEYS[0], 1600, 0),
            claim(KEYS[0], 1200, 5),
            claim(KEYS[1], 400, 1),
            claim(KEYS[2], 0, 2),
        ],
        seen.__getitem__,
    )
    by = {item["claimant"]: item for item in weighed["claims"]}
    assert len(by) == 3 and by[A.to_text()]["score"] == 1200  # only the newest per claimant
    assert by[B.to_text()]["weight_pm"] == 500 and by[C.to_text()]["weight_pm"] == 0
    assert weighed["weighted_score"] == (1000 * 1200 + 500 * 400) // 1500
    assert weigh_claims([claim(KEYS[2], 0, 0)], seen.__getitem__)["weighted_score"] is None


# ------------------------------------------------------------------------------- blame


def _session(parties: tuple[AgentPubKey, ...]) -> tuple[Preflight, list[Response]]:
    preflight = Preflight(
        session_id=os.urandom(SESSION_ID_BYTES),
        dna_hash=DnaHash.of(b"dna"),
        parties=parties,
        witness=None,
        entry_zome=0,
        entry_index=0,
        entry=b"\xa0",
        session_time_us=NOW,
        expires_us=NOW + 10_000_000,
    )
    head = ChainHead(3, ActionHash.of(b"head"), NOW - 1)
    keys = {k.agent: k for k in KEYS}
    return preflight, [Response.sign(keys[p], preflight, head) for p in parties]


def test_a_committed_session_credits_every_other_party_and_an_abandoned_one_nobody() -> None:
    preflight, responses = _session((A, B, C))
    committed = PartyState(preflight, responses[1], Phase.COMMITTED)
    assert session_observations(committed, Verdict(VerdictKind.SET)) == [
        (A, EventKind.COMMITMENT_KEPT),
        (C, EventKind.COMMITMENT_KEPT),
    ]
    abandoned = PartyState(preflight, responses[0], Phase.ABANDONED, reason="x")
    assert session_observations(abandoned, Verdict(VerdictKind.ABANDONED)) == []


def test_only_a_party_answering_with_a_bad_signature_is_blamed() -> None:
    preflight, responses = _session((A, B, C))
    assert response_observation(preflight, B, responses[1]) is None
    forged = dataclasses.replace(responses[1], signature=bytes(64))
    assert response_observation(preflight, B, forged) == (B, EventKind.COMMITMENT_BROKEN)
    assert response_observation(preflight, B, responses[2]) == (B, EventKind.COMMITMENT_BROKEN)
    assert response_observation(preflight, D, forged) is None  # not a party: not ours to judge


# ------------------------------------------------------------------------------- on nodes


def _fork(node: Node) -> None:
    """A second action at the head's sequence number, queued for publishing: a cheat."""
    cell = node.conductor.owner_cell
    head = cell.query()[-1]
    alt = dataclasses.replace(head.action, timestamp=head.action.timestamp + 1)
    signed = SignedAction.sign(alt, cell.keys)
    dht = node.dht_for(cell)
    dht.store.enqueue(publishable_ops(Record(signed, head.entry)), dht.clock())
    dht.notify_commit()


async def _api(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {node.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, node.api_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.mark.anyio
async def test_a_payment_credits_both_sides_and_a_warrant_sinks_the_cheat(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    await alice.wallet.pay(agent_of(bob), 1500, timeout_s=5)
    [about_bob] = alice.reputation.view()
    assert about_bob["agent"] == agent_of(bob).to_text()
    assert about_bob["basis"]["commitment_kept"] == 1
    assert 1000 < about_bob["score"] <= 1010  # +10, faded by the seconds since
    await eventually(lambda: bob.reputation.view(agent_of(alice))[0]["score"] > 1000)
    status, listed = await _api(alice, "GET", "/v1/reputation")
    assert status == 200 and listed == alice.reputation.view()
    _fork(bob)
    dht = alice.dht_for(alice.conductor.owner_cell)
    await eventually(lambda: dht.is_blocked(agent_of(bob)))
    status, found = await _api(alice, "GET", f"/v1/reputation/{agent_of(bob).to_text()}")
    assert status == 200 and found["basis"]["warrant_upheld"] == 1
    assert 1000 - 600 < found["score"] <= 1000 + 10 - 600


@pytest.mark.anyio
async def test_the_owners_policy_changes_the_score(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    await alice.wallet.pay(agent_of(bob), 100, timeout_s=5)
    path = f"/v1/reputation/{agent_of(bob).to_text()}"
    assert 1000 < (await _api(alice, "GET", path))[1]["score"] <= 1010
    status, policy = await _api(
        alice, "PUT", "/v1/reputation/policy", {"weights": {"commitment_kept": 250}}
    )
    assert status == 200 and policy["weights"]["commitment_kept"] == 250
    assert 1240 < (await _api(alice, "GET", path))[1]["score"] <= 1250
    status, refused = await _api(
        alice, "PUT", "/v1/reputation/policy", {"weights": {"commitment_kept": -1}}
    )
    assert status == 400 and "good events ≥ 0" in refused["error"]
    assert (await _api(alice, "GET", "/v1/reputation/policy"))[1] == policy


@pytest.mark.anyio
async def test_a_minimum_score_makes_the_node_refuse_to_co_sign(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    status, _ = await _api(bob, "PUT", "/v1/reputation/policy", {"min_score": 1005})
    assert status == 200
    with pytest.raises(
        PaymentError, match="your reputation here is 1000, below this node's minimum 1005"
    ):
        await alice.wallet.pay(agent_of(bob), 100, timeout_s=5)
    assert bob.wallet.balance().balance_mc == 0
    await bob.wallet.pay(agent_of(alice), 100, timeout_s=5)  # bob may still pay: alice accepts
    await eventually(lambda: bob.reputation.score_of(agent_of(alice)) >= 1005)
    await alice.wallet.pay(agent_of(bob), 50, timeout_s=5)  # now alice is above the minimum
    assert bob.wallet.balance().balance_mc == -50


@pytest.mark.anyio
async def test_a_published_claim_is_found_by_the_other_node_and_weighed(
    make_pair: Any,
) -> None:
    alice, bob = await make_pair()
    subject = agent_of(bob)
    await alice.wallet.pay(agent_of(bob), 100, timeout_s=5)
    status, published = await _api(alice, "POST", f"/v1/reputation/{subject.to_text()}/publish")
    assert status == 200 and 1000 < published["score"] <= 1010
    assert published["claimant"] == agent_of(alice).to_text()
    # bob reads what alice says about bob (itself): found on the network, weighed by its view
    # of alice (one kept commitment: a little above neutral, so a little over 1000 ‰).
    path = f"/v1/reputation/{subject.to_text()}/claims"

    async def found() -> dict[str, Any]:
        return (await _api(bob, "GET", path))[1]

    for _ in range(100):
        claims = await found()
        if claims["claims"]:
            break
        await asyncio.sleep(0.1)
    [claim] = claims["claims"]
    assert claim["claimant"] == agent_of(alice).to_text()
    assert claim["score"] == published["score"] and claim["at_us"] == published["at_us"]
    assert 1000 < claim["claimant_score"] <= 1010
    assert claim["weight_pm"] == claim["claimant_score"]  # per mille of neutral (1000)
    assert claims["weighted_score"] == published["score"]
    status, refused = await _api(
        alice, "POST", f"/v1/reputation/{agent_of(alice).to_text()}/publish"
    )
    assert status == 400 and "vouch for itself" in refused["error"]


@pytest.mark.anyio
async def test_an_implausible_reduction_claim_counts_as_missed_once(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    rewarder = DemandRewarder(alice.app_host)
    rewarder.start()
    start = bob.conductor.clock() - 400_000_000  # a period that has ended
    claim = bob.call(
        bob.conductor.owner_cell,
        "currency",
        "claim_reduction",
        {
            "avoided_wh": 10_000,  # more than a plug draws in five minutes
            "zone": "au/nsw",
            "start_us": start,
            "end_us": start + 300_000_000,
            "price_cents": 30_000,
            "average_cents": 10_000,
        },
    )
    assert isinstance(claim, ActionHash)
    for _ in range(2):  # the plug asks again: still one miss
        answer = await rewarder.serve("claim", {"claims": [claim.to_text()]}, agent_of(bob))
        assert answer["paid"] == 0  # type: ignore[index]
        assert "more than a plug draws" in answer["claims"][0]["reason"]  # type: ignore[index]
    [seen] = alice.reputation.view()
    assert seen["agent"] == agent_of(bob).to_text() and seen["basis"]["dr_missed"] == 1
    assert 1000 - 40 <= seen["score"] < 1000


def test_bookkeeping_failures_never_reach_the_observed_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqliteDatabase.open(tmp_path / "db") as db:
        node_view = rep.NodeReputation(db, lambda: NOW)

        def broken(*_: Any) -> bool:
            raise StoreError("disk full")

        monkeypatch.setattr(node_view.store, "record", broken)
        node_view.warrant_upheld(A)  # logged, not raised
        assert node_view.view() == []


def test_the_policy_command_checks_and_stores_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SqliteDatabase.open(tmp_path / DB_FILE).close()
    base = ["reputation", "policy", "--data-dir", str(tmp_path), "--json"]
    with pytest.raises(SystemExit, match="good events ≥ 0"):
        main([*base, "--weight", "dr_delivered=-3"])
    assert main([*base, "--weight", "dr_delivered=70", "--min-score", "900"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["weights"]["dr_delivered"] == 70 and shown["min_score"] == 900
    assert main([*base, "--no-min-score"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["weights"]["dr_delivered"] == 70 and shown["min_score"] is None
    assert main(["reputation", "show", "--data-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip()) == []
