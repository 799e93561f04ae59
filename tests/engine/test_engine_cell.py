"""A cell: genesis, atomic zome calls, the CallContext API, queries, ops and clock handling."""

from __future__ import annotations

from typing import Any

import pytest

from ioe.engine.cell import CallContext, Cell
from ioe.engine.ops import OpType, ops_from_record
from ioe.engine.ports import ChainQuery
from ioe.engine.records import (
    AGENT_ENTRY_TYPE,
    ActionType,
    AgentValidationPkg,
    Create,
    Delete,
    DeleteLink,
    Dna,
    EntryKind,
    InitZomesComplete,
    Update,
)
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ChainError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.store.memory import MemoryDatabase


@pytest.fixture
def db() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def cell(db: MemoryDatabase, kit: Any) -> Cell:
    return kit.new_cell(db)


def call(cell: Cell, function: str, payload: Any = None, at: int = 0) -> Any:
    return cell.call("notes", function, payload, now_us=cell.head().timestamp + 1 + at)


def snapshot(cell: Cell) -> tuple[Any, int]:
    return cell.head(), len(cell.query())


# -------------------------------------------------------------------------------------- genesis


def test_genesis_writes_the_four_genesis_records(db: MemoryDatabase, kit: Any) -> None:
    cell = kit.new_cell(db, genesis=False)
    assert cell.head() is None
    assert not cell.has_genesis()
    cell.genesis(b"proof", now_us=kit.T0)
    records = cell.query()
    assert [type(r.action) for r in records] == [Dna, AgentValidationPkg, Create, InitZomesComplete]
    assert [r.action.seq for r in records] == [0, 1, 2, 3]
    assert records[0].action.dna_hash == kit.dna.hash
    assert records[1].action.membrane_proof == b"proof"
    assert records[2].action.app_entry_type == AGENT_ENTRY_TYPE
    assert records[2].entry.kind is EntryKind.AGENT
    assert records[2].entry.payload == bytes(cell.agent)
    assert all(r.action.author == cell.agent for r in records)
    assert all(r.signed_action.signature_valid() for r in records)
    assert cell.has_genesis()
    assert cell.head().hash == records[3].action_hash


def test_genesis_is_idempotent(cell: Cell, kit: Any) -> None:
    head = cell.head()
    cell.genesis(b"another proof", now_us=kit.T0 + 10)
    assert cell.head() == head
    assert len(cell.query()) == 4


def test_a_partial_genesis_is_refused(db: MemoryDatabase, kit: Any) -> None:
    writer = kit.ChainWriter()
    writer.genesis()
    store = db.chain(kit.dna.hash, writer.keys.agent)
    store.append(writer.records[:2], None)
    cell = Cell(kit.dna, writer.keys, store)
    with pytest.raises(ChainError, match="partial genesis"):
        cell.genesis(None, now_us=kit.T0)
    assert store.head().seq == 1


def test_zome_call_before_genesis_is_refused(db: MemoryDatabase, kit: Any) -> None:
    cell = kit.new_cell(db, genesis=False)
    with pytest.raises(ChainError, match="no genesis"):
        cell.call("notes", "create", kit.Note("x"), now_us=kit.T0)
    assert cell.head() is None


def test_cells_of_different_agents_have_separate_chains(db: MemoryDatabase, kit: Any) -> None:
    alice = kit.new_cell(db, kit.key_pair(1))
    bob = kit.new_cell(db, kit.key_pair(2))
    call(alice, "create", kit.Note("alice's"))
    assert alice.head().seq == 4
    assert bob.head().seq == 3
    assert alice.id != bob.id
    assert alice.id.dna_hash == bob.id.dna_hash == kit.dna.hash


# ---------------------------------------------------------------------------------- zome calls


def test_unknown_zome_or_function(cell: Cell, kit: Any) -> None:
    before = snapshot(cell)
    with pytest.raises(ZomeCallError, match="no zome 'nope'"):
        cell.call("nope", "create", kit.Note("x"), now_us=kit.T0 + 1)
    with pytest.raises(ZomeCallError, match="no function 'nope'"):
        cell.call("notes", "nope", kit.Note("x"), now_us=kit.T0 + 1)
    assert snapshot(cell) == before


@pytest.mark.parametrize("now", [-1, 1.5, "1"])
def test_now_must_be_non_negative_integer_microseconds(cell: Cell, kit: Any, now: Any) -> None:
    with pytest.raises(ZomeCallError, match="now_us"):
        cell.call("notes", "create", kit.Note("x"), now_us=now)


def test_create_commits_and_returns_its_action_hash(cell: Cell, kit: Any) -> None:
    note = kit.Note("hello", "world")
    action_hash = call(cell, "create", note)
    assert isinstance(action_hash, ActionHash)
    assert cell.head().hash == action_hash
    record = cell.get(action_hash)
    assert isinstance(record.action, Create)
    assert record.action.app_entry_type == kit.NOTE_TYPE
    assert cell.entry_value(record) == note


def test_a_call_that_raises_after_writing_commits_nothing(cell: Cell, kit: Any) -> None:
    before = snapshot(cell)
    with pytest.raises(RuntimeError, match="raised after writing"):
        call(cell, "create_then_raise", kit.Note("lost"))
    assert snapshot(cell) == before
    # Nothing of the call reached the store, not even its entry.
    entry_hash = kit.ChainWriter().app_fields(kit.Note("lost"))["created_entry"]
    assert cell.store.get_entry(entry_hash) is None


def test_a_call_whose_second_write_is_invalid_commits_neither(cell: Cell, kit: Any) -> None:
    before = snapshot(cell)
    with pytest.raises(ValidationError, match="forbidden title"):
        call(cell, "create_many", [kit.Note("fine"), kit.Note(kit.FORBIDDEN)])
    assert snapshot(cell) == before
    entry_hash = kit.ChainWriter().app_fields(kit.Note("fine"))["created_entry"]
    assert cell.store.get_entry(entry_hash) is None
    # The same first write alone is accepted.
    call(cell, "create_many", [kit.Note("fine")])
    assert cell.head().seq == before[0].seq + 1


def test_validation_failures_reach_the_caller(cell: Cell, kit: Any) -> None:
    before = snapshot(cell)
    with pytest.raises(ValidationError, match="missing dependencies"):
        call(cell, "create", kit.Note("dangling", ref=ActionHash(bytes(32))))
    with pytest.raises(ValidationError, match="RuntimeError"):
        call(cell, "create", kit.Note(kit.EXPLODE))
    with pytest.raises(ValidationError, match="forbidden link tag"):
        call(cell, "link", (cell.agent, cell.agent, kit.FORBIDDEN.encode()))
    assert snapshot(cell) == before


def test_a_write_may_depend_on_an_earlier_write_of_the_same_call(cell: Cell, kit: Any) -> None:
    def two(ctx: CallContext) -> ActionHash:
        first = ctx.create(kit.Note("first"))
        return ctx.create(kit.Note("second", ref=first))

    second = call(cell, "run", two)
    assert cell.entry_value(cell.get(second)).title == "second"
    assert cell.head().seq == 5


def test_many_writes_in_one_call_commit_together(cell: Cell, kit: Any) -> None:
    hashes = call(cell, "create_many", [kit.Note(f"n{i}") for i in range(5)])
    records = cell.query(ChainQuery(from_seq=4))
    assert [r.action_hash for r in records] == hashes
    assert [r.action.seq for r in records] == [4, 5, 6, 7, 8]


def test_a_call_that_writes_nothing_leaves_the_chain_alone(cell: Cell, kit: Any) -> None:
    before = snapshot(cell)
    assert call(cell, "run", lambda ctx: ctx.agent) == cell.agent
    assert snapshot(cell) == before


def test_a_moved_head_fails_the_call_and_writes_nothing(cell: Cell, kit: Any) -> None:
    other = Cell(kit.dna, cell.keys, cell.store)  # the same chain, used concurrently

    def write_and_race(ctx: CallContext) -> None:
        ctx.create(kit.Note("mine"))
        other.call("notes", "create", kit.Note("theirs"), now_us=ctx.now_us)

    with pytest.raises(ChainError, match="head moved"):
        call(cell, "run", write_and_race)
    titles = [cell.entry_value(r).title for r in cell.query(ChainQuery(entry_type=kit.NOTE_TYPE))]
    assert titles == ["theirs"]


# ------------------------------------------------------------------- update, delete and links


def test_update(cell: Cell, kit: Any) -> None:
    original = call(cell, "create", kit.Note("v1"))
    updated = call(cell, "update", (original, kit.Note("v2")))
    record = cell.get(updated)
    action = record.action
    assert isinstance(action, Update)
    assert action.original_action == original
    assert action.original_entry == cell.get(original).action.entry_hash
    assert action.created_entry == record.entry.hash()
    assert cell.entry_value(record) == kit.Note("v2")


def test_delete(cell: Cell, kit: Any) -> None:
    target = call(cell, "create", kit.Note("doomed"))
    deleted = call(cell, "delete", target)
    action = cell.get(deleted).action
    assert isinstance(action, Delete)
    assert action.deletes_action == target
    assert action.deletes_entry == cell.get(target).action.entry_hash


@pytest.mark.parametrize("function", ["update", "delete"])
def test_only_entries_can_be_updated_or_deleted(cell: Cell, kit: Any, function: str) -> None:
    def payload(target: ActionHash) -> Any:
        return (target, kit.Note("x")) if function == "update" else target

    link = call(cell, "link", (cell.agent, cell.agent, b""))
    with pytest.raises(ZomeCallError, match="only entries"):
        call(cell, function, payload(link))
    with pytest.raises(ZomeCallError, match="no record"):
        call(cell, function, payload(ActionHash(bytes(32))))


def test_links_are_created_listed_and_deleted(cell: Cell, kit: Any) -> None:
    a = call(cell, "create", kit.Note("a"))
    b = call(cell, "create", kit.Note("b"))
    c = call(cell, "create", kit.Note("c"))
    ab = call(cell, "link", (a, b, b"ab"))
    ac = call(cell, "link", (a, c, b"ac"), at=5)
    mention = call(cell, "run", lambda ctx: ctx.create_link(a, c, "mentions", b"m"))
    links = call(cell, "related", a)
    assert [link.create_action for link in links] == [ab, ac]
    assert [(link.target, link.tag) for link in links] == [(b, b"ab"), (c, b"ac")]
    assert all(link.author == cell.agent and link.base == a for link in links)
    all_links = call(cell, "run", lambda ctx: ctx.get_links(a))
    assert {link.create_action for link in all_links} == {ab, ac, mention}
    assert call(cell, "related", b) == []

    unlink = call(cell, "unlink", ab)
    action = cell.get(unlink).action
    assert isinstance(action, DeleteLink)
    assert action.link_add == ab
    assert action.base == a
    assert [link.create_action for link in call(cell, "related", a)] == [ac]
    with pytest.raises(ZomeCallError, match="not a CreateLink"):
        call(cell, "unlink", a)
    with pytest.raises(ZomeCallError, match="no link type"):
        call(cell, "run", lambda ctx: ctx.create_link(a, b, "nope"))


def test_links_of_a_call_are_visible_after_it_returns(cell: Cell, kit: Any) -> None:
    def link_and_look(ctx: CallContext) -> int:
        ctx.create_link(cell.agent, cell.agent, "related")
        return len(ctx.get_links(cell.agent, "related"))

    assert call(cell, "run", link_and_look) == 0
    assert len(call(cell, "related", cell.agent)) == 1


def test_entry_types_outside_the_dna_are_refused(cell: Cell, kit: Any) -> None:
    with pytest.raises(ZomeCallError, match="not an entry type"):
        call(cell, "create", ChainQuery())


# ---------------------------------------------------------------------------------- reads


def test_query_by_entry_type_and_action_type(cell: Cell, kit: Any) -> None:
    n1 = call(cell, "create", kit.Note("1"))
    s1 = call(cell, "create", kit.Secret(1))
    n2 = call(cell, "update", (n1, kit.Note("2")))
    call(cell, "delete", s1)
    notes = cell.query(ChainQuery(entry_type=kit.NOTE_TYPE))
    assert [r.action_hash for r in notes] == [n1, n2]
    secrets = cell.query(ChainQuery(entry_type=kit.SECRET_TYPE))
    assert [r.action_hash for r in secrets] == [s1]
    creates = cell.query(ChainQuery(action_type=ActionType.CREATE))
    assert [r.action.seq for r in creates] == [2, 4, 5]


def test_context_query_includes_this_calls_records(cell: Cell, kit: Any) -> None:
    stored = call(cell, "create", kit.Note("stored"))

    def look(ctx: CallContext) -> list[Any]:
        pending = ctx.create(kit.Note("pending"))
        ctx.create(kit.Secret(3))
        notes = [r.action_hash for r in ctx.query(kit.Note)]
        secrets = [r.action_hash for r in ctx.query(kit.Secret)]
        creates = ctx.query(action_type=ActionType.CREATE)
        ranged = [r.action.seq for r in ctx.query(from_seq=4, until_seq=5)]
        return [notes == [stored, pending], len(secrets), len(creates), ranged]

    assert call(cell, "run", look) == [True, 1, 4, [4, 5]]


def test_context_reads_see_this_calls_writes(cell: Cell, kit: Any) -> None:
    def read_back(ctx: CallContext) -> Any:
        h = ctx.create(kit.Note("fresh"))
        return (
            ctx.get(h).action.seq,
            ctx.get_value(h, kit.Note),
            ctx.get_value(ActionHash(bytes(32)), kit.Note),
        )

    assert call(cell, "run", read_back) == (4, kit.Note("fresh"), None)


def test_private_entries_are_kept_locally_but_left_out_of_ops(cell: Cell, kit: Any) -> None:
    secret = call(cell, "create", kit.Secret(1234))
    record = cell.get(secret)
    assert record.is_private()
    assert record.entry is not None
    assert cell.entry_value(record) == kit.Secret(1234)
    ops = ops_from_record(record)
    assert {op.type for op in ops} == {OpType.STORE_RECORD, OpType.REGISTER_AGENT_ACTIVITY}
    assert all(op.entry is None for op in ops)

    note = cell.get(call(cell, "create", kit.Note("public")))
    ops = ops_from_record(note)
    assert OpType.STORE_ENTRY in {op.type for op in ops}
    assert all(
        op.entry == note.entry for op in ops if op.type is not OpType.REGISTER_AGENT_ACTIVITY
    )


def test_ops_and_their_basis(cell: Cell, kit: Any) -> None:
    a = call(cell, "create", kit.Note("a"))
    u = call(cell, "update", (a, kit.Note("a2")))
    d = call(cell, "delete", a)
    link = call(cell, "link", (a, cell.agent, b""))
    unlink = call(cell, "unlink", link)
    entry_a = cell.get(a).action.entry_hash
    expected = {
        a: {
            OpType.STORE_RECORD: a,
            OpType.REGISTER_AGENT_ACTIVITY: cell.agent,
            OpType.STORE_ENTRY: entry_a,
        },
        u: {
            OpType.STORE_RECORD: u,
            OpType.REGISTER_AGENT_ACTIVITY: cell.agent,
            OpType.STORE_ENTRY: cell.get(u).action.entry_hash,
            OpType.REGISTER_UPDATED_CONTENT: entry_a,
            OpType.REGISTER_UPDATED_RECORD: a,
        },
        d: {
            OpType.STORE_RECORD: d,
            OpType.REGISTER_AGENT_ACTIVITY: cell.agent,
            OpType.REGISTER_DELETED_BY: a,
            OpType.REGISTER_DELETED_ENTRY_ACTION: entry_a,
        },
        link: {
            OpType.STORE_RECORD: link,
            OpType.REGISTER_AGENT_ACTIVITY: cell.agent,
            OpType.REGISTER_ADD_LINK: a,
        },
        unlink: {
            OpType.STORE_RECORD: unlink,
            OpType.REGISTER_AGENT_ACTIVITY: cell.agent,
            OpType.REGISTER_REMOVE_LINK: a,
        },
    }
    for action_hash, bases in expected.items():
        ops = ops_from_record(cell.get(action_hash))
        assert {op.type: op.basis() for op in ops} == bases
        assert len(ops) == len(bases)


# ---------------------------------------------------------------------------------- the clock


def test_timestamps_never_go_backwards(cell: Cell, kit: Any) -> None:
    start = cell.head().timestamp
    first = cell.call("notes", "create", kit.Note("late"), now_us=start + 1_000)
    second = cell.call("notes", "create", kit.Note("early"), now_us=start + 10)
    third = cell.call("notes", "create", kit.Note("later"), now_us=start + 2_000)
    stamps = [cell.get(h).action.timestamp for h in (first, second, third)]
    assert stamps == [start + 1_000, start + 1_000, start + 2_000]
    verifier = ChainVerifier(kit.dna, app_host=SourceHost(kit.dna, cell.store))
    for record in cell.store.iter_records():
        verifier.feed(record)
    assert verifier.count == 7


def test_the_context_reports_the_time_it_was_given(cell: Cell, kit: Any) -> None:
    assert cell.call("notes", "run", lambda ctx: ctx.now_us, now_us=12345) == 12345
