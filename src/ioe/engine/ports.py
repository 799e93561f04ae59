"""The storage port: what the engine needs from a store, implemented in ``ioe.store``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ioe.engine.records import ActionType, AppEntryType, Entry, Record, SignedAction
from ioe.errors import ChainError
from ioe.hashing import ActionHash, AgentPubKey, EntryHash, HoloHash


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: ActionHash
    timestamp: int


@dataclass(frozen=True, slots=True)
class Link:
    """A live link: created and not deleted."""

    create_action: ActionHash
    author: AgentPubKey
    timestamp: int
    base: HoloHash
    target: HoloHash
    zome_index: int
    link_type: int
    tag: bytes


@dataclass(frozen=True, slots=True)
class ChainQuery:
    """Which records of a chain to return, in chain order."""

    action_type: ActionType | None = None
    entry_type: AppEntryType | None = None
    from_seq: int = 0
    until_seq: int | None = None
    include_entries: bool = True
    limit: int | None = None


class ChainStore(Protocol):
    """One cell's source chain, plus content-addressed reads across the whole store.

    Every read returns what was signed: a record (or entry) whose stored bytes do not verify is
    never returned; the read raises ``ChainIntegrityError`` naming it (``docs/engine.md``).
    """

    def head(self) -> ChainHead | None: ...

    def append(self, records: Sequence[Record], expected_head: ActionHash | None) -> None:
        """Add ``records`` atomically after ``expected_head``, or raise ``ChainError`` if the head
        has moved. Returns only once the records are durable."""

    def query(self, query: ChainQuery) -> list[Record]: ...

    def iter_records(self, from_seq: int = 0) -> Iterator[Record]: ...

    def get_record(self, action_hash: ActionHash) -> Record | None: ...

    def get_action(self, action_hash: ActionHash) -> SignedAction | None: ...

    def get_entry(self, entry_hash: EntryHash) -> Entry | None: ...

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None: ...

    def links(
        self, base: HoloHash, zome_index: int | None = None, link_type: int | None = None
    ) -> list[Link]: ...


def require_sequence(records: Sequence[Record], next_seq: int) -> None:
    """Refuse a batch that does not continue the chain at ``next_seq`` without gaps."""
    for offset, record in enumerate(records):
        if record.action.seq != next_seq + offset:
            raise ChainError(
                f"append refused by the store: record #{record.action.seq} where "
                f"#{next_seq + offset} was due"
            )
