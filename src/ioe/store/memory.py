"""An in-memory store with the same behaviour as the SQLite one, for fast tests and simulations.

It keeps the encoded bytes, not the objects, so what is read back has gone through the same
decoding (and the same checks) as records read from disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ioe.engine.ports import ChainHead, ChainQuery, Link, require_sequence
from ioe.engine.records import CreateLink, DeleteLink, Entry, Record, SignedAction
from ioe.errors import ChainError
from ioe.hashing import ActionHash, AgentPubKey, DnaHash, EntryHash, HoloHash


@dataclass
class _Chain:
    signed: list[bytes] = field(default_factory=list)
    hashes: list[ActionHash] = field(default_factory=list)


class MemoryDatabase:
    """Many chains and their shared, content-addressed entries and links."""

    def __init__(self) -> None:
        self._chains: dict[tuple[DnaHash, AgentPubKey], _Chain] = {}
        self._actions: dict[ActionHash, bytes] = {}
        self._action_chain: dict[ActionHash, tuple[_Chain, int]] = {}
        self._entries: dict[EntryHash, bytes] = {}
        self._links: dict[ActionHash, Link] = {}

    def chain(self, dna_hash: DnaHash, agent: AgentPubKey) -> MemoryChainStore:
        chain = self._chains.setdefault((dna_hash, agent), _Chain())
        return MemoryChainStore(self, chain)

    def cells(self) -> list[tuple[DnaHash, AgentPubKey]]:
        return list(self._chains)

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        data = self._actions.get(action_hash)
        return SignedAction.from_bytes(data) if data is not None else None

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        data = self._entries.get(entry_hash)
        return Entry.from_bytes(data) if data is not None else None

    def get_record(self, action_hash: ActionHash) -> Record | None:
        signed = self.get_action(action_hash)
        if signed is None:
            return None
        entry_hash = signed.action.entry_hash
        return Record(signed, self.get_entry(entry_hash) if entry_hash is not None else None)

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        found = self._action_chain.get(chain_top)
        if found is None:
            return None
        chain, seq = found
        activity = [SignedAction.from_bytes(data) for data in chain.signed[: seq + 1]]
        return activity if activity[0].action.author == author else None

    def links(
        self, base: HoloHash, zome_index: int | None = None, link_type: int | None = None
    ) -> list[Link]:
        found = [
            link
            for link in self._links.values()
            if link.base == base
            and type(link.base) is type(base)
            and (zome_index is None or link.zome_index == zome_index)
            and (link_type is None or link.link_type == link_type)
        ]
        return sorted(found, key=lambda link: (link.timestamp, bytes(link.create_action)))


class MemoryChainStore:
    """One cell's chain in a :class:`MemoryDatabase` (implements ``ChainStore``)."""

    def __init__(self, db: MemoryDatabase, chain: _Chain) -> None:
        self.db = db
        self._chain = chain
        self.get_action = db.get_action
        self.get_entry = db.get_entry
        self.get_record = db.get_record
        self.get_agent_activity = db.get_agent_activity
        self.links = db.links

    def head(self) -> ChainHead | None:
        if not self._chain.signed:
            return None
        last = SignedAction.from_bytes(self._chain.signed[-1])
        return ChainHead(last.action.seq, last.hash, last.action.timestamp)

    def append(self, records: Sequence[Record], expected_head: ActionHash | None) -> None:
        if not records:
            return
        current = self._chain.hashes[-1] if self._chain.hashes else None
        if current != expected_head:
            raise ChainError("the chain head moved during the call; nothing was written")
        require_sequence(records, len(self._chain.signed))
        for record in records:
            data = record.signed_action.to_bytes()
            self.db._action_chain[record.action_hash] = (self._chain, len(self._chain.signed))
            self._chain.signed.append(data)
            self._chain.hashes.append(record.action_hash)
            self.db._actions[record.action_hash] = data
            entry_hash = record.action.entry_hash
            if record.entry is not None and entry_hash is not None:
                self.db._entries.setdefault(entry_hash, record.entry.to_bytes())
            action = record.action
            if isinstance(action, CreateLink):
                self.db._links[record.action_hash] = Link(
                    record.action_hash,
                    action.author,
                    action.timestamp,
                    action.base,
                    action.target,
                    action.zome_index,
                    action.link_type,
                    action.tag,
                )
            elif isinstance(action, DeleteLink):
                self.db._links.pop(action.link_add, None)

    def query(self, query: ChainQuery) -> list[Record]:
        end = len(self._chain.signed) if query.until_seq is None else query.until_seq + 1
        found: list[Record] = []
        for action_hash in self._chain.hashes[query.from_seq : end]:
            if query.limit is not None and len(found) >= query.limit:  # first: limit may be 0
                break
            record = self.db.get_record(action_hash)
            assert record is not None
            action = record.action
            if query.action_type is not None and query.action_type != action.TYPE:
                continue
            if query.entry_type is not None and (
                action.entry_type is None
                or (action.entry_type.zome_index, action.entry_type.entry_index)
                != (query.entry_type.zome_index, query.entry_type.entry_index)
            ):
                continue
            found.append(record if query.include_entries else Record(record.signed_action))
        return found

    def iter_records(self, from_seq: int = 0) -> Iterator[Record]:
        for action_hash in self._chain.hashes[from_seq:]:
            record = self.db.get_record(action_hash)
            assert record is not None
            yield record
