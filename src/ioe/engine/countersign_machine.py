"""The countersigning session as a pure state machine: events in, new state and effects out.

No I/O and no clock: the time (``now``, µs) is passed in with each event. A network adapter
(``ioe.services.countersign``) turns messages, replies, timeouts and restarts into events and
carries out the effects *in order* — :class:`Persist` and :class:`Unlock` are durable before it
goes on.

One party's view of one session is a :class:`PartyState`. Its phases:

``GATHERING``   the initiator: chain locked (persisted), preflights out, collecting responses
``COMMITTING``  holding a complete set, committing it (volatile; the chain says how it ended)
``LOCKED``      signed a response (lock persisted first), waiting to learn the outcome
``COMMITTED``   the set is on this chain; unlocked
``ABANDONED``   the decider abandoned the session; unlocked

The safety rule: only the **decider** (the witness if there is one, else the initiator) can first
assemble a committable set, and it decides once, durably — by committing the set (initiator) or
recording it (witness), or by abandoning. A party that signed never unlocks on a timer: it
unlocks only when the decider says "abandoned" (an unknown session, at the decider, after
expiry, *is* abandoned: its gathering state is gone and it can never commit it). A party that
receives a valid set — from anyone — commits it. See ``docs/countersigning.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeAlias

from ioe.crypto.keys import KeyPair
from ioe.encoding import Value
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response
from ioe.engine.schema import from_value, to_value
from ioe.hashing import AgentPubKey

QUERY_BACKOFF_US = 500_000
MAX_QUERY_BACKOFF_US = 5_000_000

MAX_CLOCK_SKEW_US = 30_000_000
"""How far a preflight's session time may be from a responding party's clock."""
MAX_SESSION_US = 600_000_000
"""The longest session a party accepts (its chain is locked until the session resolves)."""


class Phase(StrEnum):
    GATHERING = "gathering"
    COMMITTING = "committing"
    LOCKED = "locked"
    COMMITTED = "committed"
    ABANDONED = "abandoned"


TERMINAL = (Phase.COMMITTED, Phase.ABANDONED)


class VerdictKind(StrEnum):
    SET = "set"
    """Here is the set (complete and signed): commit it."""
    ABANDONED = "abandoned"
    """Authoritative only from the decider: it will never commit this session."""
    PENDING = "pending"
    """The decider has not decided yet."""
    UNKNOWN = "unknown"
    """Not the decider, and holding no set."""


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    entry: CountersignedEntry | None = None


PENDING = Verdict(VerdictKind.PENDING)
ABANDONED = Verdict(VerdictKind.ABANDONED)
UNKNOWN = Verdict(VerdictKind.UNKNOWN)


# ----------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class PreflightMsg:
    """Initiator → party (request; the reply is the party's Response or a refusal)."""

    preflight: Preflight


@dataclass(frozen=True, slots=True)
class DecideMsg:
    """Initiator → witness (request; the reply is a Verdict)."""

    preflight: Preflight
    responses: tuple[Response, ...]


@dataclass(frozen=True, slots=True)
class QueryMsg:
    """Party → decider or another party: "set or abandoned?" (request; the reply is a Verdict)."""

    preflight: Preflight


@dataclass(frozen=True, slots=True)
class SetMsg:
    """Initiator → parties, after committing: the set (one-way)."""

    entry: CountersignedEntry


@dataclass(frozen=True, slots=True)
class AbandonMsg:
    """Initiator → parties: a hint to ask the decider now (one-way)."""

    preflight: Preflight


Message: TypeAlias = PreflightMsg | DecideMsg | QueryMsg | SetMsg | AbandonMsg


# ------------------------------------------------------------------------------------ effects


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the lock record durably (it survives kill -9) before any later effect."""

    state: PartyState


@dataclass(frozen=True, slots=True)
class Unlock:
    """Clear the lock record durably; the chain takes writes again."""


@dataclass(frozen=True, slots=True)
class Commit:
    """Append the session's record; the result comes back as :class:`CommitDone`."""

    entry: CountersignedEntry


@dataclass(frozen=True, slots=True)
class Send:
    to: AgentPubKey
    message: Message


@dataclass(frozen=True, slots=True)
class Finish:
    """The session is over for this party (tell whoever waits on it)."""

    verdict: Verdict


Effect: TypeAlias = Persist | Unlock | Commit | Send | Finish


# ------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class GotResponse:
    response: Response


@dataclass(frozen=True, slots=True)
class GotRefusal:
    """A party refused the preflight, or did not answer it in time."""

    agent: AgentPubKey
    reason: str


@dataclass(frozen=True, slots=True)
class GotSet:
    entry: CountersignedEntry


@dataclass(frozen=True, slots=True)
class GotVerdict:
    source: AgentPubKey
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class GotAbandonHint:
    pass


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class CommitDone:
    ok: bool
    reason: str = ""


Event: TypeAlias = (
    GotResponse | GotRefusal | GotSet | GotVerdict | GotAbandonHint | Tick | CommitDone
)


# -------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class PartyState:
    preflight: Preflight
    own: Response
    phase: Phase
    gathered: tuple[Response, ...] = ()
    """Responses in hand (initiator, volatile)."""
    held: CountersignedEntry | None = None
    """The set being committed (volatile)."""
    next_query_us: int = 0
    queries: int = 0
    reason: str = ""

    @property
    def me(self) -> AgentPubKey:
        return self.own.agent

    @property
    def session_id(self) -> bytes:
        return self.preflight.session_id

    @property
    def is_decider(self) -> bool:
        return self.preflight.decider == self.me

    @property
    def locked(self) -> bool:
        return self.phase not in TERMINAL

    def others(self) -> list[AgentPubKey]:
        return [p for p in self.preflight.parties if p != self.me]

    def to_value(self) -> Value:
        """The durable part: what a restart keeps."""
        return {
            "preflight": to_value(self.preflight),
            "own": to_value(self.own),
            "phase": str(self.phase),
        }

    @classmethod
    def from_value(cls, value: Value) -> PartyState:
        if not isinstance(value, dict):
            raise ValueError("a lock record is a map")
        phase = Phase(value["phase"])
        preflight = from_value(Preflight, value["preflight"])
        own = from_value(Response, value["own"])
        return cls(preflight, own, phase)


def _backoff(queries: int) -> int:
    return int(min(MAX_QUERY_BACKOFF_US, QUERY_BACKOFF_US * 2 ** min(queries, 10)))


def matches(state: PartyState, entry: CountersignedEntry) -> bool:
    """``entry`` is a complete, valid set of this session that holds this party's response."""
    return (
        entry.preflight == state.preflight
        and entry.response_of(state.me) == state.own
        and entry.problem() is None
    )


# ---------------------------------------------------------------------------------- starting


def initiate(preflight: Preflight, own: Response) -> tuple[PartyState, list[Effect]]:
    """The initiator locks (persist first) and sends the preflight to every other party."""
    state = PartyState(preflight, own, Phase.GATHERING, gathered=(own,))
    return state, [Persist(state), *(Send(p, PreflightMsg(preflight)) for p in state.others())]


def refusal(
    preflight: Preflight, me: AgentPubKey, now: int, *, locked: bool, seen: bool
) -> str | None:
    """Why a party must not accept ``preflight`` now, or None. ``seen``: this party already
    took part in the session (its chain holds it, or it has state for it) — a duplicated or
    late preflight must never lock a chain again."""
    problem = preflight.problem()
    if problem:
        return problem
    if me not in preflight.parties or me == preflight.initiator:
        return "this agent is not a responding party of the session"
    if seen:
        return "this agent already took part in the session"
    if locked:
        return "the chain is locked by another session"
    if now >= preflight.expires_us:
        return "the session has expired"
    if abs(preflight.session_time_us - now) > MAX_CLOCK_SKEW_US:
        return "the session time is too far from this node's clock"
    if preflight.expires_us - preflight.session_time_us > MAX_SESSION_US:
        return f"a session lasts at most {MAX_SESSION_US // 1_000_000} s"
    return None


def respond(preflight: Preflight, own: Response) -> tuple[PartyState, list[Effect]]:
    """A party accepts: persist the lock, then (the adapter) reply with ``own``. It waits for the
    set until the expiry, then asks."""
    state = PartyState(preflight, own, Phase.LOCKED, next_query_us=preflight.expires_us)
    return state, [Persist(state)]


def restart(
    durable: PartyState, on_chain: CountersignedEntry | None, now: int
) -> tuple[PartyState, list[Effect]]:
    """After a restart: the lock record and whether this chain already holds the session."""
    if on_chain is not None:
        done = replace(durable, phase=Phase.COMMITTED, gathered=())
        return done, [Unlock(), Finish(Verdict(VerdictKind.SET, on_chain))]
    if durable.phase is Phase.GATHERING:
        # Gathering is volatile and the set was never sent anywhere (with a witness, LOCKED is
        # persisted before the set goes to it): nobody can commit this session.
        return _abandon(durable, "the initiator restarted while gathering")
    state = replace(durable, phase=Phase.LOCKED, gathered=(), next_query_us=now, queries=0)
    return state, []


# ------------------------------------------------------------------------------------ stepping


def step(state: PartyState, event: Event, now: int) -> tuple[PartyState, list[Effect]]:
    """One event for one party's session."""
    phase = state.phase
    if phase in TERMINAL:
        return state, []
    entry = _set_in(event)
    if entry is not None and phase is not Phase.COMMITTING and matches(state, entry):
        return replace(state, phase=Phase.COMMITTING, held=entry), [Commit(entry)]
    if phase is Phase.GATHERING:
        return _gathering(state, event, now)
    if phase is Phase.COMMITTING:
        return _committing(state, event, now)
    return _locked(state, event, now)


def _set_in(event: Event) -> CountersignedEntry | None:
    if isinstance(event, GotSet):
        return event.entry
    if isinstance(event, GotVerdict) and event.verdict.kind is VerdictKind.SET:
        return event.verdict.entry
    return None


def _abandon(state: PartyState, reason: str) -> tuple[PartyState, list[Effect]]:
    done = replace(state, phase=Phase.ABANDONED, gathered=(), reason=reason)
    effects: list[Effect] = [Unlock(), Finish(ABANDONED)]
    if state.me == state.preflight.initiator:
        effects += [Send(p, AbandonMsg(state.preflight)) for p in state.others()]
    return done, effects


def _gathering(state: PartyState, event: Event, now: int) -> tuple[PartyState, list[Effect]]:
    preflight = state.preflight
    if isinstance(event, Tick) and now >= preflight.expires_us:
        return _abandon(state, "the session expired before every party responded")
    if isinstance(event, GotRefusal) and event.agent in preflight.parties:
        return _abandon(state, f"{event.agent.short()} did not accept: {event.reason}")
    if not isinstance(event, GotResponse):
        return state, []
    response = event.response
    if response.agent not in preflight.parties or any(
        r.agent == response.agent for r in state.gathered
    ):
        return state, []
    if not response.valid_for(preflight):
        return _abandon(state, f"{response.agent.short()} sent a badly signed response")
    gathered = (*state.gathered, response)
    if len(gathered) < len(preflight.parties):
        return replace(state, gathered=gathered), []
    if now >= preflight.expires_us:
        return _abandon(state, "the session expired before every party responded")
    ordered = tuple(next(r for r in gathered if r.agent == p) for p in preflight.parties)
    if preflight.witness is None:
        # The decision: committing the set is atomic and durable; until then nobody has it.
        entry = CountersignedEntry(preflight, ordered)
        return replace(state, phase=Phase.COMMITTING, gathered=(), held=entry), [Commit(entry)]
    # With a witness, the initiator is one more party: persist LOCKED *before* the set leaves.
    locked = replace(state, phase=Phase.LOCKED, gathered=(), next_query_us=preflight.expires_us)
    return locked, [Persist(locked), Send(preflight.witness, DecideMsg(preflight, ordered))]


def _committing(state: PartyState, event: Event, now: int) -> tuple[PartyState, list[Effect]]:
    if not isinstance(event, CommitDone):
        return state, []
    entry = state.held
    if event.ok:
        done = replace(state, phase=Phase.COMMITTED, held=None)
        effects: list[Effect] = [Unlock()]
        if entry is not None and state.me == state.preflight.initiator:
            effects += [Send(p, SetMsg(entry)) for p in state.others()]
        return done, [*effects, Finish(Verdict(VerdictKind.SET, entry))]
    if state.is_decider and state.preflight.witness is None:
        return _abandon(state, f"the initiator could not commit: {event.reason}")
    # Someone decided to commit; a local failure must not abandon. Try again on the next answer.
    return replace(state, phase=Phase.LOCKED, held=None, next_query_us=now), []


def _locked(state: PartyState, event: Event, now: int) -> tuple[PartyState, list[Effect]]:
    preflight = state.preflight
    if isinstance(event, GotVerdict):
        if event.source == preflight.decider and event.verdict.kind is VerdictKind.ABANDONED:
            return _abandon(state, "the decider abandoned the session")
        return state, []
    if isinstance(event, GotAbandonHint):
        return replace(state, next_query_us=now), [Send(preflight.decider, QueryMsg(preflight))]
    if isinstance(event, Tick) and now >= state.next_query_us:
        asked = [preflight.decider, *(p for p in state.others() if p != preflight.decider)]
        later = replace(
            state, queries=state.queries + 1, next_query_us=now + _backoff(state.queries)
        )
        return later, [Send(agent, QueryMsg(preflight)) for agent in asked]
    return state, []


# ------------------------------------------------------------------------------------ answers


def answer_query(
    me: AgentPubKey,
    preflight: Preflight,
    state: PartyState | None,
    committed: CountersignedEntry | None,
) -> Verdict:
    """A party's answer to "set or abandoned?" (the witness answers with :func:`witness_query`).

    ``state`` is this party's live state for the session (None if it has none), ``committed``
    the set if its chain holds it."""
    if committed is not None:
        return Verdict(VerdictKind.SET, committed)
    if preflight.witness is not None or me != preflight.initiator:
        return UNKNOWN
    if state is not None and state.phase in (Phase.GATHERING, Phase.COMMITTING):
        return PENDING
    return ABANDONED  # the decider has no gathering state: it will never commit this session


@dataclass(frozen=True, slots=True)
class WitnessRecord:
    """A witness's durable decision on one session: the set, or None for abandoned."""

    entry: CountersignedEntry | None

    @property
    def verdict(self) -> Verdict:
        return ABANDONED if self.entry is None else Verdict(VerdictKind.SET, self.entry)


def witness_decide(
    record: WitnessRecord | None,
    keys: KeyPair,
    preflight: Preflight,
    responses: tuple[Response, ...],
    now: int,
) -> tuple[WitnessRecord | None, Verdict]:
    """The witness's decision. A new record must be persisted before the verdict is sent."""
    if record is not None:
        return record, record.verdict
    if preflight.witness != keys.agent:
        return None, UNKNOWN
    if now >= preflight.expires_us:
        return WitnessRecord(None), ABANDONED
    entry = CountersignedEntry(preflight, responses).with_witness(keys)
    if entry.problem() is not None:
        return None, UNKNOWN  # not a set; the session may still complete or expire
    decided = WitnessRecord(entry)
    return decided, decided.verdict


def witness_query(
    record: WitnessRecord | None, preflight: Preflight, now: int
) -> tuple[WitnessRecord | None, Verdict]:
    """The witness's answer to "set or abandoned?". An unknown session past its expiry is
    abandoned, durably (a new record must be persisted before the verdict is sent)."""
    if record is not None:
        return record, record.verdict
    if now < preflight.expires_us:
        return None, PENDING
    return WitnessRecord(None), ABANDONED
