"""Reputation: the fold over observed events, its bounds and monotonicity, and signed claims."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.errors import EncodingError
from ioe.identity.reputation import (
    BAD,
    DAY_US,
    FACTORY_DEFAULT_REPUTATION,
    GOOD,
    MAX_SCORE,
    MIN_SCORE,
    NEUTRAL_SCORE,
    EventKind,
    Observation,
    ReputationClaim,
    ReputationPolicy,
    claim_problem,
    faded,
    reputation_policy_problem,
    score,
)

ME = KeyPair(b"\x01" * 32)
THEM = KeyPair(b"\x02" * 32).agent
ELSE = KeyPair(b"\x03" * 32).agent
NOW = 1_800_000_000_000_000
HALF = FACTORY_DEFAULT_REPUTATION.half_life_us


def seen(kind: EventKind, age_us: int = 0, subject=THEM) -> Observation:
    return Observation(subject, kind, NOW - age_us)


def test_an_unknown_agent_is_neutral() -> None:
    assert score(THEM, [], NOW) == NEUTRAL_SCORE
    assert score(THEM, [seen(EventKind.WARRANT_UPHELD, subject=ELSE)], NOW) == NEUTRAL_SCORE


def test_good_events_raise_and_bad_events_lower() -> None:
    assert score(THEM, [seen(EventKind.COMMITMENT_KEPT)], NOW) == 1010
    assert score(THEM, [seen(EventKind.DR_DELIVERED)], NOW) == 1020
    assert score(THEM, [seen(EventKind.COMMITMENT_BROKEN)], NOW) == 940
    assert score(THEM, [seen(EventKind.DR_MISSED)], NOW) == 960
    assert score(THEM, [seen(EventKind.WARRANT_UPHELD)], NOW) == 400


def test_scores_are_clamped() -> None:
    assert score(THEM, [seen(EventKind.WARRANT_UPHELD)] * 3, NOW) == MIN_SCORE
    assert score(THEM, [seen(EventKind.DR_DELIVERED)] * 100, NOW) == MAX_SCORE


def test_events_fade_with_age() -> None:
    warrant = EventKind.WARRANT_UPHELD
    assert score(THEM, [seen(warrant, HALF)], NOW) == 700
    assert score(THEM, [seen(warrant, HALF // 2)], NOW) == 550
    assert score(THEM, [seen(warrant, 3 * HALF)], NOW) == 925
    assert score(THEM, [seen(warrant, 100 * HALF)], NOW) == NEUTRAL_SCORE
    assert score(THEM, [seen(warrant, -DAY_US)], NOW) == 400  # from the future: no fading
    assert faded(-600, 0, HALF) == -600 and faded(-600, HALF, HALF) == -300


def test_the_owner_sets_the_weights() -> None:
    strict = ReputationPolicy({EventKind.DR_MISSED: -500}, start=800)
    assert score(THEM, [seen(EventKind.DR_MISSED)], NOW, strict) == 300
    assert score(THEM, [seen(EventKind.DR_DELIVERED)], NOW, strict) == 800  # unweighted


@pytest.mark.parametrize(
    "policy",
    [
        ReputationPolicy({EventKind.WARRANT_UPHELD: 10}),
        ReputationPolicy({EventKind.COMMITMENT_KEPT: -1}),
        ReputationPolicy({EventKind.DR_MISSED: -5000}),
        ReputationPolicy({}, start=2001),
        ReputationPolicy({}, half_life_us=0),
    ],
)
def test_bad_policies_are_refused(policy: ReputationPolicy) -> None:
    assert reputation_policy_problem(policy) is not None
    with pytest.raises(ValueError):
        score(THEM, [], NOW, policy)


events = st.lists(
    st.tuples(st.sampled_from(list(EventKind)), st.integers(0, 400 * DAY_US)), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(events, st.sampled_from(sorted(GOOD)), st.sampled_from(sorted(BAD)), st.integers(0, 10**9))
def test_scores_are_bounded_and_monotone_in_good_and_bad_events(
    history: list, good: EventKind, bad: EventKind, age: int
) -> None:
    observations = [seen(kind, age_us) for kind, age_us in history]
    base = score(THEM, observations, NOW)
    assert MIN_SCORE <= base <= MAX_SCORE
    assert score(THEM, [*observations, seen(good, age)], NOW) >= base
    assert score(THEM, [*observations, seen(bad, age)], NOW) <= base
    # and an event counts less the older it is
    fresher = score(THEM, [*observations, seen(bad, age // 2)], NOW)
    assert fresher <= score(THEM, [*observations, seen(bad, age)], NOW)


def test_a_signed_claim_verifies_and_round_trips() -> None:
    claim = ReputationClaim.make(ME, THEM, [seen(EventKind.DR_DELIVERED)] * 2, NOW)
    assert claim.score == 1040 and claim.basis == {"dr_delivered": 2}
    assert claim_problem(claim) is None
    assert ReputationClaim.from_bytes(claim.to_bytes()) == claim


def test_tampered_forged_and_self_claims_are_refused() -> None:
    claim = ReputationClaim.make(ME, THEM, [seen(EventKind.DR_DELIVERED)], NOW)
    assert "not signed" in str(claim_problem(dataclasses.replace(claim, score=2000)))
    assert "not signed" in str(claim_problem(dataclasses.replace(claim, subject=ELSE)))
    assert "not signed" in str(claim_problem(dataclasses.replace(claim, claimant=ELSE)))
    selfie = ReputationClaim.make(ME, ME.agent, [], NOW)
    assert "itself" in str(claim_problem(selfie))


@pytest.mark.parametrize(
    "change", [{"score": 2001}, {"basis": {"gossip": 1}}, {"basis": {"dr_missed": -1}}]
)
def test_malformed_claims_do_not_decode(change: dict) -> None:
    claim = dataclasses.replace(ReputationClaim.make(ME, THEM, [], NOW), **change)
    with pytest.raises(EncodingError):
        ReputationClaim.from_bytes(claim.to_bytes())
    assert claim_problem(claim) is not None
