"""The countersigning session machine under random message orders, losses, duplicates, crashes,
restarts, refusals, commit failures, clock skew and timeouts (Hypothesis drives a simulated
network of 2-4 parties, with or without a witness).

Checked after every step: never one party committed while another abandoned, and every committed
chain holds the same set. Checked once the network heals (everyone up, messages delivered, time
passing): no chain stays locked, and either every party committed or none did."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.engine.countersign_machine import (
    AbandonMsg,
    Commit,
    CommitDone,
    DecideMsg,
    Effect,
    Event,
    Finish,
    GotAbandonHint,
    GotRefusal,
    GotResponse,
    GotSet,
    GotVerdict,
    PartyState,
    Persist,
    Phase,
    PreflightMsg,
    QueryMsg,
    Send,
    SetMsg,
    Tick,
    Unlock,
    Verdict,
    VerdictKind,
    WitnessRecord,
    answer_query,
    initiate,
    refusal,
    respond,
    restart,
    step,
    witness_decide,
    witness_query,
)
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response
from ioe.engine.ports import ChainHead
from ioe.hashing import ActionHash, DnaHash

KEYS = [KeyPair(bytes([i + 1]) * 32) for i in range(5)]
SECOND = 1_000_000


class Crash(Exception):
    """The node died in the middle of what it was doing."""


@dataclass
class SimNode:
    keys: KeyPair
    skew: int
    head: ChainHead
    alive: bool = True
    lock: Any = None  # durable: the persisted PartyState value
    chain: CountersignedEntry | None = None  # durable: the committed set
    state: PartyState | None = None  # volatile
    witness: dict[bytes, WitnessRecord] = field(default_factory=dict)  # durable
    abandoned: bool = False

    @property
    def agent(self) -> Any:
        return self.keys.agent


@dataclass
class Envelope:
    src: SimNode
    dst: SimNode
    body: Any  # a Message, or ("reply", Event) going back to src of a request


class World:
    def __init__(self, data: Any, parties: int, witness: bool) -> None:
        self.data = data
        self.now = 1_000 * SECOND
        self.faults = True
        self.parties = [
            SimNode(
                KEYS[i],
                data.draw(st.integers(-2 * SECOND, 2 * SECOND), label="skew"),
                ChainHead(3 + i, ActionHash(bytes([i]) * 32), self.now - SECOND),
            )
            for i in range(parties)
        ]
        self.witness = (
            SimNode(KEYS[4], data.draw(st.integers(-2 * SECOND, 2 * SECOND)), self.parties[0].head)
            if witness
            else None
        )
        self.inflight: list[Envelope] = []

    @property
    def nodes(self) -> list[SimNode]:
        return self.parties + ([self.witness] if self.witness else [])

    def clock(self, node: SimNode) -> int:
        return self.now + node.skew

    def node_of(self, agent: Any) -> SimNode:
        return next(n for n in self.nodes if n.agent == agent)

    def maybe_crash(self, node: SimNode) -> None:
        if self.faults and self.data.draw(st.integers(0, 24), label="crash?") == 0:
            node.alive = False
            node.state = None
            raise Crash

    # ------------------------------------------------------------------------- running a node

    def start(self) -> None:
        initiator = self.parties[0]
        time = self.clock(initiator)
        self.preflight = Preflight(
            session_id=b"s" * 16,
            dna_hash=DnaHash(b"d" * 32),
            parties=tuple(p.agent for p in self.parties),
            witness=self.witness.agent if self.witness else None,
            entry_zome=0,
            entry_index=0,
            entry=b"\xa0",
            session_time_us=time,
            expires_us=time + 5 * SECOND,
        )
        own = Response.sign(initiator.keys, self.preflight, initiator.head)
        state, effects = initiate(self.preflight, own)
        self.run(initiator, state, effects)

    def run(self, node: SimNode, state: PartyState, effects: list[Effect]) -> None:
        node.state = state
        try:
            for effect in effects:
                self.maybe_crash(node)
                self.execute(node, effect)
        except Crash:
            return

    def execute(self, node: SimNode, effect: Effect) -> None:
        if isinstance(effect, Persist):
            node.lock = effect.state.to_value()
        elif isinstance(effect, Unlock):
            node.lock = None
        elif isinstance(effect, Commit):
            if self.faults and self.data.draw(st.integers(0, 9), label="commit fails?") == 0:
                self.feed(node, CommitDone(False, "disk full"))
                return
            assert node.chain is None, "a party committed twice"
            node.chain = effect.entry
            own = effect.entry.response_of(node.agent)
            assert own is not None and own.head_hash == node.head.hash, "committed off its lock"
            node.head = ChainHead(
                node.head.seq + 2, ActionHash(bytes([200 + node.head.seq % 50]) * 32), 0
            )
            self.maybe_crash(node)
            self.feed(node, CommitDone(True))
        elif isinstance(effect, Send):
            self.inflight.append(Envelope(node, self.node_of(effect.to), effect.message))
        elif isinstance(effect, Finish):
            pass
        if node.state is not None and node.state.phase is Phase.ABANDONED:
            node.abandoned = True

    def feed(self, node: SimNode, event: Event) -> None:
        if not node.alive or node.state is None:
            return
        state, effects = step(node.state, event, self.clock(node))
        self.run(node, state, effects)
        if node.state is not None and node.state.phase is Phase.ABANDONED:
            node.abandoned = True

    def reply(self, envelope: Envelope, event: Event) -> None:
        self.inflight.append(Envelope(envelope.dst, envelope.src, ("reply", event)))

    # ------------------------------------------------------------------------------- delivery

    def deliver(self, envelope: Envelope) -> None:
        dst, body = envelope.dst, envelope.body
        if not dst.alive:
            self.lost(envelope)
            return
        with contextlib.suppress(Crash):
            self.handle(envelope, dst, body)

    def lost(self, envelope: Envelope) -> None:
        """A request that gets no answer times out at its sender."""
        if isinstance(envelope.body, PreflightMsg):
            self.reply(envelope, GotRefusal(envelope.dst.agent, "timed out"))

    def handle(self, envelope: Envelope, dst: SimNode, body: Any) -> None:
        if isinstance(body, tuple):
            self.feed(dst, body[1])
        elif isinstance(body, PreflightMsg):
            seen = dst.chain is not None or dst.state is not None
            reason = refusal(
                body.preflight, dst.agent, self.clock(dst), locked=dst.lock is not None, seen=seen
            )
            if reason is not None:
                self.reply(envelope, GotRefusal(dst.agent, reason))
                return
            if self.faults and self.data.draw(st.integers(0, 19), label="refuse?") == 0:
                self.reply(envelope, GotRefusal(dst.agent, "declined"))
                return
            own = Response.sign(dst.keys, body.preflight, dst.head)
            state, effects = respond(body.preflight, own)
            dst.state = state
            for effect in effects:
                self.maybe_crash(dst)
                self.execute(dst, effect)
            self.maybe_crash(dst)
            self.reply(envelope, GotResponse(own))
        elif isinstance(body, DecideMsg):
            sid = body.preflight.session_id
            record, verdict = witness_decide(
                dst.witness.get(sid), dst.keys, body.preflight, body.responses, self.clock(dst)
            )
            self.record(dst, sid, record)
            self.reply(envelope, GotVerdict(dst.agent, verdict))
        elif isinstance(body, QueryMsg):
            sid = body.preflight.session_id
            if dst is self.witness:
                record, verdict = witness_query(
                    dst.witness.get(sid), body.preflight, self.clock(dst)
                )
                self.record(dst, sid, record)
            else:
                verdict = answer_query(dst.agent, body.preflight, dst.state, dst.chain)
            self.reply(envelope, GotVerdict(dst.agent, verdict))
        elif isinstance(body, SetMsg):
            self.feed(dst, GotSet(body.entry))
        elif isinstance(body, AbandonMsg):
            self.feed(dst, GotAbandonHint())

    def record(self, node: SimNode, sid: bytes, record: WitnessRecord | None) -> None:
        if record is not None and sid not in node.witness:
            self.maybe_crash(node)
            node.witness[sid] = record

    # ------------------------------------------------------------------------------ lifecycle

    def crash(self, node: SimNode) -> None:
        node.alive = False
        node.state = None

    def restart(self, node: SimNode) -> None:
        if node.alive:
            return
        node.alive = True
        if node.lock is None:
            return
        durable = PartyState.from_value(node.lock)
        on_chain = node.chain if node.chain and node.chain.preflight == durable.preflight else None
        state, effects = restart(durable, on_chain, self.clock(node))
        self.run(node, state, effects)
        if node.state is not None and node.state.phase is Phase.ABANDONED:
            node.abandoned = True

    # ----------------------------------------------------------------------------- invariants

    def check_safety(self) -> None:
        committed = [p for p in self.parties if p.chain is not None]
        abandoned = [p for p in self.parties if p.abandoned]
        assert not (committed and abandoned), "one party committed while another abandoned"
        assert len({p.chain for p in committed}) <= 1, "parties committed different sets"
        for party in committed:
            assert party.chain is not None and party.chain.problem() is None

    def heal(self) -> None:
        self.faults = False
        for node in self.nodes:
            self.restart(node)
        for _ in range(60):
            while self.inflight:
                self.deliver(self.inflight.pop(0))
                self.check_safety()
            if not any(self.locked(p) for p in self.parties):
                break
            self.now += 6 * SECOND
            for node in self.nodes:
                self.feed(node, Tick())
        self.check_safety()
        assert not any(self.locked(p) for p in self.parties), "a chain stayed locked"
        committed = [p for p in self.parties if p.chain is not None]
        assert len(committed) in (0, len(self.parties)), "some parties committed, others not"

    @staticmethod
    def locked(node: SimNode) -> bool:
        return node.lock is not None or (node.state is not None and node.state.locked)


@settings(
    max_examples=int(os.environ.get("IOE_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    parties=st.integers(2, 4),
    witness=st.booleans(),
    steps=st.integers(0, 40),
)
def test_every_party_commits_or_none_does(
    data: Any, parties: int, witness: bool, steps: int
) -> None:
    world = World(data, parties, witness)
    world.start()
    for _ in range(steps):
        action = data.draw(st.sampled_from(["deliver"] * 4 + ["drop", "dup", "tick", "crash"]))
        nodes = world.nodes
        if action in ("deliver", "drop", "dup") and world.inflight:
            index = data.draw(st.integers(0, len(world.inflight) - 1))
            if action == "deliver":
                world.deliver(world.inflight.pop(index))
            elif action == "drop":
                world.lost(world.inflight.pop(index))
            else:
                world.inflight.append(world.inflight[index])
        elif action == "tick":
            world.now += data.draw(
                st.sampled_from([0, SECOND // 10, SECOND, 3 * SECOND, 30 * SECOND])
            )
            node = data.draw(st.sampled_from(nodes))
            world.feed(node, Tick())
        elif action == "crash":
            node = data.draw(st.sampled_from(nodes))
            if node.alive:
                world.crash(node)
            else:
                world.restart(node)
        world.check_safety()
    world.heal()


def test_a_session_with_no_faults_commits_everywhere() -> None:
    class NoFaults:
        def draw(self, strategy: Any, label: str = "") -> Any:
            return 0

    for witness in (False, True):
        world = World(NoFaults(), 3, witness)
        world.faults = False
        world.start()
        while world.inflight:
            world.deliver(world.inflight.pop(0))
        assert all(p.chain is not None for p in world.parties)
        assert not any(world.locked(p) for p in world.parties)


def test_a_party_that_signed_never_unlocks_on_a_timer_alone() -> None:
    initiator, party = KEYS[0], KEYS[1]
    head = ChainHead(3, ActionHash(b"h" * 32), 0)
    preflight = Preflight(
        b"t" * 16, DnaHash(b"d" * 32), (initiator.agent, party.agent), None, 0, 0, b"\xa0", 0, 10
    )
    state, _ = respond(preflight, Response.sign(party, preflight, head))
    for now in (5, 10, 10**9, 10**15):
        state, effects = step(state, Tick(), now)
        assert state.phase is Phase.LOCKED
        assert not any(isinstance(e, Unlock) for e in effects)
    # A non-decider's "abandoned" is not authoritative; the decider's is.
    state, _ = step(state, GotVerdict(party.agent, Verdict(VerdictKind.ABANDONED)), 10**15)
    assert state.phase is Phase.LOCKED
    state, effects = step(state, GotVerdict(initiator.agent, Verdict(VerdictKind.ABANDONED)), 1)
    assert state.phase is Phase.ABANDONED and Unlock() in effects


def test_a_party_refuses_sessions_from_a_far_clock_or_too_long_to_lock_for() -> None:
    initiator, party = KEYS[0], KEYS[1]
    now = 1_800_000_000_000_000

    def preflight(session_time_us: int, expires_us: int) -> Preflight:
        parties = (initiator.agent, party.agent)
        return Preflight(
            b"t" * 16, DnaHash(b"d" * 32), parties, None, 0, 0, b"\xa0", session_time_us, expires_us
        )

    def judge(p: Preflight) -> str | None:
        return refusal(p, party.agent, now, locked=False, seen=False)

    assert judge(preflight(now, now + 10_000_000)) is None
    assert judge(preflight(now + 29_000_000, now + 40_000_000)) is None  # within the skew
    far = judge(preflight(now + 60 * 10**6, now + 70 * 10**6))
    assert far is not None and "clock" in far
    century = judge(preflight(now, now + 100 * 365 * 86_400 * 10**6))
    assert century is not None and "at most 600 s" in century
