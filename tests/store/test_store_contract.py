"""The ChainStore contract, run over SqliteDatabase and MemoryDatabase alike."""

from __future__ import annotations

from typing import Any

import pytest

from ioe.engine.cell import Cell
from ioe.engine.ports import ChainHead, ChainQuery
from ioe.engine.records import ActionType, Create, CreateLink, DeleteLink, Record
from ioe.errors import ChainError
from ioe.hashing import ActionHash, EntryHash


@pytest.fixture
def writer(db: Any, kit: Any) -> Any:
    """A hand-written chain (genesis and one note) appended to the store."""
    w = kit.ChainWriter()
    w.genesis()
    w.create(kit.Note("first"))
    w.store = db.chain(kit.dna.hash, w.keys.agent)
    w.store.append(w.records, None)
    return w


@pytest.fixture
def cell(db: Any, kit: Any) -> Cell:
    """A cell with a little of everything on its chain (record numbers in comments)."""
    cell = kit.new_cell(db)
    now = kit.T0 + 1_000
    a = cell.call("notes", "create", kit.Note("a"), now_us=now)  # 4
    b = cell.call("notes", "create", kit.Note("b"), now_us=now + 1)  # 5
    cell.call("notes", "create", kit.Secret(7), now_us=now + 2)  # 6
    cell.call("notes", "update", (a, kit.Note("a2")), now_us=now + 3)  # 7
    cell.call("notes", "link", (a, b, b"ab"), now_us=now + 4)  # 8
    cell.call("notes", "delete", b, now_us=now + 5)  # 9
    return cell


def stored_bytes(records: list[Record]) -> list[tuple[bytes, bytes | None]]:
    return [(r.signed_action.to_bytes(), r.entry.to_bytes() if r.entry else None) for r in records]


# ---------------------------------------------------------------------------------- head, append


def test_head_of_an_empty_chain_is_none(db: Any, kit: Any) -> None:
    store = db.chain(kit.dna.hash, kit.key_pair(1).agent)
    assert store.head() is None
    assert list(store.iter_records()) == []
    assert store.query(ChainQuery()) == []


def test_head_follows_appends(writer: Any, kit: Any) -> None:
    last = writer.records[-1]
    assert writer.store.head() == ChainHead(4, last.action_hash, last.action.timestamp)
    more = [writer.create(kit.Note("two")), writer.create(kit.Note("three"))]
    writer.store.append(more, last.action_hash)
    assert writer.store.head() == ChainHead(6, more[-1].action_hash, more[-1].action.timestamp)


def test_records_read_back_byte_for_byte(writer: Any) -> None:
    assert stored_bytes(list(writer.store.iter_records())) == stored_bytes(writer.records)


@pytest.mark.parametrize("wrong", ["previous", "none", "unknown"])
def test_append_after_a_wrong_head_raises_and_writes_nothing(
    writer: Any, kit: Any, wrong: str
) -> None:
    head = writer.store.head()
    record = writer.next(Create, **writer.app_fields(kit.Note("never")))
    expected = {
        "previous": writer.records[-2].action_hash,
        "none": None,
        "unknown": ActionHash(bytes(32)),
    }[wrong]
    with pytest.raises(ChainError, match="head moved"):
        writer.store.append([record], expected)
    assert writer.store.head() == head
    assert writer.store.get_action(record.action_hash) is None
    assert writer.store.get_entry(record.action.entry_hash) is None
    assert len(list(writer.store.iter_records())) == 5


def test_append_to_an_empty_chain_with_an_expected_head_raises(db: Any, kit: Any) -> None:
    writer = kit.ChainWriter()
    store = db.chain(kit.dna.hash, writer.keys.agent)
    with pytest.raises(ChainError):
        store.append(writer.genesis(), ActionHash(bytes(32)))
    assert store.head() is None


def test_a_batch_with_a_conflicting_seq_raises_chain_error_and_writes_nothing(
    writer: Any, kit: Any
) -> None:
    head = writer.store.head()
    good = writer.create(kit.Note("good"))
    clash = writer.next(Create, **writer.app_fields(kit.Note("clash")), seq=good.action.seq)
    with pytest.raises(ChainError):
        writer.store.append([good, clash], head.hash)
    assert writer.store.head() == head
    assert writer.store.get_action(good.action_hash) is None
    assert writer.store.get_entry(good.action.entry_hash) is None
    # Re-appending a record the chain already holds is refused the same way.
    with pytest.raises(ChainError):
        writer.store.append([writer.records[4]], head.hash)
    assert writer.store.head() == head


def test_an_empty_append_changes_nothing(writer: Any) -> None:
    head = writer.store.head()
    writer.store.append([], head.hash)
    assert writer.store.head() == head


# ----------------------------------------------------------------------------------- reading


def test_iter_records_is_in_chain_order(cell: Cell) -> None:
    records = list(cell.store.iter_records())
    assert [r.action.seq for r in records] == list(range(10))
    assert [r.action.prev for r in records[1:]] == [r.action_hash for r in records[:-1]]
    assert [r.action.seq for r in cell.store.iter_records(7)] == [7, 8, 9]
    assert list(cell.store.iter_records(10)) == []


QUERIES: dict[str, tuple[dict[str, Any], list[int]]] = {
    "everything": ({}, list(range(10))),
    "creates": ({"action_type": ActionType.CREATE}, [2, 4, 5, 6]),
    "updates": ({"action_type": ActionType.UPDATE}, [7]),
    "dna": ({"action_type": ActionType.DNA}, [0]),
    "no delete-links": ({"action_type": ActionType.DELETE_LINK}, []),
    "notes": ({"entry_type": "note"}, [4, 5, 7]),
    "secrets": ({"entry_type": "secret"}, [6]),
    "note creates": ({"entry_type": "note", "action_type": ActionType.CREATE}, [4, 5]),
    "from 5": ({"from_seq": 5}, [5, 6, 7, 8, 9]),
    "until 2": ({"until_seq": 2}, [0, 1, 2]),
    "4 to 6": ({"from_seq": 4, "until_seq": 6}, [4, 5, 6]),
    "empty range": ({"from_seq": 6, "until_seq": 4}, []),
    "past the head": ({"from_seq": 20}, []),
    "limit 3": ({"limit": 3}, [0, 1, 2]),
    "limit 2 from 5": ({"from_seq": 5, "limit": 2}, [5, 6]),
    "limit applies after filters": ({"entry_type": "note", "limit": 2}, [4, 5]),
    "limit 0": ({"limit": 0}, []),
    "limit past the end": ({"limit": 50}, list(range(10))),
}


@pytest.mark.parametrize(("fields", "seqs"), QUERIES.values(), ids=QUERIES.keys())
def test_query_filters_and_limits(
    cell: Cell, kit: Any, fields: dict[str, Any], seqs: list[int]
) -> None:
    if "entry_type" in fields:
        types = {"note": kit.NOTE_TYPE, "secret": kit.SECRET_TYPE}
        fields = {**fields, "entry_type": types[fields["entry_type"]]}
    assert [r.action.seq for r in cell.store.query(ChainQuery(**fields))] == seqs


def test_query_entry_type_ignores_the_visibility_it_is_asked_with(cell: Cell, kit: Any) -> None:
    private_note = ChainQuery(entry_type=type(kit.NOTE_TYPE)(0, 0, kit.SECRET_TYPE.visibility))
    assert [r.action.seq for r in cell.store.query(private_note)] == [4, 5, 7]


def test_query_with_and_without_entries(cell: Cell) -> None:
    full = cell.store.query(ChainQuery(from_seq=4, until_seq=7))
    assert all(r.entry is not None and r.entry.hash() == r.action.entry_hash for r in full)
    bare = cell.store.query(ChainQuery(from_seq=4, until_seq=7, include_entries=False))
    assert [r.signed_action for r in bare] == [r.signed_action for r in full]
    assert all(r.entry is None for r in bare)


def test_get_record_action_and_entry(cell: Cell, kit: Any) -> None:
    store = cell.store
    for record in store.iter_records():
        assert store.get_action(record.action_hash) == record.signed_action
        assert store.get_record(record.action_hash) == record
        if record.action.entry_hash is not None:
            assert store.get_entry(record.action.entry_hash) == record.entry
    secret = store.query(ChainQuery(entry_type=kit.SECRET_TYPE))[0]
    assert store.get_record(secret.action_hash).entry is not None  # private, but kept locally
    delete = store.query(ChainQuery(action_type=ActionType.DELETE))[0]
    assert store.get_record(delete.action_hash).entry is None
    nothing = ActionHash(bytes(32))
    assert store.get_action(nothing) is None
    assert store.get_record(nothing) is None
    assert store.get_entry(EntryHash(bytes(32))) is None


def test_entries_are_shared_between_chains(db: Any, kit: Any) -> None:
    alice = kit.new_cell(db, kit.key_pair(1))
    bob = kit.new_cell(db, kit.key_pair(2))
    a = alice.call("notes", "create", kit.Note("same"), now_us=kit.T0 + 1)
    b = bob.call("notes", "create", kit.Note("same"), now_us=kit.T0 + 2)
    ra, rb = alice.get(a), bob.get(b)
    assert ra.action.entry_hash == rb.action.entry_hash
    assert ra.entry == rb.entry
    assert a != b
    assert set(db.cells()) == {(kit.dna.hash, alice.agent), (kit.dna.hash, bob.agent)}
    assert alice.head().seq == bob.head().seq == 4


def test_get_agent_activity(db: Any, cell: Cell, kit: Any) -> None:
    store = cell.store
    records = list(store.iter_records())
    activity = store.get_agent_activity(cell.agent, records[5].action_hash)
    assert activity == [r.signed_action for r in records[:6]]
    full = store.get_agent_activity(cell.agent, records[-1].action_hash)
    assert [s.action.seq for s in full] == list(range(10))
    assert store.get_agent_activity(cell.agent, ActionHash(bytes(32))) is None
    assert store.get_agent_activity(kit.key_pair(9).agent, records[5].action_hash) is None
    other = kit.new_cell(db, kit.key_pair(2))
    other_top = other.head().hash
    assert store.get_agent_activity(cell.agent, other_top) is None
    assert len(store.get_agent_activity(other.agent, other_top)) == 4


# -------------------------------------------------------------------------------------- links


def test_links_with_deletion(cell: Cell, kit: Any) -> None:
    store = cell.store
    a, b = (r.action_hash for r in store.query(ChainQuery(entry_type=kit.NOTE_TYPE))[:2])
    ab = store.query(ChainQuery(action_type=ActionType.CREATE_LINK))[0]
    now = cell.head().timestamp
    mention = cell.call(
        "notes", "run", lambda ctx: ctx.create_link(a, b, "mentions", b"m"), now_us=now + 1
    )
    to_agent = cell.call("notes", "link", (a, cell.agent, b"agent"), now_us=now + 2)
    from_b = cell.call("notes", "link", (b, a, b""), now_us=now + 3)

    links = store.links(a)
    assert [link.create_action for link in links] == [ab.action_hash, mention, to_agent]
    first = links[0]
    assert isinstance(ab.action, CreateLink)
    assert (first.author, first.timestamp, first.base, first.target) == (
        cell.agent,
        ab.action.timestamp,
        a,
        b,
    )
    assert (first.zome_index, first.link_type, first.tag) == (0, 0, b"ab")
    assert type(links[2].target) is type(cell.agent)
    assert [link.create_action for link in store.links(a, 0, 1)] == [mention]
    assert [link.create_action for link in store.links(a, 0, 0)] == [ab.action_hash, to_agent]
    assert [link.create_action for link in store.links(a, link_type=1)] == [mention]
    assert store.links(a, 1) == []
    assert [link.create_action for link in store.links(b)] == [from_b]

    unlink = cell.call("notes", "unlink", to_agent, now_us=now + 4)
    assert isinstance(store.get_action(unlink).action, DeleteLink)
    assert [link.create_action for link in store.links(a)] == [ab.action_hash, mention]
    cell.call("notes", "unlink", ab.action_hash, now_us=now + 5)
    cell.call("notes", "unlink", mention, now_us=now + 6)
    assert store.links(a) == []
    assert [link.create_action for link in store.links(b)] == [from_b]


def test_links_match_the_base_hash_type_too(cell: Cell, kit: Any) -> None:
    digest = bytes(range(32))
    as_action, as_entry = ActionHash(digest), EntryHash(digest)
    link = cell.call("notes", "link", (as_action, cell.agent, b""), now_us=cell.head().timestamp)
    assert [x.create_action for x in cell.store.links(as_action)] == [link]
    assert cell.store.links(as_entry) == []


def test_links_are_ordered_by_time(cell: Cell, kit: Any) -> None:
    base = cell.agent
    later = cell.call("notes", "link", (base, base, b"1"), now_us=kit.T0 + 9_000_000)
    # A clock that steps back does not reorder: the chain keeps the later timestamp.
    same_time = cell.call("notes", "link", (base, base, b"2"), now_us=kit.T0)
    links = cell.store.links(base)
    assert {x.create_action for x in links} == {later, same_time}
    assert links[0].timestamp == links[1].timestamp
    assert [bytes(x.create_action) for x in links] == sorted(bytes(h) for h in (later, same_time))


def test_append_refuses_a_sequence_gap_and_writes_nothing(writer: Any, kit: Any) -> None:
    """Both stores refuse a batch that skips a sequence number, even after the right head."""
    head = writer.store.head()
    gap = writer.next(Create, **writer.app_fields(kit.Note("gap")), seq=head.seq + 2)
    with pytest.raises(ChainError, match="was due"):
        writer.store.append([gap], head.hash)
    assert writer.store.head() == head
    assert writer.store.get_action(gap.action_hash) is None


def test_appending_nothing_is_a_no_op_whatever_the_head(writer: Any) -> None:
    head = writer.store.head()
    writer.store.append([], ActionHash(bytes(32)))
    assert writer.store.head() == head
