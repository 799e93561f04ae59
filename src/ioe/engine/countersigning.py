"""Countersigning: one entry signed by several agents whose chains were locked for it.

A session runs: preflight → each party locks its chain and signs a response naming its chain
head → the decider gathers every response (and, with a witness, the witness signs the set) →
every party commits the same :class:`CountersignedEntry` with its own ``Create``.

The entry carries the whole session: the :class:`Preflight` (session id, DNA, parties in order,
optional witness, the app entry's type and bytes, session time, expiry) and every party's
:class:`Response` (its chain head at the lock and its signature over the preflight hash and that
head, under :data:`SIGNATURE_CONTEXT`). Each party's committing action is fully determined by the
set: ``Create`` by that party at ``head_seq + 1`` after ``head_hash``, timestamped
``max(session_time, head_timestamp)``. Validation (the ``countersigning`` integrity zome below)
checks exactly that and every signature, and (``ioe.engine.validation.countersigned_outcome``)
that the embedded app entry passes its own zome's rules. So a party needs nothing from the
others but the signature set to commit: completion depends only on holding the set. The session
protocol (who may decide, locks, timeouts) is :mod:`ioe.engine.countersign_machine`; the full
story is ``docs/countersigning.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import encode
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, Outcome
from ioe.engine.ports import ChainHead, ChainQuery
from ioe.engine.records import ActionType, AppEntryType, Create, Visibility
from ioe.engine.schema import decode_as, to_value
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import ChainError, EncodingError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey, DnaHash, blake2b_256

if TYPE_CHECKING:
    from ioe.engine.cell import CallContext, Cell
    from ioe.engine.dna import DnaDef

COUNTERSIGNING_ZOME = "countersigning"
SIGNATURE_CONTEXT = b"ioe/countersign/v1"
WITNESS_CONTEXT = b"ioe/countersign-witness/v1"
SESSION_ID_BYTES = 16
MAX_PARTIES = 8
MAX_INNER_ENTRY_BYTES = 256 * 1024

VerifyFn = Callable[[AgentPubKey, bytes, bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class Preflight:
    """What every party is asked to sign: the session and the app entry they will commit."""

    session_id: bytes
    dna_hash: DnaHash
    parties: tuple[AgentPubKey, ...]
    """In order; the first is the initiator."""
    witness: AgentPubKey | None
    entry_zome: int
    entry_index: int
    entry: bytes
    """Canonical bytes of the app entry value."""
    session_time_us: int
    expires_us: int

    def hash(self) -> bytes:
        return blake2b_256(encode(to_value(self)))

    @property
    def initiator(self) -> AgentPubKey:
        return self.parties[0]

    @property
    def decider(self) -> AgentPubKey:
        """Who alone can first assemble a committable set: the witness, else the initiator."""
        return self.witness if self.witness is not None else self.parties[0]

    @property
    def entry_type(self) -> AppEntryType:
        return AppEntryType(self.entry_zome, self.entry_index, Visibility.PUBLIC)

    def problem(self) -> str | None:
        """Why this preflight is malformed, or None (signatures are not its business)."""
        if len(self.session_id) != SESSION_ID_BYTES:
            return f"a session id has {SESSION_ID_BYTES} bytes"
        if not 2 <= len(self.parties) <= MAX_PARTIES:
            return f"a session has 2 to {MAX_PARTIES} parties"
        if len(set(self.parties)) != len(self.parties):
            return "each party appears once"
        if self.witness is not None and self.witness in self.parties:
            return "the witness is not a party"
        if not 0 <= self.session_time_us < self.expires_us:
            return "a session expires after its session time"
        if len(self.entry) > MAX_INNER_ENTRY_BYTES:
            return f"the app entry is over {MAX_INNER_ENTRY_BYTES} bytes"
        return None


@dataclass(frozen=True, slots=True)
class Response:
    """A party's acceptance: its chain is locked at this head, and it signs that."""

    agent: AgentPubKey
    head_seq: int
    head_hash: ActionHash
    head_timestamp: int
    signature: bytes

    @staticmethod
    def message(preflight_hash: bytes, seq: int, head: ActionHash, timestamp: int) -> bytes:
        return encode([preflight_hash, seq, head, timestamp])

    @classmethod
    def sign(cls, keys: KeyPair, preflight: Preflight, head: ChainHead) -> Response:
        message = cls.message(preflight.hash(), head.seq, head.hash, head.timestamp)
        signature = keys.sign(SIGNATURE_CONTEXT, message)
        return cls(keys.agent, head.seq, head.hash, head.timestamp, signature)

    def valid_for(self, preflight: Preflight, verify_fn: VerifyFn = verify) -> bool:
        message = self.message(preflight.hash(), self.head_seq, self.head_hash, self.head_timestamp)
        return verify_fn(self.agent, SIGNATURE_CONTEXT, message, self.signature)


@dataclass(frozen=True, slots=True)
class CountersignedEntry:
    """The entry every party commits: the preflight, every response, the witness's signature."""

    preflight: Preflight
    responses: tuple[Response, ...]
    witness_signature: bytes | None = None

    @property
    def session_id(self) -> bytes:
        return self.preflight.session_id

    def response_of(self, agent: AgentPubKey) -> Response | None:
        return next((r for r in self.responses if r.agent == agent), None)

    def witness_message(self) -> bytes:
        return encode([self.preflight.hash(), [to_value(r) for r in self.responses]])

    def with_witness(self, keys: KeyPair) -> CountersignedEntry:
        signature = keys.sign(WITNESS_CONTEXT, self.witness_message())
        return CountersignedEntry(self.preflight, self.responses, signature)

    def problem(self, verify_fn: VerifyFn = verify) -> str | None:
        """Why this is not a complete, correctly signed set, or None."""
        preflight = self.preflight
        problem = preflight.problem()
        if problem:
            return problem
        if tuple(r.agent for r in self.responses) != preflight.parties:
            return "one response per party, in the parties' order"
        for response in self.responses:
            if not response.valid_for(preflight, verify_fn):
                return f"the response of {response.agent.short()} is not validly signed"
        if preflight.witness is None:
            if self.witness_signature is not None:
                return "a session without a witness has no witness signature"
        elif self.witness_signature is None or not verify_fn(
            preflight.witness, WITNESS_CONTEXT, self.witness_message(), self.witness_signature
        ):
            return "the witness has not validly signed the set"
        return None


def action_problem(action: Create, entry: CountersignedEntry) -> str | None:
    """Whether ``action`` is its author's committing action for ``entry``, fixed by the set."""
    response = entry.response_of(action.author)
    if response is None:
        return "the author is not a party to the session"
    if action.seq != response.head_seq + 1 or action.prev != response.head_hash:
        return "the action does not follow the chain head its author locked"
    if action.timestamp != max(entry.preflight.session_time_us, response.head_timestamp):
        return "the action's timestamp is not the session time"
    return None


def inner_entry(dna: DnaDef, entry: CountersignedEntry) -> tuple[IntegrityZome, object] | str:
    """The zome and decoded value of the app entry a session carries, or why it has none."""
    preflight = entry.preflight
    zome = dna.integrity_zome(preflight.entry_zome)
    entry_def = dna.entry_def(preflight.entry_type)
    if zome is None or entry_def is None:
        return "the countersigned app entry type is not defined by the DNA"
    if zome.name == COUNTERSIGNING_ZOME:
        return "countersigned entries do not nest"
    if entry_def.visibility is not Visibility.PUBLIC:
        return "only public entry types can be countersigned"
    try:
        return zome, decode_as(entry_def.cls, preflight.entry)
    except EncodingError as exc:
        return f"the countersigned app entry does not fit its type: {exc}"


# ---------------------------------------------------------------------------------- the zome


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    if isinstance(op.app_entry, CountersignedEntry):
        if not isinstance(action, Create):
            return Invalid("a countersigned entry is only ever created")
        problem = op.app_entry.problem(host.verify_signature) or action_problem(
            action, op.app_entry
        )
        if problem:
            return Invalid(problem)
    return VALID


integrity = IntegrityZome(
    name=COUNTERSIGNING_ZOME,
    version="1",
    entry_defs=(EntryDef("countersigned", CountersignedEntry, Visibility.PUBLIC),),
    validate=validate,
)


# ------------------------------------------------------------------------- chain operations


def commit_session(cell: Cell, entry: CountersignedEntry) -> ActionHash:
    """Commit ``entry`` as this cell's party action: one ``Create``, fixed by the set.

    The one write a locked chain accepts. Raises ``ChainError`` if the chain moved since the
    lock, ``ValidationError`` if the set does not validate (nothing is committed then)."""
    response = entry.response_of(cell.agent)
    if response is None:
        raise ChainError("this agent is not a party to the session")
    head = cell.store.head()
    if head is None or head.hash != response.head_hash:
        raise ChainError("the chain moved since it was locked for the session")

    def write(ctx: CallContext) -> ActionHash:
        return ctx.create(entry)

    return cell.session_commit(write, now_us=entry.preflight.session_time_us)


def committed_sessions(cell: Cell) -> list[tuple[ActionHash, CountersignedEntry]]:
    """Every countersigned entry on ``cell``'s chain with its committing action, in order."""
    try:
        entry_type, _ = cell.dna.entry_type_for(CountersignedEntry)
    except ZomeCallError:  # a DNA without the countersigning zome has no sessions
        return []
    records = cell.store.query(ChainQuery(action_type=ActionType.CREATE, entry_type=entry_type))
    found = []
    for record in records:
        value = cell.entry_value(record)
        if isinstance(value, CountersignedEntry):
            found.append((record.action_hash, value))
    return found


def find_committed(cell: Cell, session_id: bytes) -> tuple[ActionHash, CountersignedEntry] | None:
    """This chain's committing action and entry for ``session_id``, or None (a full scan)."""
    for action, entry in reversed(committed_sessions(cell)):
        if entry.session_id == session_id:
            return action, entry
    return None
