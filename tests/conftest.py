"""Shared by the engine and store tests: a small test DNA and a writer of hand-made chains.

Test modules get these through the ``kit`` fixture: every test folder's conftest is a module
named ``conftest``, so importing from one by name is not reliable. For the same reason this module
has no ``from __future__ import annotations``: the schema resolves string annotations in the
module named by ``Note.__module__``, which may by then be another folder's conftest.
"""

from dataclasses import dataclass
from typing import Any

import pytest

from ioe.crypto.keys import KeyPair
from ioe.encoding import encode
from ioe.engine.cell import CallContext, Cell
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, Outcome
from ioe.engine.ports import Link
from ioe.engine.records import (
    AGENT_ENTRY_TYPE,
    AgentValidationPkg,
    AnyAction,
    AppEntryType,
    Create,
    CreateLink,
    Dna,
    Entry,
    InitZomesComplete,
    Record,
    SignedAction,
    Visibility,
)
from ioe.engine.schema import to_value
from ioe.engine.zome import CoordinatorZome, EntryDef, IntegrityZome
from ioe.hashing import ActionHash, DnaHash

T0 = 1_700_000_000_000_000  # µs
FORBIDDEN = "forbidden"  # a note title, or link tag, that the rules reject
EXPLODE = "explode"  # a note title on which the validation function raises


@dataclass(frozen=True, slots=True)
class Note:
    title: str
    body: str = ""
    ref: ActionHash | None = None  # validation must_get's it, so a dangling ref is unresolved


@dataclass(frozen=True, slots=True)
class Secret:
    code: int


def validate_notes(op: Op, host: IntegrityHost) -> Outcome:
    note = op.app_entry
    if isinstance(note, Note):
        if note.title == FORBIDDEN:
            return Invalid("forbidden title")
        if note.title == EXPLODE:
            raise RuntimeError("validation blew up")
        if note.ref is not None:
            host.must_get_action(note.ref)
    action = op.action
    if isinstance(action, CreateLink) and action.tag == FORBIDDEN.encode():
        return Invalid("forbidden link tag")
    return VALID


NOTES_INTEGRITY = IntegrityZome(
    name="notes",
    version="1",
    entry_defs=(EntryDef("note", Note), EntryDef("secret", Secret, Visibility.PRIVATE)),
    link_types=("related", "mentions"),
    validate=validate_notes,
)

notes = CoordinatorZome("notes")


@notes.function
def create(ctx: CallContext, value: object) -> ActionHash:
    return ctx.create(value)


@notes.function
def create_many(ctx: CallContext, values: list[object]) -> list[ActionHash]:
    return [ctx.create(value) for value in values]


@notes.function
def update(ctx: CallContext, payload: tuple[ActionHash, object]) -> ActionHash:
    original, value = payload
    return ctx.update(original, value)


@notes.function
def delete(ctx: CallContext, target: ActionHash) -> ActionHash:
    return ctx.delete(target)


@notes.function
def link(ctx: CallContext, payload: tuple[Any, Any, bytes]) -> ActionHash:
    base, target, tag = payload
    return ctx.create_link(base, target, "related", tag)


@notes.function
def unlink(ctx: CallContext, create_link: ActionHash) -> ActionHash:
    return ctx.delete_link(create_link)


@notes.function
def related(ctx: CallContext, base: Any) -> list[Link]:
    return ctx.get_links(base, "related")


@notes.function
def create_then_raise(ctx: CallContext, value: object) -> None:
    ctx.create(value)
    raise RuntimeError("raised after writing")


@notes.function
def run(ctx: CallContext, fn: Any) -> Any:
    """Run ``fn(ctx)``: lets a test script a whole call."""
    return fn(ctx)


TEST_DNA = DnaDef(
    name="test-notes",
    integrity_zomes=(NOTES_INTEGRITY,),
    coordinator_zomes=(notes,),
    properties={"purpose": "tests"},
)
NOTE_TYPE = AppEntryType(0, 0, Visibility.PUBLIC)
SECRET_TYPE = AppEntryType(0, 1, Visibility.PRIVATE)


def key_pair(n: int) -> KeyPair:
    """A deterministic key pair; different ``n``, different agent."""
    return KeyPair(bytes([n % 256]) * 32)


def new_cell(db: Any, keys: KeyPair | None = None, *, genesis: bool = True) -> Cell:
    """A cell of the test DNA on ``db`` (a SqliteDatabase or MemoryDatabase)."""
    keys = keys or key_pair(1)
    cell = Cell(TEST_DNA, keys, db.chain(TEST_DNA.hash, keys.agent))
    if genesis:
        cell.genesis(None, now_us=T0)
    return cell


class ChainWriter:
    """Builds and signs records by hand, so tests can make chains the engine would refuse."""

    def __init__(
        self, keys: KeyPair | None = None, dna_hash: DnaHash | None = None, now: int = T0
    ) -> None:
        self.keys = keys or key_pair(1)
        self.dna_hash = dna_hash or TEST_DNA.hash
        self.records: list[Record] = []
        self.now = now

    def next(
        self,
        kind: type[AnyAction],
        *,
        entry: Entry | None = None,
        keys: KeyPair | None = None,
        **fields: Any,
    ) -> Record:
        """The record that would follow the last one, not added. ``fields`` may override author,
        timestamp, seq and prev as well as give the action's own fields."""
        keys = keys or self.keys
        head = self.records[-1].signed_action if self.records else None
        common: dict[str, Any] = {
            "author": keys.agent,
            "timestamp": self.now,
            "seq": head.action.seq + 1 if head else 0,
            "prev": head.hash if head else None,
        }
        common.update(fields)
        return Record(SignedAction.sign(kind(**common), keys), entry)

    def add(self, kind: type[AnyAction], *, entry: Entry | None = None, **fields: Any) -> Record:
        record = self.next(kind, entry=entry, **fields)
        self.records.append(record)
        self.now += 1_000
        return record

    def genesis(self, membrane_proof: bytes | None = None) -> list[Record]:
        self.add(Dna, dna_hash=self.dna_hash)
        self.add(AgentValidationPkg, membrane_proof=membrane_proof)
        self.add(Create, **self.agent_entry_fields())
        self.add(InitZomesComplete)
        return list(self.records)

    def agent_entry_fields(self) -> dict[str, Any]:
        entry = Entry.agent(self.keys.agent)
        return {"entry": entry, "app_entry_type": AGENT_ENTRY_TYPE, "created_entry": entry.hash()}

    def app_fields(self, value: object, entry_type: AppEntryType | None = None) -> dict[str, Any]:
        """Fields of a Create (or the start of an Update's) for an app ``value``."""
        entry = Entry.app(encode(to_value(value)))
        if entry_type is None:
            entry_type = TEST_DNA.entry_type_for(type(value))[0]
        return {"entry": entry, "app_entry_type": entry_type, "created_entry": entry.hash()}

    def create(self, value: object, entry_type: AppEntryType | None = None) -> Record:
        return self.add(Create, **self.app_fields(value, entry_type))


class Kit:
    """What the engine and store tests share, as one fixture value."""

    T0 = T0
    FORBIDDEN = FORBIDDEN
    EXPLODE = EXPLODE
    Note = Note
    Secret = Secret
    dna = TEST_DNA
    integrity = NOTES_INTEGRITY
    NOTE_TYPE = NOTE_TYPE
    SECRET_TYPE = SECRET_TYPE
    ChainWriter = ChainWriter
    key_pair = staticmethod(key_pair)
    new_cell = staticmethod(new_cell)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
