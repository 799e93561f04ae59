"""The validation workflow: system rules every record obeys, then the DNA's app rules.

System validation (:func:`check_record`) is the same for every DNA: signature, hash chain,
sequence, timestamps, the genesis sequence, entry hashes and declared types. App validation
(:func:`validate_app`) turns a record into its ops and hands each to the integrity zome it belongs
to. :class:`ChainVerifier` runs both over a stored chain one record at a time, so a store can
verify incrementally from a known-good point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from ioe.crypto.keys import verify
from ioe.encoding import Value
from ioe.engine.countersigning import CountersignedEntry, inner_entry
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import (
    VALID,
    Invalid,
    Outcome,
    Unresolved,
    UnresolvedDependency,
    Valid,
)
from ioe.engine.ops import Op, OpType
from ioe.engine.records import (
    AGENT_ENTRY_TYPE,
    AgentValidationPkg,
    Create,
    CreateLink,
    Dna,
    Entry,
    EntryKind,
    InitZomesComplete,
    Record,
    SignedAction,
)
from ioe.engine.schema import decode_as
from ioe.errors import ChainIntegrityError, EncodingError
from ioe.hashing import ActionHash, AgentPubKey, EntryHash

GENESIS_LENGTH = 4
"""Dna, AgentValidationPkg, Create(agent key), InitZomesComplete."""


class RecordSource(Protocol):
    """Read access to content-addressed records (a store, a scratch space, later the DHT)."""

    def get_action(self, action_hash: ActionHash) -> SignedAction | None: ...

    def get_entry(self, entry_hash: EntryHash) -> Entry | None: ...

    def get_record(self, action_hash: ActionHash) -> Record | None:
        """The action with its entry when the source has it (an authority may hold a record's
        entry with the record, not under the entry's own hash)."""
        ...

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None: ...


def check_record(
    record: Record,
    prev: SignedAction | None,
    dna: DnaDef | None,
    *,
    check_signature: bool = True,
    require_entry: bool = True,
) -> str | None:
    """The first system rule ``record`` breaks given its predecessor, or None if it breaks none."""
    signed = record.signed_action
    if check_signature and not signed.signature_valid():
        return "signature does not verify"
    return check_link(signed, prev) or check_content(record, dna, require_entry=require_entry)


def check_link(signed: SignedAction, prev: SignedAction | None) -> str | None:
    """Rules between an action and the one before it on its chain (None: it is the first)."""
    action = signed.action
    if prev is None:
        if not isinstance(action, Dna):
            return "a chain must start with the Dna action"
        if action.prev is not None:
            return "the first action cannot have a previous action"
        return None
    prev_action = prev.action
    if action.prev != prev.hash:
        return "previous-action hash does not match the record before it"
    if action.seq != prev_action.seq + 1:
        return f"sequence number {action.seq} does not follow {prev_action.seq}"
    if action.author != prev_action.author:
        return "author differs from the rest of the chain"
    if action.timestamp < prev_action.timestamp:
        return "timestamp is earlier than the previous action's"
    return None


def check_content(record: Record, dna: DnaDef | None, *, require_entry: bool = True) -> str | None:
    """Rules a record obeys on its own: genesis positions, DNA, entry hash, kind and type."""
    action = record.action
    reason = _check_genesis_position(record)
    if reason:
        return reason
    if (action.prev is None) != (action.seq == 0):
        return "only the first action has no previous action"
    if isinstance(action, Dna) and dna is not None and action.dna_hash != dna.hash:
        return "chain belongs to another DNA"

    entry_hash = action.entry_hash
    if entry_hash is not None:
        entry = record.entry
        if entry is None:
            if require_entry:
                return "entry is missing"
        elif entry.hash() != entry_hash:
            return "entry does not match its hash"
        entry_type = action.entry_type
        assert entry_type is not None
        is_agent_type = entry_type == AGENT_ENTRY_TYPE
        if entry is not None and (entry.kind is EntryKind.AGENT) != is_agent_type:
            return "entry kind does not match its entry type"
        if dna is not None and not is_agent_type:
            entry_def = dna.entry_def(entry_type)
            if entry_def is None:
                return "entry type is not defined by the DNA"
            if entry_def.visibility != entry_type.visibility:
                return f"entry type {entry_def.name} has the wrong visibility"
    if isinstance(action, CreateLink) and dna is not None:
        zome = dna.integrity_zome(action.zome_index)
        if zome is None or action.link_type >= len(zome.link_types):
            return "link type is not defined by the DNA"
    return None


def _check_genesis_position(record: Record) -> str | None:
    action = record.action
    seq = action.seq
    expected: type | None = None
    if seq == 0:
        expected = Dna
    elif seq == 1:
        expected = AgentValidationPkg
    elif seq == 2:
        expected = Create
    elif seq == 3:
        expected = InitZomesComplete
    if expected is not None:
        if not isinstance(action, expected):
            return f"genesis record #{seq} must be {expected.__name__}"
        if seq == 2:
            assert isinstance(action, Create)
            if action.app_entry_type != AGENT_ENTRY_TYPE:
                return "genesis record #2 must create the agent key entry"
            if record.entry is not None and record.entry.payload != bytes(action.author):
                return "genesis agent entry is not the author's key"
        return None
    if isinstance(action, Dna | AgentValidationPkg | InitZomesComplete):
        return f"{type(action).__name__} is only allowed in genesis"
    if action.entry_type == AGENT_ENTRY_TYPE:
        return "agent key entries are only written at genesis"
    return None


# ------------------------------------------------------------------------------- app validation


class SourceHost:
    """An :class:`IntegrityHost` over a :class:`RecordSource` (no clock, randomness or I/O)."""

    __slots__ = ("_dna", "_source")

    def __init__(self, dna: DnaDef, source: RecordSource) -> None:
        self._dna = dna
        self._source = source

    @property
    def dna_properties(self) -> Mapping[str, Value]:
        return self._dna.properties

    def verify_signature(
        self, agent: AgentPubKey, context: bytes, message: bytes, signature: bytes
    ) -> bool:
        return verify(agent, context, message, signature)

    def must_get_action(self, action_hash: ActionHash) -> SignedAction:
        found = self._source.get_action(action_hash)
        if found is None:
            raise UnresolvedDependency(action_hash)
        return found

    def must_get_entry(self, entry_hash: EntryHash) -> Entry:
        found = self._source.get_entry(entry_hash)
        if found is None:
            raise UnresolvedDependency(entry_hash)
        return found

    def must_get_valid_record(self, action_hash: ActionHash) -> Record:
        record = self._source.get_record(action_hash)
        if record is None:
            raise UnresolvedDependency(action_hash)
        entry_hash = record.action.entry_hash
        entry = record.entry
        if entry_hash is not None and entry is None:
            entry = self._source.get_entry(entry_hash)
        if entry_hash is not None and entry is None and not record.is_private():
            raise UnresolvedDependency(entry_hash)
        return Record(record.signed_action, entry)

    def must_get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction]:
        found = self._source.get_agent_activity(author, chain_top)
        if found is None:
            raise UnresolvedDependency(chain_top)
        return found


def decode_app_entry(dna: DnaDef, record: Record) -> object | None:
    """The record's app entry as its zome's dataclass (None when it has no app entry)."""
    action, entry = record.action, record.entry
    if entry is None or entry.kind is not EntryKind.APP or action.entry_type is None:
        return None
    entry_def = dna.entry_def(action.entry_type)
    if entry_def is None:
        raise EncodingError("entry type is not defined by the DNA")
    return decode_as(entry_def.cls, entry.payload)


def validate_app(record: Record, dna: DnaDef, host: SourceHost) -> Outcome:
    """Run the DNA's integrity zomes over ``record`` as its author (or a chain verifier) sees it.

    Two ops are judged: STORE_RECORD, which carries the entry (private ones too, in this view),
    and REGISTER_AGENT_ACTIVITY, which carries the action only. STORE_ENTRY would repeat
    STORE_RECORD's content, so it is judged by the authorities that hold it, not here; entry
    rules must therefore accept or reject STORE_RECORD and STORE_ENTRY alike.
    """
    if isinstance(record.action, AgentValidationPkg):
        membrane = dna.check_membrane(record.action.author, record.action.membrane_proof)
        if not isinstance(membrane, Valid):
            return membrane
    try:
        app_entry = decode_app_entry(dna, record)
    except EncodingError as exc:
        return Invalid(f"entry does not fit its type: {exc}")
    signed = record.signed_action
    zome_index = _zome_of(record)
    if zome_index is None:
        zomes = dna.integrity_zomes
    else:
        zome = dna.integrity_zome(zome_index)
        zomes = (zome,) if zome is not None else ()
    ops = (
        Op(OpType.STORE_RECORD, signed, record.entry, app_entry),
        Op(OpType.REGISTER_AGENT_ACTIVITY, signed),
    )
    for op in ops:
        for zome in zomes:
            outcome = run_validation(zome.validate, op, host)
            if not isinstance(outcome, Valid):
                return outcome
    return countersigned_outcome(ops[0], dna, host)


def countersigned_outcome(op: Op, dna: DnaDef, host: SourceHost) -> Outcome:
    """For an op carrying a countersigned entry, the verdict of the embedded app entry's own
    zome: it sees the app value as ``op.app_entry`` and the session as ``op.session``. Other ops
    (and the entry-less ones) are VALID here."""
    session = op.app_entry
    if not isinstance(session, CountersignedEntry) or op.type not in (
        OpType.STORE_RECORD,
        OpType.STORE_ENTRY,
    ):
        return VALID
    found = inner_entry(dna, session)
    if isinstance(found, str):
        return Invalid(found)
    zome, value = found
    inner = Op(op.type, op.signed_action, op.entry, value, session)
    return run_validation(zome.validate, inner, host)


def _zome_of(record: Record) -> int | None:
    action = record.action
    if isinstance(action, CreateLink):
        return action.zome_index
    entry_type = action.entry_type
    if entry_type is not None and entry_type != AGENT_ENTRY_TYPE:
        return entry_type.zome_index
    return None


def run_validation(
    validate: Callable[[Op, SourceHost], Outcome], op: Op, host: SourceHost
) -> Outcome:
    """One zome's verdict on one op; crashes and dependency gaps become outcomes."""
    try:
        outcome = validate(op, host)
    except UnresolvedDependency as missing:
        return Unresolved(missing.deps)
    except Exception as exc:  # a validation function that crashes judges the op invalid
        return Invalid(f"validation raised {type(exc).__name__}: {exc}")
    if not isinstance(outcome, Valid | Invalid | Unresolved):
        return Invalid(f"validation returned {outcome!r}, not an Outcome")
    return outcome


class ChainVerifier:
    """Verifies a chain record by record; raises :class:`ChainIntegrityError` at the first bad one.

    Start from genesis, or from a record already known good (``after``) to verify incrementally.
    With an ``app_host`` the DNA's app rules run too.
    """

    __slots__ = ("_app_host", "_dna", "_forgotten", "_prev", "count")

    def __init__(
        self,
        dna: DnaDef | None = None,
        *,
        after: SignedAction | None = None,
        app_host: SourceHost | None = None,
        forgotten: frozenset[ActionHash] = frozenset(),
    ) -> None:
        self._dna = dna
        self._prev = after
        self._app_host = app_host
        self._forgotten = forgotten
        """Records whose private entry is known to be lost (a chain restored from the network,
        where private entries never travel): only their entry may be missing."""
        self.count = 0

    @property
    def head(self) -> SignedAction | None:
        return self._prev

    def feed(self, record: Record, *, check_signature: bool = True) -> None:
        """Check ``record`` after the last one fed. ``check_signature=False`` is for callers that
        verify signatures separately (in a batch, on another core) before trusting the result."""
        forgotten = (
            record.entry is None
            and record.is_private()
            and record.signed_action.hash in self._forgotten
        )
        reason = check_record(
            record,
            self._prev,
            self._dna,
            check_signature=check_signature,
            require_entry=not forgotten,
        )
        if reason is None and not forgotten and self._app_host and self._dna is not None:
            outcome = validate_app(record, self._dna, self._app_host)
            if isinstance(outcome, Invalid):
                reason = f"invalid: {outcome.reason}"
            elif isinstance(outcome, Unresolved):
                reason = "unresolved dependencies: " + ", ".join(d.short() for d in outcome.deps)
        if reason is not None:
            action = record.action
            raise ChainIntegrityError(
                action.author.to_text(), action.seq, record.action_hash.to_text(), reason
            )
        self._prev = record.signed_action
        self.count += 1
