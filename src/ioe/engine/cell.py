"""A cell: one agent running one DNA, with its source chain.

Zome functions write into a scratch space; when the function returns, every new record is
validated (system rules, then the DNA's app rules) and the whole batch is appended to the store in
one transaction. If the function raises or any record is invalid, nothing is committed.
The current time is always passed in (``now_us``), never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ioe.crypto.keys import KeyPair
from ioe.encoding import encode
from ioe.engine.capability import authorize_call
from ioe.engine.dna import CellId, DnaDef
from ioe.engine.integrity import Invalid, Unresolved
from ioe.engine.ports import ChainHead, ChainQuery, ChainStore, Link
from ioe.engine.records import (
    AGENT_ENTRY_TYPE,
    ActionType,
    AgentValidationPkg,
    AnyAction,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    Entry,
    InitZomesComplete,
    Record,
    SignedAction,
    Update,
)
from ioe.engine.schema import from_value, to_value
from ioe.engine.signals import MAX_SIGNAL_TARGETS, RemoteSignal, Signal, signal_value
from ioe.engine.validation import (
    GENESIS_LENGTH,
    RecordSource,
    SourceHost,
    check_record,
    decode_app_entry,
    validate_app,
)
from ioe.errors import (
    ChainError,
    ChainLocked,
    MissingDependencies,
    ValidationError,
    ZomeCallError,
)
from ioe.hashing import ActionHash, AgentPubKey, EntryHash, HoloHash

T = TypeVar("T")


class Scratch:
    """Records written during one zome call, overlaid on the store for reads; what neither has
    comes from ``reader`` (other agents' records the node holds or has fetched), if any."""

    __slots__ = ("_by_action", "_entries", "reader", "records", "store")

    def __init__(self, store: ChainStore, reader: RecordSource | None = None) -> None:
        self.store = store
        self.reader = reader
        self.records: list[Record] = []
        self._by_action: dict[ActionHash, Record] = {}
        self._entries: dict[EntryHash, Entry] = {}

    def add(self, record: Record) -> None:
        self.records.append(record)
        self._by_action[record.action_hash] = record
        if record.entry is not None and record.action.entry_hash is not None:
            self._entries[record.action.entry_hash] = record.entry

    def get_record(self, action_hash: ActionHash) -> Record | None:
        found = self._by_action.get(action_hash) or self.store.get_record(action_hash)
        if found is None and self.reader is not None:
            found = self.reader.get_record(action_hash)
        return found

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        record = self._by_action.get(action_hash)
        found = record.signed_action if record else self.store.get_action(action_hash)
        if found is None and self.reader is not None:
            found = self.reader.get_action(action_hash)
        return found

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        found = self._entries.get(entry_hash) or self.store.get_entry(entry_hash)
        if found is None and self.reader is not None:
            found = self.reader.get_entry(entry_hash)
        return found

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        if chain_top in self._by_action:
            stored = self.store.head()
            earlier = (
                self.store.get_agent_activity(author, stored.hash) if stored is not None else []
            )
            if earlier is None:
                return None
            mine = [r.signed_action for r in self.records if r.action.author == author]
            upto = next(i for i, s in enumerate(mine) if s.hash == chain_top)
            return earlier + mine[: upto + 1]
        found = self.store.get_agent_activity(author, chain_top)
        if found is None and self.reader is not None:
            found = self.reader.get_agent_activity(author, chain_top)
        return found


class Cell:
    """One agent's instance of one DNA."""

    def __init__(self, dna: DnaDef, keys: KeyPair, store: ChainStore) -> None:
        self.dna = dna
        self.keys = keys
        self.store = store
        self.id = CellId(dna.hash, keys.agent)
        self.on_signal: Callable[[Cell, Signal], None] | None = None
        """Where local signals go (the node's signal hub); None drops them."""
        self.on_remote_signal: Callable[[Cell, RemoteSignal], None] | None = None
        """Where remote signals go to be sent (the node's network); None drops them."""
        self.lock: bytes | None = None
        """The countersigning session holding this chain (None: unlocked). While it is set,
        zome calls may read but not write; only the session's own commit is allowed."""
        self.reader: RecordSource | None = None
        """Where other agents' records are read from, after this chain's own: a node sets it to
        its DNA network's store (what it holds as an authority, and what it fetched). Zome
        reads and validation of this cell's writes both see them."""

    @property
    def agent(self) -> AgentPubKey:
        return self.keys.agent

    def head(self) -> ChainHead | None:
        return self.store.head()

    def has_genesis(self) -> bool:
        head = self.store.head()
        return head is not None and head.seq >= GENESIS_LENGTH - 1

    def genesis(self, membrane_proof: bytes | None, *, now_us: int) -> None:
        """Write the four genesis records. Does nothing if the chain already has them."""
        if self.has_genesis():
            return
        if self.store.head() is not None:
            raise ChainError("chain has a partial genesis; it cannot be completed")
        scratch = Scratch(self.store, self.reader)
        writer = _Writer(self, scratch, now_us, None)
        writer.write(Dna, dna_hash=self.dna.hash)
        writer.write(AgentValidationPkg, membrane_proof=membrane_proof)
        agent_entry = Entry.agent(self.agent)
        writer.write(
            Create,
            entry=agent_entry,
            app_entry_type=AGENT_ENTRY_TYPE,
            created_entry=agent_entry.hash(),
        )
        writer.write(InitZomesComplete)
        self._flush(scratch, None)

    def call(
        self,
        zome: str,
        function: str,
        payload: Any = None,
        *,
        now_us: int,
        provenance: AgentPubKey | None = None,
        cap_secret: bytes | None = None,
    ) -> Any:
        """Run a zome function; its writes are committed atomically when it returns.

        ``provenance`` is the calling agent (default: this cell's own agent, always allowed).
        Any other caller needs a live capability grant on this chain covering the function
        (``ioe.engine.capability``); ``cap_secret`` is the secret it presents. Signals the
        function emits reach the cell's sinks only if the call commits.
        """
        if not self.has_genesis():
            raise ChainError(f"cell {self.id} has no genesis yet")
        caller = self.agent if provenance is None else provenance
        fn = self.dna.coordinator(zome).get(function)
        if caller != self.agent:
            authorize_call(self, caller, zome, function, cap_secret)
        scratch = Scratch(self.store, self.reader)
        head = self.store.head()
        ctx = CallContext(self, scratch, now_us, head, caller)
        result = fn(ctx, payload)
        if scratch.records:
            if self.lock is not None:
                raise ChainLocked(
                    f"the chain of {self.agent.short()} is locked by countersigning session "
                    f"{self.lock.hex()[:12]}; nothing was written (reads still work)"
                )
            self._flush(scratch, head.hash if head else None)
        self._deliver(ctx)
        return result

    def session_commit(self, write: Callable[[CallContext], T], *, now_us: int) -> T:
        """A countersigning session's own commit, the one write a locked chain accepts (only
        :func:`ioe.engine.countersigning.commit_session` calls it). Validated and atomic like
        any zome call."""
        scratch = Scratch(self.store, self.reader)
        head = self.store.head()
        ctx = CallContext(self, scratch, now_us, head)
        result = write(ctx)
        self._flush(scratch, head.hash if head else None)
        return result

    def _deliver(self, ctx: CallContext) -> None:
        for signal in ctx.signals:
            if self.on_signal is not None:
                self.on_signal(self, signal)
        for remote in ctx.remote_signals:
            if self.on_remote_signal is not None:
                self.on_remote_signal(self, remote)

    def _flush(self, scratch: Scratch, expected_head: ActionHash | None) -> None:
        host = SourceHost(self.dna, scratch)
        prev = self.store.get_action(expected_head) if expected_head is not None else None
        for record in scratch.records:
            reason = check_record(record, prev, self.dna, check_signature=False)
            if reason is not None:
                raise ValidationError(f"record #{record.action.seq}: {reason}")
            outcome = validate_app(record, self.dna, host)
            if isinstance(outcome, Invalid):
                raise ValidationError(outcome.reason)
            if isinstance(outcome, Unresolved):
                raise MissingDependencies(outcome.deps)
            prev = record.signed_action
        self.store.append(scratch.records, expected_head)

    # ------------------------------------------------------------------ reads outside zome calls

    def get(self, action_hash: ActionHash) -> Record | None:
        return self.store.get_record(action_hash)

    def query(self, query: ChainQuery | None = None) -> list[Record]:
        return self.store.query(query or ChainQuery())

    def entry_value(self, record: Record) -> object | None:
        """The record's app entry decoded into its zome's dataclass."""
        return decode_app_entry(self.dna, record)


class _Writer:
    """Builds, signs and stages actions in order after the chain head."""

    __slots__ = ("_cell", "_prev_hash", "_prev_ts", "_scratch", "_seq", "now_us")

    def __init__(self, cell: Cell, scratch: Scratch, now_us: int, head: ChainHead | None) -> None:
        if type(now_us) is not int or now_us < 0:
            raise ZomeCallError("now_us must be a non-negative integer of microseconds")
        self._cell = cell
        self._scratch = scratch
        self.now_us = now_us
        self._seq = head.seq + 1 if head else 0
        self._prev_hash = head.hash if head else None
        self._prev_ts = head.timestamp if head else 0

    @property
    def next_seq(self) -> int:
        return self._seq

    def write(self, kind: type[AnyAction], *, entry: Entry | None = None, **fields: Any) -> Record:
        timestamp = max(
            self.now_us, self._prev_ts
        )  # a clock that steps back must not break the chain
        action = kind(
            author=self._cell.agent,
            timestamp=timestamp,
            seq=self._seq,
            prev=self._prev_hash,
            **fields,
        )
        record = Record(SignedAction.sign(action, self._cell.keys), entry)
        self._scratch.add(record)
        self._seq += 1
        self._prev_hash = record.action_hash
        self._prev_ts = timestamp
        return record


class CallContext:
    """What a zome function can do: write to its chain, read, and know the time it was given."""

    def __init__(
        self,
        cell: Cell,
        scratch: Scratch,
        now_us: int,
        head: ChainHead | None,
        caller: AgentPubKey | None = None,
    ) -> None:
        self._cell = cell
        self._scratch = scratch
        self._writer = _Writer(cell, scratch, now_us, head)
        self.caller: AgentPubKey = caller if caller is not None else cell.agent
        """Who made this call: the cell's own agent, or a remote agent holding a grant."""
        self.signals: list[Signal] = []
        self.remote_signals: list[RemoteSignal] = []

    @property
    def agent(self) -> AgentPubKey:
        return self._cell.agent

    @property
    def cell(self) -> Cell:
        return self._cell

    # ---------------------------------------------------------------------------------- signals

    def emit_signal(self, zome: str, value: Any) -> None:
        """Tell local listeners (UIs, apps) something happened; sent once the call commits."""
        self.signals.append(Signal(zome, self.agent, signal_value(value)))

    def send_remote_signal(self, zome: str, agents: Sequence[AgentPubKey], value: Any) -> None:
        """Send ``value`` to other agents' nodes (fire and forget) once the call commits."""
        targets = tuple(AgentPubKey(bytes(a)) for a in agents)
        if not targets or len(targets) > MAX_SIGNAL_TARGETS:
            raise ZomeCallError(f"a remote signal goes to 1 to {MAX_SIGNAL_TARGETS} agents")
        self.remote_signals.append(RemoteSignal(zome, self.agent, targets, signal_value(value)))

    @property
    def now_us(self) -> int:
        return self._writer.now_us

    @property
    def next_seq(self) -> int:
        """The sequence number of this call's next write: the chain's length so far, this
        call's writes included (for reading a chain backwards by ``query`` windows)."""
        return self._writer.next_seq

    @property
    def dna(self) -> DnaDef:
        return self._cell.dna

    # ----------------------------------------------------------------------------------- writes

    def create(self, value: object) -> ActionHash:
        """Commit ``value`` (an instance of one of the DNA's entry types)."""
        entry_type, _ = self.dna.entry_type_for(type(value))
        entry = Entry.app(encode(to_value(value)))
        record = self._writer.write(
            Create, entry=entry, app_entry_type=entry_type, created_entry=entry.hash()
        )
        return record.action_hash

    def update(self, original: ActionHash, value: object) -> ActionHash:
        old = self._require(original)
        if not isinstance(old.action, Create | Update):
            raise ZomeCallError("only entries made by Create or Update can be updated")
        entry_type, _ = self.dna.entry_type_for(type(value))
        entry = Entry.app(encode(to_value(value)))
        record = self._writer.write(
            Update,
            entry=entry,
            app_entry_type=entry_type,
            created_entry=entry.hash(),
            original_action=original,
            original_entry=old.action.created_entry,
        )
        return record.action_hash

    def delete(self, target: ActionHash) -> ActionHash:
        old = self._require(target)
        if not isinstance(old.action, Create | Update):
            raise ZomeCallError("only entries made by Create or Update can be deleted")
        record = self._writer.write(
            Delete, deletes_action=target, deletes_entry=old.action.created_entry
        )
        return record.action_hash

    def create_link(
        self, base: HoloHash, target: HoloHash, link_type: str, tag: bytes = b""
    ) -> ActionHash:
        zome_index, link_index = self.dna.link_type_for(link_type)
        record = self._writer.write(
            CreateLink,
            base=base,
            target=target,
            zome_index=zome_index,
            link_type=link_index,
            tag=bytes(tag),
        )
        return record.action_hash

    def delete_link(self, create_link: ActionHash) -> ActionHash:
        old = self._require(create_link)
        if not isinstance(old.action, CreateLink):
            raise ZomeCallError("not a CreateLink action")
        record = self._writer.write(DeleteLink, link_add=create_link, base=old.action.base)
        return record.action_hash

    # ------------------------------------------------------------------------------------ reads

    def get(self, action_hash: ActionHash) -> Record | None:
        return self._scratch.get_record(action_hash)

    def host(self) -> SourceHost:
        """The integrity host validation of this call's writes will use: this chain with the
        call's own writes, then what the cell's reader has (for judging what a record cites
        before writing it)."""
        return SourceHost(self.dna, self._scratch)

    def get_value(self, action_hash: ActionHash, cls: type[T]) -> T | None:
        """The entry committed by ``action_hash`` as an instance of ``cls`` (None if absent)."""
        record = self.get(action_hash)
        if record is None or record.entry is None:
            return None
        return from_value(cls, record.entry.app_value())

    def query(
        self,
        cls: type | None = None,
        *,
        action_type: ActionType | None = None,
        from_seq: int = 0,
        until_seq: int | None = None,
    ) -> list[Record]:
        """This chain's records in order (this call's included), optionally only those of one
        entry type, one action type, or a range of sequence numbers (inclusive)."""
        entry_type = self.dna.entry_type_for(cls)[0] if cls is not None else None
        query = ChainQuery(
            action_type=action_type, entry_type=entry_type, from_seq=from_seq, until_seq=until_seq
        )
        stored = self._cell.store.query(query)
        pending = [
            r
            for r in self._scratch.records
            if (entry_type is None or r.action.entry_type == entry_type)
            and (action_type is None or action_type == r.action.TYPE)
            and from_seq <= r.action.seq
            and (until_seq is None or r.action.seq <= until_seq)
        ]
        return stored + pending

    def get_links(self, base: HoloHash, link_type: str | None = None) -> list[Link]:
        """Live links from ``base`` (committed ones; this call's are visible after it returns)."""
        if link_type is None:
            return self._cell.store.links(base)
        zome_index, link_index = self.dna.link_type_for(link_type)
        return self._cell.store.links(base, zome_index, link_index)

    def _require(self, action_hash: ActionHash) -> Record:
        record = self.get(action_hash)
        if record is None:
            raise ZomeCallError(f"no record {action_hash.short()}")
        return record
