"""Countersigning over the network: a thin adapter around :mod:`ioe.engine.countersign_machine`.

One :class:`Countersigner` per DNA network serves ``/ioe/<dna>/countersign/1`` for the node's
cells of that DNA. Requests are canonical CBOR maps ``{"t": kind, ...}``:

``preflight``  ``{p: Preflight, to: agent}`` → ``{r: Response}`` (or refused)
``decide``     ``{p, r: [Response], to: witness}`` → verdict (witness only)
``query``      ``{p, to: agent}`` → verdict: ``{v: "set", e: entry} | {v: "abandoned" | "pending" |
               "unknown"}``
``set``        ``{e: CountersignedEntry}`` → ``{}`` (every local party commits it)
``abandon``    ``{p}`` → ``{}`` (a hint: ask the decider now)
``ping``       → ``{}`` (round-trip measurement for ``ioe bench countersign``)

The adapter turns requests, replies, timeouts and restarts into the machine's events and carries
out its effects in order: a lock is written to the ``settings`` table (durable, survives kill -9)
before the response leaves, and cleared only when the machine unlocks. Locks found at start are
resolved (``restart``). A witness's decisions are kept in ``settings`` too.

At each of :data:`~ioe.faults.SESSION_POINTS` the countersigner tells its
:class:`~ioe.faults.Faults` (nothing, in production; the multi-process crash tests end the
process there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ioe.dht.service import DnaNetwork
from ioe.encoding import Value, decode, encode
from ioe.engine.cell import Cell
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
from ioe.engine.countersigning import (
    SESSION_ID_BYTES,
    CountersignedEntry,
    Preflight,
    Response,
    commit_session,
    committed_sessions,
    inner_entry,
)
from ioe.engine.records import Create, Visibility
from ioe.engine.schema import decode_as, from_value, to_value
from ioe.errors import (
    ChainError,
    ChainLocked,
    EncodingError,
    IoEError,
    MissingDependencies,
    StoreError,
    ValidationError,
)
from ioe.faults import NO_FAULTS, Faults
from ioe.hashing import ActionHash, AgentPubKey
from ioe.net.interface import MAX_PAYLOAD, NetworkError, PeerId, PeerUnreachable, RequestRefused
from ioe.services.resolve import resolving

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 600.0
TICK_S = 0.1
FIND_RECENT_ACTIONS = 64
"""How far back in another party's chain a published set is looked for."""
DELIVERY_WAIT_S = 2.0
KEEP_FINISHED = 1024

Clock = Callable[[], int]
Policy = Callable[[Cell, Preflight, object], "str | None"]
"""A party's own say on a session: the reason to refuse it, or None to accept."""


class CountersignError(IoEError):
    """A session could not start, or ended abandoned; no chain holds it."""


def _verdict_value(verdict: Verdict) -> Value:
    if verdict.entry is not None:
        return {"v": str(verdict.kind), "e": to_value(verdict.entry)}
    return {"v": str(verdict.kind)}


def _verdict(raw: Value) -> Verdict:
    if type(raw) is not dict:
        raise EncodingError("a verdict is a map")
    kind = VerdictKind(str(raw.get("v")))
    entry = from_value(CountersignedEntry, raw["e"]) if kind is VerdictKind.SET else None
    return Verdict(kind, entry)


class Countersigner:
    """Runs countersigning sessions for the local cells of one DNA network."""

    def __init__(
        self,
        dht: DnaNetwork,
        cells: Sequence[Cell],
        *,
        clock: Clock,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.dht = dht
        self.net = dht.net
        self.db = dht.db
        self.dna = dht.dna
        self.clock = clock
        self.protocol = f"/ioe/{self.dna.hash.to_text()}/countersign/1"
        self.cells = {cell.agent: cell for cell in cells}
        self.policy: Policy | None = None
        """An app's say on each session; None: co-sign only ``accept_types``."""
        self.accept_types: frozenset[str] = frozenset()
        self.on_finish: Callable[[PartyState, Verdict], None] | None = None
        self.on_response: Callable[[Preflight, AgentPubKey, Response], None] | None = None
        """Observers (the node's reputation): a session ended here; a party answered."""
        self.sessions: dict[tuple[AgentPubKey, bytes], PartyState] = {}
        self._waiters: dict[tuple[AgentPubKey, bytes], asyncio.Future[Verdict]] = {}
        self._deliveries: dict[tuple[AgentPubKey, bytes], list[asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._committed: dict[tuple[AgentPubKey, bytes], tuple[ActionHash, CountersignedEntry]]
        self._committed = {}
        """Every session on the local chains (built at start, then kept up to date)."""
        self.faults = faults

    # ---------------------------------------------------------------------------- lifecycle

    def _lock_key(self, agent: AgentPubKey) -> str:
        return f"countersign:lock:{self.dna.hash.to_text()}:{agent.to_text()}"

    def _witness_key(self, preflight: Preflight) -> str:
        """Keyed by the whole preflight, not its session id: a party that reuses an honest
        session's id in another preflight must not be able to pre-empt its decision."""
        return f"countersign:witness:{self.dna.hash.to_text()}:{preflight.hash().hex()}"

    async def start(self) -> None:
        """Resolve locks left by a previous run, then serve the protocol."""
        for cell in self.cells.values():
            for action, entry in committed_sessions(cell):
                self._committed[(cell.agent, entry.session_id)] = (action, entry)
        for cell in self.cells.values():
            raw = self.db.get_setting(self._lock_key(cell.agent))
            if raw is None:
                continue
            durable = PartyState.from_value(raw)
            cell.lock = durable.session_id
            found = self.find_committed(cell, durable.session_id)
            state, effects = restart(durable, found[1] if found else None, self.clock())
            log.info("resolving countersigning lock %s: %s", durable.session_id.hex(), state.phase)
            self._run(cell, state, effects)
        self.net.set_handler(self.protocol, self._on_request)
        self._ticker = asyncio.create_task(self._tick_loop(), name="countersign-ticker")

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._ticker] if self._ticker else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, job: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for (agent, session_id), state in list(self.sessions.items()):
                if state.locked:
                    self._feed(self.cells[agent], session_id, Tick())

    # ------------------------------------------------------------------------------ running

    def _feed(self, cell: Cell, session_id: bytes, event: Event) -> None:
        state = self.sessions.get((cell.agent, session_id))
        if state is None:
            return
        new, effects = step(state, event, self.clock())
        self._run(cell, new, effects)

    def _run(self, cell: Cell, state: PartyState, effects: list[Effect]) -> None:
        key = (cell.agent, state.session_id)
        self.sessions[key] = state
        for effect in effects:
            if isinstance(effect, Persist):
                self.db.put_setting(self._lock_key(cell.agent), effect.state.to_value())
                cell.lock = state.session_id
            elif isinstance(effect, Unlock):
                self.db.put_setting(self._lock_key(cell.agent), None)
                if cell.lock == state.session_id:
                    cell.lock = None
            elif isinstance(effect, Commit):
                self._commit(cell, effect.entry)
                return  # the machine went on from CommitDone
            elif isinstance(effect, Send):
                task = self._spawn(self._send(cell, state, effect))
                if isinstance(effect.message, SetMsg):
                    self._deliveries.setdefault(key, []).append(task)
            elif isinstance(effect, Finish):
                if self.on_finish is not None:
                    self.on_finish(state, effect.verdict)
                waiter = self._waiters.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(effect.verdict)
        self._forget_finished()

    def _commit(self, cell: Cell, entry: CountersignedEntry) -> None:
        initiator = entry.preflight.initiator == cell.agent
        if initiator:
            self.faults.reached("initiator-before-commit")
        try:
            action = commit_session(cell, entry)
            self._committed[(cell.agent, entry.session_id)] = (action, entry)
        except (ChainError, ValidationError, StoreError) as exc:
            log.warning("countersigned commit failed: %s", exc)
            self._feed(cell, entry.session_id, CommitDone(False, str(exc)))
            return
        # No notify_commit here: the publisher picks the record up on its next round (≤ 0.25 s),
        # so publishing does not compete with the rest of the session on this event loop.
        if initiator:
            self.faults.reached("initiator-after-commit")
        self._feed(cell, entry.session_id, CommitDone(True))

    def _forget_finished(self) -> None:
        finished = [k for k, s in self.sessions.items() if not s.locked]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.sessions[key]
            self._deliveries.pop(key, None)

    # ---------------------------------------------------------------------------- sending

    async def _request(self, agent: AgentPubKey, body: dict[str, Value], timeout: float) -> Value:
        if agent in self.cells:  # a party on this very node
            return decode(await self._handle(self.net.peer_id, body))
        info = self.dht.members().get(agent)
        if info is None:
            raise PeerUnreachable(f"no member info for {agent.short()}")
        reply = await self.net.request(
            PeerId(info.peer_id), self.protocol, encode(body), timeout=timeout
        )
        return decode(reply, max_size=MAX_PAYLOAD)

    async def _send(self, cell: Cell, state: PartyState, send: Send) -> None:
        message, sid, to = send.message, state.session_id, send.to
        preflight = to_value(state.preflight)
        remaining = max(0.2, (state.preflight.expires_us - self.clock()) / 1e6)
        try:
            if isinstance(message, PreflightMsg):
                try:
                    raw = await self._request(
                        to, {"t": "preflight", "p": preflight, "to": to}, remaining
                    )
                    if type(raw) is not dict:
                        raise EncodingError("a response is a map")
                    response = from_value(Response, raw["r"])
                    if self.on_response is not None:
                        self.on_response(state.preflight, to, response)
                    event: Event = GotResponse(response)
                except (NetworkError, EncodingError, KeyError, IoEError) as exc:
                    event = GotRefusal(to, str(exc))
                self._feed(cell, sid, event)
            elif isinstance(message, DecideMsg | QueryMsg):
                body: dict[str, Value] = {"t": "query", "p": preflight, "to": to}
                if isinstance(message, DecideMsg):
                    body = {**body, "t": "decide", "r": [to_value(r) for r in message.responses]}
                try:
                    verdict = _verdict(await self._request(to, body, 5.0))
                except NetworkError:
                    if isinstance(message, QueryMsg) and to == state.preflight.initiator:
                        # The decider does not answer: its committed set may be on the DHT.
                        found = await self.find_published_set(cell, state.preflight)
                        if found is not None:
                            self._feed(cell, sid, GotSet(found))
                    raise
                self._feed(cell, sid, GotVerdict(to, verdict))
            elif isinstance(message, SetMsg):
                await self._request(to, {"t": "set", "e": to_value(message.entry)}, 5.0)
            elif isinstance(message, AbandonMsg):
                await self._request(to, {"t": "abandon", "p": preflight}, 5.0)
        except (NetworkError, EncodingError, KeyError, ValueError, IoEError) as exc:
            log.debug("countersigning %s to %s failed: %s", type(message).__name__, to, exc)

    # --------------------------------------------------------------------------- answering

    async def _on_request(self, peer: PeerId, payload: bytes) -> bytes:
        members = self.dht.members()
        if peer not in {PeerId(info.peer_id) for info in members.values()}:
            raise RequestRefused("not a member of this DNA's network")
        if self.dht.blocked_peer(peer):
            raise RequestRefused("blocked: this node refuses the peer of a warranted agent")
        try:
            body = decode(payload, max_size=MAX_PAYLOAD)
        except EncodingError as exc:
            raise RequestRefused(f"malformed request: {exc}") from exc
        if type(body) is not dict:
            raise RequestRefused("a countersigning request is a map")
        return await self._handle(peer, body)

    async def _handle(self, peer: PeerId, body: dict[str, Value]) -> bytes:
        kind = body.get("t")
        if kind == "ping":
            return encode({})
        try:
            if kind == "set":
                self.faults.reached("responder-before-set")
                entry = from_value(CountersignedEntry, body["e"])
                for agent in entry.preflight.parties:
                    if agent in self.cells:
                        self._feed(self.cells[agent], entry.session_id, GotSet(entry))
                return encode({})
            preflight = from_value(Preflight, body["p"])
            if kind == "abandon":
                for agent in preflight.parties:
                    if agent in self.cells:
                        self._feed(self.cells[agent], preflight.session_id, GotAbandonHint())
                return encode({})
            to = AgentPubKey(body["to"])
            if kind == "preflight":
                await self._fetch_cited(preflight, to)
                return encode({"r": to_value(self._on_preflight(peer, preflight, to))})
            if kind == "query":
                return encode(_verdict_value(self._answer(preflight, to)))
            if kind == "decide":
                initiator = self.dht.members().get(preflight.initiator)
                if peer != self.net.peer_id and (initiator is None or initiator.peer_id != peer):
                    raise RequestRefused("only the initiator's node asks the witness to decide")
                raw = body["r"]
                responses = tuple(from_value(Response, r) for r in raw)
                return encode(_verdict_value(self._decide(preflight, responses, to)))
        except (EncodingError, KeyError, TypeError, ValueError) as exc:
            raise RequestRefused(f"malformed countersigning request: {exc}") from exc
        raise RequestRefused(f"unknown countersigning request {kind!r}")

    def _on_preflight(self, peer: PeerId, preflight: Preflight, to: AgentPubKey) -> Response:
        self.faults.reached("responder-before-response")
        cell = self.cells.get(to)
        if cell is None:
            raise RequestRefused("no such agent here")
        if preflight.dna_hash != self.dna.hash:
            raise RequestRefused("the session is for another DNA")
        initiator = self.dht.members().get(preflight.initiator)
        if peer != self.net.peer_id and (initiator is None or initiator.peer_id != peer):
            raise RequestRefused("a preflight comes from the initiator's own node")
        for agent in (*preflight.parties, *([preflight.witness] if preflight.witness else [])):
            if self.dht.is_blocked(agent):
                raise RequestRefused(f"{agent.short()} is blocked (warranted)")
        sid = preflight.session_id
        seen = (to, sid) in self.sessions or self.find_committed(cell, sid) is not None
        reason = refusal(preflight, to, self.clock(), locked=cell.lock is not None, seen=seen)
        if reason is None:
            found = inner_entry(self.dna, CountersignedEntry(preflight, ()))
            reason = found if isinstance(found, str) else None
            if reason is None:
                assert not isinstance(found, str)
                if self.policy is not None:
                    try:
                        reason = self.policy(cell, preflight, found[1])
                    except MissingDependencies as exc:
                        reason = f"cannot judge the entry yet, {exc}"
                else:
                    reason = self.default_policy(preflight)
        head = cell.store.head()
        if reason is None and head is None:
            reason = "this chain has no genesis"
        if reason is not None:
            raise RequestRefused(reason)
        assert head is not None
        own = Response.sign(cell.keys, preflight, head)
        state, effects = respond(preflight, own)
        self._run(cell, state, effects)  # the lock is durable before the response leaves
        return own

    async def _fetch_cited(self, preflight: Preflight, to: AgentPubKey) -> None:
        """Before judging a preflight, fetch from the network the records the policy needs
        to judge it (what the entry cites), a bounded number of rounds. The judgement itself
        is made afterwards, without awaiting, right before the lock is taken."""
        cell = self.cells.get(to)
        if self.policy is None or cell is None or preflight.dna_hash != self.dna.hash:
            return
        found = inner_entry(self.dna, CountersignedEntry(preflight, ()))
        if isinstance(found, str):
            return
        policy = self.policy
        with contextlib.suppress(MissingDependencies):
            await resolving(self.dht, lambda: policy(cell, preflight, found[1]))

    def default_policy(self, preflight: Preflight) -> str | None:
        """Without an app's own policy, a node co-signs only the entry types it was told to
        accept (``NodeConfig.countersign_accept``, ``--countersign-accept``): nobody can make
        its chain hold an entry it never agreed to."""
        entry_def = self.dna.entry_def(preflight.entry_type)
        name = entry_def.name if entry_def is not None else "?"
        if name in self.accept_types:
            return None
        return f"this node does not co-sign {name!r} entries on request"

    def _answer(self, preflight: Preflight, asked: AgentPubKey) -> Verdict:
        sid = preflight.session_id
        if preflight.witness == asked and asked in self.cells:
            key = self._witness_key(preflight)
            record, verdict = witness_query(self._witness_record(key), preflight, self.clock())
            self._keep_witness_record(key, record)
            return verdict
        cell = self.cells.get(asked)
        if cell is None:
            raise RequestRefused("no such agent here")
        found = self.find_committed(cell, sid)
        state = self.sessions.get((asked, sid))
        return answer_query(asked, preflight, state, found[1] if found else None)

    def _decide(
        self, preflight: Preflight, responses: tuple[Response, ...], witness: AgentPubKey
    ) -> Verdict:
        cell = self.cells.get(witness)
        if cell is None or preflight.witness != witness:
            raise RequestRefused("this node is not the session's witness")
        key = self._witness_key(preflight)
        record, verdict = witness_decide(
            self._witness_record(key), cell.keys, preflight, responses, self.clock()
        )
        self._keep_witness_record(key, record)
        return verdict

    def _witness_record(self, key: str) -> WitnessRecord | None:
        raw = self.db.get_setting(key)
        if raw is None:
            return None
        if type(raw) is not dict:
            raise StoreError(f"bad witness record {key}")
        entry = raw.get("e")
        return WitnessRecord(None if entry is None else from_value(CountersignedEntry, entry))

    def _keep_witness_record(self, key: str, record: WitnessRecord | None) -> None:
        if record is not None and self.db.get_setting(key) is None:
            entry = None if record.entry is None else to_value(record.entry)
            self.db.put_setting(key, {"e": entry})  # durable before the verdict is sent

    # ---------------------------------------------------------------------------------- API

    async def start_session(
        self,
        cell: Cell,
        others: Sequence[AgentPubKey],
        value: object,
        *,
        witness: AgentPubKey | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> tuple[ActionHash, CountersignedEntry]:
        """Countersign ``value`` (an entry of one of the DNA's public types) with ``others``;
        returns this cell's committing action and the set once every party has it (or could
        not be reached: they will fetch it). Raises :class:`CountersignError` when the session
        is refused or abandoned, ``ChainLocked`` when this chain is already in a session."""
        if cell.lock is not None:
            raise ChainLocked(f"the chain of {cell.agent.short()} is already in a session")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise CountersignError(f"a session times out after 0 to {MAX_TIMEOUT_S:.0f} s")
        entry_type, entry_def = self.dna.entry_type_for(type(value))
        if entry_def.visibility is not Visibility.PUBLIC:
            raise CountersignError("only public entry types can be countersigned")
        for agent in (*others, *([witness] if witness else [])):
            if self.dht.is_blocked(agent):
                raise CountersignError(f"{agent.short()} is blocked (warranted)")
        now = self.clock()
        preflight = Preflight(
            session_id=os.urandom(SESSION_ID_BYTES),
            dna_hash=self.dna.hash,
            parties=(cell.agent, *others),
            witness=witness,
            entry_zome=entry_type.zome_index,
            entry_index=entry_type.entry_index,
            entry=encode(to_value(value)),
            session_time_us=now,
            expires_us=now + int(timeout_s * 1e6),
        )
        problem = preflight.problem()
        if problem is None:
            found = inner_entry(self.dna, CountersignedEntry(preflight, ()))
            problem = found if isinstance(found, str) else None
        head = cell.store.head()
        if problem is None and head is None:
            problem = "this chain has no genesis"
        if problem is not None:
            raise CountersignError(problem)
        assert head is not None
        key = (cell.agent, preflight.session_id)
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        state, effects = initiate(preflight, Response.sign(cell.keys, preflight, head))
        self._run(cell, state, effects)
        try:
            async with asyncio.timeout(timeout_s + 10.0):
                verdict = await waiter
        except TimeoutError:
            raise CountersignError(
                "no decision yet from the witness; the chain stays locked until it answers"
            ) from None
        finally:
            self._waiters.pop(key, None)
        if verdict.kind is not VerdictKind.SET or verdict.entry is None:
            reason = self.sessions[key].reason if key in self.sessions else ""
            raise CountersignError(f"the session was abandoned: {reason or 'no reason given'}")
        deliveries = self._deliveries.pop(key, [])
        if deliveries:
            await asyncio.wait(deliveries, timeout=DELIVERY_WAIT_S)
        committed = self.find_committed(cell, preflight.session_id)
        assert committed is not None
        return committed[0], verdict.entry

    async def find_published_set(
        self, cell: Cell, preflight: Preflight
    ) -> CountersignedEntry | None:
        """The set of ``preflight``'s session as another party committed and published it, read
        from the DHT (that party's agent activity, then the record): how a locked party completes
        when the decider has gone away after committing."""
        entry_type, _ = self.dna.entry_type_for(CountersignedEntry)
        for agent in preflight.parties:
            if agent == cell.agent:
                continue
            try:
                activity = await self.dht.get_agent_activity(agent)
            except (NetworkError, EncodingError):
                continue
            for signed in reversed(activity[-FIND_RECENT_ACTIONS:]):
                action = signed.action
                if not isinstance(action, Create) or action.entry_type != entry_type:
                    continue
                if action.timestamp < preflight.session_time_us:
                    break  # older than the session: it cannot hold it
                record = await self.dht.get_record(signed.hash)
                if record is None or record.entry is None:
                    continue
                try:
                    entry = decode_as(CountersignedEntry, record.entry.payload)
                except EncodingError:
                    continue
                if entry.preflight == preflight:
                    return entry
        return None

    def find_committed(
        self, cell: Cell, session_id: bytes
    ) -> tuple[ActionHash, CountersignedEntry] | None:
        """This cell's committing action and set for ``session_id``, if its chain holds them."""
        return self._committed.get((cell.agent, session_id))

    async def ping(self, agent: AgentPubKey) -> None:
        await self._request(agent, {"t": "ping"}, 5.0)

    def status(self) -> list[dict[str, Value]]:
        """Every local chain's lock, if any."""
        out: list[dict[str, Value]] = []
        for agent, cell in self.cells.items():
            if cell.lock is None:
                continue
            state = self.sessions.get((agent, cell.lock))
            out.append(
                {
                    "agent": agent.to_text(),
                    "session": cell.lock.hex(),
                    "phase": str(state.phase) if state else "unknown",
                }
            )
        return out
