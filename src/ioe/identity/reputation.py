"""Reputation: each agent's own view of the others, from behaviour it has seen validated.

:func:`score` folds :class:`Observation` s of one subject (a warrant upheld against it, a
commitment kept or broken, a demand-response event delivered or missed) into a per-mille score:
``start`` plus each event's weight (from the owner's :class:`ReputationPolicy`, or the factory
default), each weight fading with the event's age (halved every ``half_life_us``, linearly in
between), clamped to [0, 2000]. 1000 is "unknown / neutral". Good events never lower the score
and bad events never raise it.

An agent may publish its view as a signed :class:`ReputationClaim`; a claim is the claimant's
opinion, worth what the reader's own view of the claimant is worth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.hashing import AgentPubKey
from ioe.identity import wire

CLAIM_CONTEXT = b"ioe/identity/reputation/v1"
CLAIM_VERSION = 1
MAX_CLAIM_BYTES = 1024
MIN_SCORE = 0
NEUTRAL_SCORE = 1000
MAX_SCORE = 2000
MAX_WEIGHT = 2000
DAY_US = 86_400 * 1_000_000


class EventKind(StrEnum):
    WARRANT_UPHELD = "warrant_upheld"
    COMMITMENT_KEPT = "commitment_kept"
    COMMITMENT_BROKEN = "commitment_broken"
    DR_DELIVERED = "dr_delivered"
    DR_MISSED = "dr_missed"


GOOD = frozenset({EventKind.COMMITMENT_KEPT, EventKind.DR_DELIVERED})
BAD = frozenset({EventKind.WARRANT_UPHELD, EventKind.COMMITMENT_BROKEN, EventKind.DR_MISSED})


@dataclass(frozen=True, slots=True)
class Observation:
    """Something validated about ``subject`` at ``at_us``."""

    subject: AgentPubKey
    kind: EventKind
    at_us: int


@dataclass(frozen=True, slots=True)
class ReputationPolicy:
    """Per-mille weight of each kind of event (good ≥ 0, bad ≤ 0), the starting score and how
    fast events fade."""

    weights: Mapping[EventKind, int]
    start: int = NEUTRAL_SCORE
    half_life_us: int = 30 * DAY_US


FACTORY_DEFAULT_REPUTATION = ReputationPolicy(
    {
        EventKind.WARRANT_UPHELD: -600,
        EventKind.COMMITMENT_KEPT: 10,
        EventKind.COMMITMENT_BROKEN: -60,
        EventKind.DR_DELIVERED: 20,
        EventKind.DR_MISSED: -40,
    }
)


def reputation_policy_problem(policy: ReputationPolicy) -> str | None:
    """Why ``policy`` is not acceptable, or None."""
    if not MIN_SCORE <= policy.start <= MAX_SCORE:
        return f"the starting score is in [{MIN_SCORE}, {MAX_SCORE}]"
    if policy.half_life_us <= 0:
        return "the half-life is positive"
    for kind, weight in policy.weights.items():
        if abs(weight) > MAX_WEIGHT:
            return f"a weight is within ±{MAX_WEIGHT}"
        if (kind in GOOD and weight < 0) or (kind in BAD and weight > 0):
            return f"{kind.value} cannot weigh {weight}: good events ≥ 0, bad events ≤ 0"
    return None


def faded(weight: int, age_us: int, half_life_us: int) -> int:
    """``weight`` after ``age_us``: halved per half-life, linear in between, towards zero."""
    halvings, rest = divmod(max(age_us, 0), half_life_us)
    if halvings >= 64:
        return 0
    magnitude = abs(weight) * (2 * half_life_us - rest) // (2 * half_life_us) >> halvings
    return magnitude if weight >= 0 else -magnitude


def score(
    subject: AgentPubKey,
    observations: Iterable[Observation],
    now_us: int,
    policy: ReputationPolicy = FACTORY_DEFAULT_REPUTATION,
) -> int:
    """``subject``'s score in [0, 2000] from this agent's ``observations`` at ``now_us``."""
    problem = reputation_policy_problem(policy)
    if problem:
        raise ValueError(problem)
    total = policy.start
    for seen in observations:
        if seen.subject == subject:
            weight = policy.weights.get(seen.kind, 0)
            total += faded(weight, now_us - seen.at_us, policy.half_life_us)
    return max(MIN_SCORE, min(MAX_SCORE, total))


def basis(subject: AgentPubKey, observations: Iterable[Observation]) -> dict[str, int]:
    """How many events of each kind a score of ``subject`` rests on."""
    counts: dict[str, int] = {}
    for seen in observations:
        if seen.subject == subject:
            counts[seen.kind.value] = counts.get(seen.kind.value, 0) + 1
    return counts


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True, slots=True)
class ReputationClaim:
    """``claimant``'s signed opinion of ``subject`` at ``at_us``, with the counts behind it."""

    version: int
    claimant: AgentPubKey
    subject: AgentPubKey
    score: int
    basis: dict[str, int]
    at_us: int
    signature: bytes = b""

    UNSIGNED = ("signature",)

    @classmethod
    def make(
        cls,
        keys: KeyPair,
        subject: AgentPubKey,
        observations: Iterable[Observation],
        now_us: int,
        policy: ReputationPolicy = FACTORY_DEFAULT_REPUTATION,
    ) -> ReputationClaim:
        """A signed claim of ``keys``' own view of ``subject``."""
        seen = list(observations)
        claim = cls(
            CLAIM_VERSION,
            keys.agent,
            subject,
            score(subject, seen, now_us, policy),
            basis(subject, seen),
            now_us,
        )
        return replace(claim, signature=keys.sign(CLAIM_CONTEXT, claim.message()))

    def message(self) -> bytes:
        return wire.body_bytes(self, self.UNSIGNED)

    def to_bytes(self) -> bytes:
        return wire.to_bytes(self, MAX_CLAIM_BYTES)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReputationClaim:
        """Strict decoding (shape only; :func:`claim_problem` checks the signature)."""
        claim = wire.from_bytes(cls, data, MAX_CLAIM_BYTES)
        wire.require(claim.version == CLAIM_VERSION, "unknown claim version")
        wire.require(len(claim.signature) == SIGNATURE_SIZE, "a claim signature is 64 bytes")
        problem = _shape_problem(claim)
        wire.require(problem is None, str(problem))
        return claim


def _shape_problem(claim: ReputationClaim) -> str | None:
    if not MIN_SCORE <= claim.score <= MAX_SCORE:
        return f"a score is in [{MIN_SCORE}, {MAX_SCORE}]"
    if claim.at_us < 0:
        return "at_us is non-negative"
    kinds = {kind.value for kind in EventKind}
    for name, count in claim.basis.items():
        if name not in kinds or count < 0:
            return f"bad basis entry {name[:40]!r}: {count}"
    return None


def claim_problem(claim: ReputationClaim) -> str | None:
    """Why ``claim`` is not a valid signed claim, or None (the score itself is an opinion)."""
    if claim.version != CLAIM_VERSION:
        return f"unknown claim version {claim.version}"
    problem = _shape_problem(claim)
    if problem:
        return problem
    if claim.claimant == claim.subject:
        return "an agent cannot vouch for itself"
    if not verify(claim.claimant, CLAIM_CONTEXT, claim.message(), claim.signature):
        return "the claim is not signed by its claimant"
    return None
