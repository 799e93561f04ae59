"""A node's own view of other agents: what it has itself validated about them, kept durably,
scored by its owner's policy (:mod:`ioe.identity.reputation` is the pure core).

**Observations** (dated by this node's clock, each attributed only where the protocol proves
who is at fault):

- ``warrant_upheld``: the agent is blocked here for a warrant this node checked itself (a true
  warrant about it, received or signed here, or a false warrant it signed);
- ``commitment_kept``: a countersigning session with the agent committed on a local chain (the
  set holds the agent's signed response: it did its part);
- ``commitment_broken``: the agent answered a preflight it was sent with a response that is not
  validly signed for it (the agent's own node answered, by its signed agent info). A refusal is
  a party's right before it agrees, and silence may be the network's fault; after a valid
  response this protocol leaves a party nothing more to sign, and an initiator that abandons
  may have done so because a response was lost. None of those is blamed on anyone;
- ``dr_delivered`` / ``dr_missed``: the demand rewarder attested a reduction claim of the agent,
  or refused it as implausible (once per claim).

**Storage** (table ``reputation_events``): one row per (agent, kind, day) holding the count
and the latest time of that day's events. Counting per kind keeps rare events: a warrant is
never pushed out by a thousand payments, as it would be from a "last N events" list. At most
:data:`MAX_DAYS` days are kept per (agent, kind) (the oldest go first: under the factory
half-life of 30 days any weight has faded to nothing after 11 half-lives, 330 days) and at most
:data:`MAX_SUBJECTS` agents (the one seen least recently goes first). A day's events count as
of the latest of them: an event's weight fades at most one day late. Events that may be seen
twice (a finished session after a restart, a claim asked about again) carry a reference and are
counted once (table ``reputation_refs``, the newest :data:`MAX_REFS` kept).

**Policy** (setting :data:`POLICY_SETTING`): the owner's weights and half-life over the factory
default, and ``min_score``: below it this node co-signs nothing with an agent
(:meth:`NodeReputation.refusal`, checked by the wallet's countersigning policy).

**Claims** published by others are weighed by this node's view of their claimant
(:func:`weigh_claims`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ioe.engine.countersign_machine import PartyState, Phase, Verdict, VerdictKind
from ioe.engine.countersigning import Preflight, Response
from ioe.errors import EncodingError, IoEError, StoreError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.reputation import (
    DAY_US,
    FACTORY_DEFAULT_REPUTATION,
    MAX_SCORE,
    MIN_SCORE,
    NEUTRAL_SCORE,
    EventKind,
    Observation,
    ReputationClaim,
    ReputationPolicy,
    claim_problem,
    reputation_policy_problem,
    score,
)
from ioe.store.reputation import EventLimits, SqliteReputationStore
from ioe.store.sqlite import SqliteDatabase
from ioe.zomes.reputation.entries import CLAIM_LINK, ReputationClaimEntry

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost

log = logging.getLogger(__name__)

POLICY_SETTING = "reputation_policy"
MAX_DAYS = 366
MAX_SUBJECTS = 10_000
MAX_REFS = 4096
MAX_CLAIMS_READ = 256
"""Claims about one agent read from the network (newest kept per claimant)."""

Clock = Callable[[], int]


class ReputationError(IoEError):
    """A reputation request cannot be served (the message says why)."""


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """The owner's reputation policy: how events weigh, and the score below which this node
    refuses to co-sign with an agent (None: never refuses on reputation)."""

    reputation: ReputationPolicy = FACTORY_DEFAULT_REPUTATION
    min_score: int | None = None

    def to_value(self) -> dict[str, Any]:
        return {
            "weights": {str(k): w for k, w in sorted(self.reputation.weights.items())},
            "start": self.reputation.start,
            "half_life_us": self.reputation.half_life_us,
            "min_score": self.min_score,
        }


def policy_problem(policy: NodePolicy) -> str | None:
    """Why ``policy`` is not acceptable, or None."""
    if set(policy.reputation.weights) != set(EventKind):
        return "a policy weighs every kind of event"
    problem = reputation_policy_problem(policy.reputation)
    if problem:
        return problem
    if policy.min_score is not None and not MIN_SCORE <= policy.min_score <= MAX_SCORE:
        return f"min_score is in [{MIN_SCORE}, {MAX_SCORE}] (or none)"
    return None


def changed_policy(
    current: NodePolicy,
    *,
    weights: Mapping[str, int] | None = None,
    half_life_us: int | None = None,
    min_score: int | None = None,
    clear_min_score: bool = False,
) -> NodePolicy:
    """``current`` with the given changes, checked; ``ValueError`` saying what is wrong."""
    new_weights = dict(current.reputation.weights)
    for name, weight in (weights or {}).items():
        try:
            kind = EventKind(name)
        except ValueError:
            known = ", ".join(k.value for k in EventKind)
            raise ValueError(f"unknown event kind {name!r} (known: {known})") from None
        if type(weight) is not int:
            raise ValueError(f"the weight of {name} is an integer (per mille)")
        new_weights[kind] = weight
    if half_life_us is not None and type(half_life_us) is not int:
        raise ValueError("the half-life is an integer number of microseconds")
    if min_score is not None and type(min_score) is not int:
        raise ValueError("min_score is an integer (per mille)")
    policy = NodePolicy(
        ReputationPolicy(
            new_weights,
            current.reputation.start,
            current.reputation.half_life_us if half_life_us is None else half_life_us,
        ),
        None if clear_min_score else (current.min_score if min_score is None else min_score),
    )
    problem = policy_problem(policy)
    if problem:
        raise ValueError(problem)
    return policy


def load_policy(db: SqliteDatabase) -> NodePolicy:
    """The stored policy, or the factory default (also for a stored value this build cannot
    read: a node never scores by a policy it does not understand)."""
    raw = db.get_setting(POLICY_SETTING)
    if not isinstance(raw, dict):
        return NodePolicy()
    try:
        weights = {EventKind(str(k)): int(v) for k, v in dict(raw["weights"]).items()}
        reputation = ReputationPolicy(
            {**FACTORY_DEFAULT_REPUTATION.weights, **weights},
            int(raw["start"]),
            int(raw["half_life_us"]),
        )
        minimum = raw.get("min_score")
        policy = NodePolicy(reputation, None if minimum is None else int(minimum))
    except (KeyError, TypeError, ValueError):
        return NodePolicy()
    return NodePolicy() if policy_problem(policy) else policy


def save_policy(db: SqliteDatabase, policy: NodePolicy) -> None:
    problem = policy_problem(policy)
    if problem:
        raise ValueError(problem)
    db.put_setting(POLICY_SETTING, policy.to_value())


# ----------------------------------------------------------------------------- storage


class ReputationStore:
    """Per-agent observations in a node's database (see the module docstring for the bounds)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.tables = SqliteReputationStore(db)

    def record(
        self, subject: AgentPubKey, kind: EventKind, at_us: int, ref: bytes | None = None
    ) -> bool:
        """Count one ``kind`` event about ``subject`` at ``at_us``. With ``ref``, an event
        already counted under that reference is not counted again. True if counted."""
        ref_key = None
        if ref is not None:
            ref_key = hashlib.blake2b(
                b"\0".join((kind.value.encode(), bytes(subject), ref)), digest_size=32
            ).digest()
        return self.tables.count_event(
            subject,
            kind.value,
            at_us // DAY_US,
            at_us,
            ref_key=ref_key,
            limits=EventLimits(MAX_DAYS, MAX_SUBJECTS, MAX_REFS),
        )

    def observations(self, subject: AgentPubKey | None = None) -> list[Observation]:
        """Every stored event (of ``subject``, or of everyone), a day's events dated as the
        latest of them."""
        found: list[Observation] = []
        for row in self.tables.event_counts(subject):
            seen = Observation(row.subject, EventKind(row.kind), row.last_us)
            found.extend(itertools.repeat(seen, row.count))
        return found

    def subjects(self) -> list[AgentPubKey]:
        return self.tables.subjects()


# ----------------------------------------------------------------------------- the view


def counts(subject: AgentPubKey, observations: Iterable[Observation]) -> dict[str, int]:
    """Every kind's count (zero included), for a stable JSON shape."""
    found = {kind.value: 0 for kind in EventKind}
    for seen in observations:
        if seen.subject == subject:
            found[seen.kind.value] += 1
    return found


def view(
    db: SqliteDatabase, now_us: int, subject: AgentPubKey | None = None
) -> list[dict[str, Any]]:
    """``[{"agent", "score", "basis": {kind: count}}]`` for every agent seen (or ``subject``:
    one item, neutral with no basis if never seen), by the stored policy."""
    policy = load_policy(db).reputation
    store = ReputationStore(db)
    seen = store.observations(subject)
    agents = [subject] if subject is not None else store.subjects()
    return [
        {
            "agent": agent.to_text(),
            "score": score(agent, seen, now_us, policy),
            "basis": counts(agent, seen),
        }
        for agent in agents
    ]


def weigh_claims(
    claims: Iterable[ReputationClaim], claimant_score: Callable[[AgentPubKey], int]
) -> dict[str, Any]:
    """Claims about one subject, each weighed by the reader's own score of its claimant: its
    weight is that score per mille of neutral (a neutral claimant counts 1×, one at 500 half,
    one at 0 not at all, a trusted one up to 2×). Only each claimant's newest claim counts.
    ``weighted_score`` is the weighted mean of the claimed scores (None when nothing weighs)."""
    newest: dict[AgentPubKey, ReputationClaim] = {}
    for claim in claims:
        known = newest.get(claim.claimant)
        if known is None or claim.at_us > known.at_us:
            newest[claim.claimant] = claim
    items = []
    total_weight = 0
    total = 0
    for claim in sorted(newest.values(), key=lambda c: (-c.at_us, bytes(c.claimant))):
        weight = claimant_score(claim.claimant)
        total_weight += weight
        total += weight * claim.score
        items.append(
            {
                "claimant": claim.claimant.to_text(),
                "subject": claim.subject.to_text(),
                "score": claim.score,
                "basis": dict(claim.basis),
                "at_us": claim.at_us,
                "claimant_score": weight,
                "weight_pm": weight * 1000 // NEUTRAL_SCORE,
            }
        )
    return {
        "claims": items,
        "weighted_score": total // total_weight if total_weight else None,
    }


# ----------------------------------------------------------------------------- blame


def session_observations(
    state: PartyState, verdict: Verdict
) -> list[tuple[AgentPubKey, EventKind]]:
    """What a finished session says about the other parties: each kept its commitment when the
    set committed here. An abandoned session blames nobody (see the module docstring)."""
    if state.phase is not Phase.COMMITTED or verdict.kind is not VerdictKind.SET:
        return []
    return [(agent, EventKind.COMMITMENT_KEPT) for agent in state.others()]


def response_observation(
    preflight: Preflight, asked: AgentPubKey, response: Response
) -> tuple[AgentPubKey, EventKind] | None:
    """A party answered the preflight sent to it with a response that is not its valid
    signature of it: it broke the commitment it claims to make."""
    if asked not in preflight.parties or asked == preflight.initiator:
        return None
    if response.agent == asked and response.valid_for(preflight):
        return None
    return asked, EventKind.COMMITMENT_BROKEN


# ----------------------------------------------------------------------------- on a node


@dataclass(slots=True)
class NodeReputation:
    """The running node's reputation: observers for the places behaviour is validated, the
    co-signing gate, and claims."""

    db: SqliteDatabase
    clock: Clock
    store: ReputationStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = ReputationStore(self.db)

    # observers (one-line hooks in the DHT, the countersigner and the demand rewarder)

    def observe(self, subject: AgentPubKey, kind: EventKind, ref: bytes | None = None) -> None:
        """Record an event. Bookkeeping never stops the work it observes: a storage failure
        is logged, not raised into a session or a warrant's handling."""
        try:
            self.store.record(subject, kind, self.clock(), ref)
        except StoreError as exc:
            log.warning("reputation: %s about %s not recorded: %s", kind, subject.short(), exc)

    def warrant_upheld(self, agent: AgentPubKey) -> None:
        self.observe(agent, EventKind.WARRANT_UPHELD)

    def session_finished(self, state: PartyState, verdict: Verdict) -> None:
        for agent, kind in session_observations(state, verdict):
            self.observe(agent, kind, state.session_id)

    def response_received(
        self, preflight: Preflight, asked: AgentPubKey, response: Response
    ) -> None:
        found = response_observation(preflight, asked, response)
        if found is not None:
            self.observe(*found, preflight.session_id)

    def reduction_judged(self, claimant: AgentPubKey, claim: ActionHash, delivered: bool) -> None:
        kind = EventKind.DR_DELIVERED if delivered else EventKind.DR_MISSED
        self.observe(claimant, kind, bytes(claim))

    # the view

    def policy(self) -> NodePolicy:
        return load_policy(self.db)

    def score_of(self, agent: AgentPubKey) -> int:
        return score(agent, self.store.observations(agent), self.clock(), self.policy().reputation)

    def refusal(self, agent: AgentPubKey) -> str | None:
        """Why this node co-signs nothing with ``agent`` now (its score is below the owner's
        ``min_score``), or None."""
        minimum = self.policy().min_score
        if minimum is None:
            return None
        found = self.score_of(agent)
        if found >= minimum:
            return None
        return f"your reputation here is {found}, below this node's minimum {minimum}"

    def view(self, subject: AgentPubKey | None = None) -> list[dict[str, Any]]:
        return view(self.db, self.clock(), subject)

    def claim(self, node: IdentityHost, subject: AgentPubKey) -> ReputationClaim:
        """This node's current view of ``subject``, signed by its core agent."""
        cell = node.core_cell()
        if subject == cell.agent:
            raise ReputationError("an agent cannot vouch for itself")
        return ReputationClaim.make(
            cell.keys,
            subject,
            self.store.observations(subject),
            self.clock(),
            self.policy().reputation,
        )


async def publish_claim(node: IdentityHost, subject: AgentPubKey) -> dict[str, Any]:
    """Publish this node's view of ``subject`` as a signed claim on the network."""
    claim = node.reputation.claim(node, subject)
    cell = node.core_cell()
    action = node.call(cell, "reputation", "publish", claim.to_bytes())
    assert isinstance(action, ActionHash)
    return {
        "hash": action.to_text(),
        "claimant": claim.claimant.to_text(),
        "subject": subject.to_text(),
        "score": claim.score,
        "basis": dict(claim.basis),
        "at_us": claim.at_us,
    }


async def claims_about(node: IdentityHost, subject: AgentPubKey) -> dict[str, Any]:
    """The valid claims others published about ``subject``, found on the network and weighed
    by this node's view of each claimant (:func:`weigh_claims`)."""
    cell = node.core_cell()
    dht = node.dht_for(cell)
    found: list[ReputationClaim] = []
    links = await dht.get_links(subject, CLAIM_LINK)
    for link in sorted(links, key=lambda lk: -lk.timestamp)[:MAX_CLAIMS_READ]:
        if not isinstance(link.target, ActionHash) or link.author == cell.agent:
            continue
        record = await dht.get_record(link.target)
        if record is None or record.entry is None:
            continue
        value = cell.entry_value(record)
        if not isinstance(value, ReputationClaimEntry):
            continue
        try:
            claim = ReputationClaim.from_bytes(value.claim)
        except EncodingError:
            continue
        # The DHT held it as valid; checked again here, as a reader should.
        if claim_problem(claim) or claim.subject != subject or claim.claimant != link.author:
            continue
        found.append(claim)
    weighed = weigh_claims(found, node.reputation.score_of)
    return {"subject": subject.to_text(), **weighed}
