"""What the node reads is what was signed: a changed byte anywhere in a chain's rows is named by
verification and refused when read (with a ChainIntegrityError naming the record), however long
ago the record was verified, and is never served as a valid value.

The stores here are written by real zome calls. Expected values are worked out from how they are
written: the notes chain has the four genesis records (0-3), then notes a (4) and b (5), a
secret (6), the update of a (7), links a→b (8) and b→a (9), the delete of b (10) and the delete
of link 8 (11); a second agent's chain has genesis, note c (4) and a link a→c (5).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.ports import ChainQuery
from ioe.engine.records import (
    ActionType,
    AgentValidationPkg,
    AppEntryType,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    InitZomesComplete,
    Record,
    SignedAction,
    Update,
    Visibility,
)
from ioe.errors import ChainIntegrityError
from ioe.hashing import ActionHash, AgentPubKey, DnaHash, EntryHash
from ioe.sim.in_process import commit_in_process
from ioe.store.sqlite import SqliteChainStore, SqliteDatabase, _scan_action
from ioe.testing.membership import membrane_proof_for

REFUSED = "refused"
NOTE = AppEntryType(0, 0)
SECRET = AppEntryType(0, 1, Visibility.PRIVATE)


def raw(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """One statement on the file directly, as a failing disk or another program would run it."""
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(sql, args).fetchall()


def flip_blob(path: Path, table: str, column: str, where: str, args: tuple[Any, ...], at: int):
    (blob,) = raw(path, f"SELECT {column} FROM {table} WHERE {where}", args)[0]
    changed = bytearray(blob)
    changed[at] ^= 0x01
    raw(path, f"UPDATE {table} SET {column} = ? WHERE {where}", (bytes(changed), *args))


def copy(source: Path, target: Path) -> Path:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


# --------------------------------------------------------------------------- a written store


def write(path: Path, kit: Any) -> dict[str, Any]:
    """Two chains written by zome calls, then opened once more (so every record is old: below
    the verified watermark). Returns what the tests look up by."""
    facts: dict[str, Any] = {}
    with SqliteDatabase.open(path, dnas=[kit.dna]) as db:
        one = kit.new_cell(db)
        now = kit.T0 + 1_000

        def call(cell: Cell, fn: str, payload: Any) -> Any:
            nonlocal now
            now += 1
            return cell.call("notes", fn, payload, now_us=now)

        a = call(one, "create", kit.Note("a"))  # 4
        b = call(one, "create", kit.Note("b", "body"))  # 5
        call(one, "create", kit.Secret(7))  # 6
        call(one, "update", (a, kit.Note("a2")))  # 7
        ab = call(one, "link", (a, b, b"t1"))  # 8
        call(one, "link", (b, a, b"t2"))  # 9
        call(one, "delete", b)  # 10
        call(one, "unlink", ab)  # 11
        two = kit.new_cell(db, kit.key_pair(2))
        c = call(two, "create", kit.Note("c"))  # 4
        call(two, "link", (a, c, b"t3"))  # 5
        facts.update(a=a, b=b, c=c)
    with SqliteDatabase.open(path):  # verifies, and moves the watermarks to the heads
        pass
    assert raw(path, "SELECT verified_seq FROM cells ORDER BY id") == [(11,), (5,)]
    facts["hash"] = {
        (cell, seq): ActionHash(h)
        for cell, seq, h in raw(path, "SELECT cell_id, seq, hash FROM actions")
    }
    facts["entry"] = {
        (cell, seq): EntryHash(e)
        for cell, seq, e in raw(path, "SELECT cell_id, seq, entry_hash FROM actions")
        if e is not None
    }
    return facts


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, kit: Any) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("written") / "ioe.db"
    return path, write(path, kit)


@pytest.fixture
def store_path(written: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    return copy(written[0], tmp_path / "ioe.db")


@pytest.fixture
def facts(written: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return written[1]


def chain_of(db: SqliteDatabase, kit: Any, n: int = 1) -> SqliteChainStore:
    return db.chain(kit.dna.hash, kit.key_pair(n).agent)


def refused(call: Callable[[], Any], seq: int, reason: str | None = None) -> ChainIntegrityError:
    with pytest.raises(ChainIntegrityError) as caught:
        call()
    assert caught.value.seq == seq
    if reason is not None:
        assert caught.value.reason == reason
    return caught.value


def hashes(records: list[Record]) -> list[ActionHash]:
    return [r.action_hash for r in records]


# ------------------------------------------------------------ columns kept beside the bytes


@pytest.mark.parametrize(
    ("column", "flipped"),
    [
        ("type", 5),  # Update (4) would read as Delete (5)
        ("timestamp", None),
        ("entry_hash", None),
        ("entry_zome", 1),
        ("entry_index", 1),  # a note (0) would read as a secret (1)
    ],
)
def test_a_changed_side_column_is_named_by_verify_and_refused_when_read(
    store_path: Path, facts: dict[str, Any], kit: Any, column: str, flipped: int | None
) -> None:
    if column == "entry_hash":
        flip_blob(store_path, "actions", "entry_hash", "cell_id = 1 AND seq = 7", (), 0)
    else:
        ((value,),) = raw(store_path, f"SELECT {column} FROM actions WHERE cell_id = 1 AND seq = 7")
        assert flipped is None or value ^ 1 == flipped
        raw(
            store_path,
            f"UPDATE actions SET {column} = ? WHERE cell_id = 1 AND seq = 7",
            (value ^ 1,),
        )
    reason = f"stored {column} differs from the signed action's"
    with SqliteDatabase.open(store_path) as db:  # record #7 is old: opening does not look at it
        refused(db.verify_all, 7, reason)
        store = chain_of(db, kit)
        refused(lambda: store.get_record(facts["hash"][(1, 7)]), 7, reason)
        refused(lambda: store.get_action(facts["hash"][(1, 7)]), 7, reason)
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 7, reason)
        refused(lambda: store.query(ChainQuery(from_seq=6, until_seq=8)), 7, reason)
        refused(lambda: list(store.iter_records()), 7, reason)
        # What selects records is the signed bytes: no other record is changed or added.
        assert hashes(store.query(ChainQuery(entry_type=SECRET))) == [facts["hash"][(1, 6)]]
        deletes = store.query(ChainQuery(action_type=ActionType.DELETE))
        assert hashes(deletes) == [facts["hash"][(1, 10)]]
        assert hashes(store.query(ChainQuery(until_seq=6))) == [
            facts["hash"][(1, s)] for s in range(7)
        ]
        head = store.head()
        assert head is not None and (head.seq, head.hash) == (11, facts["hash"][(1, 11)])


def test_a_changed_side_column_of_the_head_stops_opening_and_writes(
    store_path: Path, kit: Any
) -> None:
    raw(store_path, "UPDATE actions SET timestamp = timestamp + 1 WHERE cell_id = 1 AND seq = 11")
    reason = "stored timestamp differs from the signed action's"
    refused(lambda: SqliteDatabase.open(store_path), 11, reason)  # the head is the watermark
    with SqliteDatabase.open(store_path, verify=False) as db:
        cell = kit.new_cell(db, genesis=False)
        refused(cell.store.head, 11, reason)
        refused(lambda: cell.call("notes", "create", kit.Note("x"), now_us=kit.T0 + 9_000), 11)
    assert raw(store_path, "SELECT max(seq) FROM actions WHERE cell_id = 1") == [(11,)]


def test_a_moved_row_is_named(store_path: Path, kit: Any) -> None:
    raw(store_path, "UPDATE actions SET seq = 300 WHERE cell_id = 1 AND seq = 5")
    # Past the head, it is where opening looks: after #11 it finds no #12.
    refused(lambda: SqliteDatabase.open(store_path), 12, "sequence gap or mismatch")
    with SqliteDatabase.open(store_path, verify=False) as db:
        store = chain_of(db, kit)
        refused(store.head, 300, "sequence gap or mismatch")  # it decodes as #5
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 5, "sequence gap or mismatch")
        refused(lambda: store.query(ChainQuery(from_seq=4, until_seq=6)), 5)
        refused(db.verify_all, 5, "sequence gap or mismatch")


# -------------------------------------------------------- old records: below the watermark


def test_a_changed_entry_of_an_old_record_is_refused(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    entry = facts["entry"][(1, 5)]  # note b, "body"
    ((content,),) = raw(store_path, "SELECT content FROM entries WHERE hash = ?", (entry,))
    flip_blob(store_path, "entries", "content", "hash = ?", (entry,), content.index(b"body"))
    reason = "entry does not match its hash"
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        refused(lambda: store.get_record(facts["hash"][(1, 5)]), 5, reason)
        refused(lambda: store.get_entry(entry), 5, reason)
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 5, reason)
        # Reads that do not need it are served (the action alone is intact).
        signed = store.get_action(facts["hash"][(1, 5)])
        assert signed is not None and signed.hash == facts["hash"][(1, 5)]
        assert len(store.query(ChainQuery(include_entries=False))) == 12
        refused(db.verify_all, 5, reason)


def test_a_lost_entry_is_refused_not_served_as_a_record_without_one(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    flip_blob(store_path, "entries", "hash", "hash = ?", (facts["entry"][(1, 5)],), 31)
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        refused(lambda: store.get_record(facts["hash"][(1, 5)]), 5, "entry is missing")
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 5, "entry is missing")
        assert store.get_entry(facts["entry"][(1, 5)]) is None  # not held under its hash
        refused(db.verify_all, 5, "entry is missing")


def test_a_changed_signature_of_an_old_record_is_refused(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    flip_blob(store_path, "actions", "signed", "cell_id = 1 AND seq = 4", (), -1)
    reason = "signature does not verify"
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        refused(lambda: store.get_record(facts["hash"][(1, 4)]), 4, reason)
        refused(lambda: store.get_action(facts["hash"][(1, 4)]), 4, reason)
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 4, reason)
        refused(lambda: list(store.iter_records(2)), 4, reason)
        agent = kit.key_pair(1).agent
        refused(lambda: store.get_agent_activity(agent, facts["hash"][(1, 11)]), 4, reason)
        assert len(store.query(ChainQuery(until_seq=3))) == 4
        refused(db.verify_all, 4, reason)


def test_a_changed_action_of_an_old_record_is_refused_and_stops_queries_by_type(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    flip_blob(store_path, "actions", "signed", "cell_id = 1 AND seq = 6", (), 40)  # its time
    reason = "stored hash differs from the signed action's"
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        refused(lambda: store.get_record(facts["hash"][(1, 6)]), 6, reason)
        # Which records are of which type cannot be known past a changed action.
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 6, reason)
        refused(lambda: store.links(facts["b"]), 6, reason)
        assert hashes(store.query(ChainQuery(until_seq=5))) == [
            facts["hash"][(1, s)] for s in range(6)
        ]
        # The other chain is untouched.
        other = chain_of(db, kit, 2)
        assert hashes(other.query(ChainQuery(entry_type=NOTE))) == [facts["hash"][(2, 4)]]
        refused(db.verify_all, 6, reason)


@pytest.mark.parametrize(
    ("table", "column", "where", "at", "reason"),
    [
        ("actions", "signed", "cell_id = 1 AND seq = 5", -1, "signature does not verify"),
        ("entries", "content", "hash = ?", -1, "entry does not match its hash"),
        ("actions", "entry_hash", "cell_id = 1 AND seq = 5", 3, None),
    ],
)
def test_a_change_after_a_record_was_read_is_refused_on_the_next_read(
    store_path: Path,
    facts: dict[str, Any],
    kit: Any,
    table: str,
    column: str,
    where: str,
    at: int,
    reason: str | None,
) -> None:
    args = (facts["entry"][(1, 5)],) if "?" in where else ()
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        read = store.get_record(facts["hash"][(1, 5)])
        assert read is not None and hashes(store.query(ChainQuery(entry_type=NOTE)))[1] == (
            read.action_hash
        )
        (original,) = raw(store_path, f"SELECT {column} FROM {table} WHERE {where}", args)[0]
        flip_blob(store_path, table, column, where, args, at)
        refused(lambda: store.get_record(facts["hash"][(1, 5)]), 5, reason)
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 5, reason)
        raw(store_path, f"UPDATE {table} SET {column} = ? WHERE {where}", (original, *args))
        assert store.get_record(facts["hash"][(1, 5)]) == read


def test_a_refused_record_is_logged_once(
    store_path: Path, facts: dict[str, Any], kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flip_blob(store_path, "actions", "signed", "cell_id = 1 AND seq = 4", (), -1)
    with SqliteDatabase.open(store_path) as db, caplog.at_level(logging.ERROR):
        store = chain_of(db, kit)
        for _ in range(50):
            with pytest.raises(ChainIntegrityError):
                store.get_record(facts["hash"][(1, 4)])
    logged = [r for r in caplog.records if "record #4" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR


# ------------------------------------------------------------------------ the chains' cells


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("UPDATE cells SET agent = ? WHERE id = 1", "author is not the chain's agent"),
        (
            "UPDATE cells SET dna_hash = ? WHERE id = 1",
            "chain belongs to another DNA than its cell's",
        ),
        ("UPDATE actions SET cell_id = 7 WHERE cell_id = 1 AND seq = 11", "stored under chain 7"),
        ("UPDATE cells SET id = 7 WHERE id = 1", "stored under chain 1"),
        ("UPDATE cells SET verified_seq = 40 WHERE id = 1", "verified record missing"),
    ],
)
def test_a_changed_cell_stops_the_store_from_opening(
    store_path: Path, kit: Any, change: str, reason: str
) -> None:
    args = (bytes([0x5A]) * 32,) if "?" in change else ()
    raw(store_path, change, args)
    with pytest.raises(ChainIntegrityError, match=reason):
        SqliteDatabase.open(store_path)


def test_a_record_of_no_chain_is_refused_when_read(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    raw(store_path, "UPDATE actions SET cell_id = 7 WHERE cell_id = 1 AND seq = 4")
    with SqliteDatabase.open(store_path, verify=False) as db:
        record = facts["hash"][(1, 4)]
        refused(lambda: db.get_record(record), 4, "stored under chain 7, which does not exist")
        refused(lambda: chain_of(db, kit).query(ChainQuery(entry_type=NOTE)), 4)


# ------------------------------------------------------------- the index of what is stored


def test_a_rolled_back_write_leaves_no_trace_in_what_is_read(store_path: Path, kit: Any) -> None:
    with SqliteDatabase.open(store_path) as db:
        cell = kit.new_cell(db, genesis=False)
        before = hashes(cell.store.query(ChainQuery(entry_type=NOTE)))
        with pytest.raises(RuntimeError), db.transaction():
            cell.call("notes", "create", kit.Note("gone"), now_us=kit.T0 + 9_000)
            raise RuntimeError("rolled back")
        assert hashes(cell.store.query(ChainQuery(entry_type=NOTE))) == before
        head = cell.store.head()
        assert head is not None and head.seq == 11
        kept = cell.call("notes", "create", kit.Note("kept"), now_us=kit.T0 + 9_001)
        assert hashes(cell.store.query(ChainQuery(entry_type=NOTE))) == [*before, kept]


def test_what_another_writer_appends_is_read_and_checked(store_path: Path, kit: Any) -> None:
    with SqliteDatabase.open(store_path) as first, SqliteDatabase.open(store_path) as second:
        reader = chain_of(first, kit)
        before = hashes(reader.query(ChainQuery(entry_type=NOTE)))
        writer = kit.new_cell(second, genesis=False)
        added = writer.call("notes", "create", kit.Note("new"), now_us=kit.T0 + 9_000)
        assert hashes(reader.query(ChainQuery(entry_type=NOTE))) == [*before, added]
        assert [link.tag for link in reader.links(added)] == []
        writer.call("notes", "link", (added, added, b"self"), now_us=kit.T0 + 9_001)
        assert [link.tag for link in reader.links(added)] == [b"self"]


def test_a_chain_that_loses_its_head_after_being_read_is_refused(
    store_path: Path, kit: Any
) -> None:
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        assert len(store.query(ChainQuery(entry_type=NOTE))) == 3
        raw(store_path, "DELETE FROM actions WHERE cell_id = 1 AND seq = 11")
        refused(store.head, 11, "record missing (the chain lost its head)")
        refused(lambda: store.query(ChainQuery(entry_type=NOTE)), 11)
        refused(lambda: list(store.iter_records(5)), 11)


def test_links_come_from_the_signed_link_actions(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    with SqliteDatabase.open(store_path) as db:
        store = chain_of(db, kit)
        at_a = store.links(facts["a"])
        assert [(link.tag, link.target) for link in at_a] == [(b"t3", facts["c"])]
        assert at_a[0].author == kit.key_pair(2).agent
        assert [link.tag for link in store.links(facts["b"])] == [b"t2"]
        assert [link.tag for link in store.links(facts["b"], 0, 0)] == [b"t2"]
        assert store.links(facts["b"], 0, 1) == []
        assert store.links(facts["c"]) == []


def test_a_store_of_schema_4_drops_what_is_unsigned_and_keeps_its_links(
    store_path: Path, facts: dict[str, Any], kit: Any
) -> None:
    raw(store_path, "CREATE TABLE links (create_hash BLOB PRIMARY KEY, base BLOB)")
    raw(store_path, "CREATE INDEX actions_by_entry_type ON actions (cell_id, entry_zome, seq)")
    raw(store_path, "PRAGMA user_version = 4")
    with SqliteDatabase.open(store_path) as db:
        assert db.schema_version == 5
        assert [link.tag for link in db.links(facts["b"])] == [b"t2"]
    names = {name for (name,) in raw(store_path, "SELECT name FROM sqlite_master")}
    assert "links" not in names and "actions_by_entry_type" not in names
    assert "actions_by_hash" in names


# --------------------------------------------------------------- a wallet on a changed store


def wallet(path: Path) -> tuple[SqliteDatabase, dict[str, Cell]]:
    dna = core_dna()
    db = SqliteDatabase.open(path, dnas=[dna])
    names = ("alice", "bob", "carol")
    cells = {}
    for n, name in enumerate(names):
        keys = KeyPair(bytes([n + 70]) * 32)
        cells[name] = Cell(dna, keys, db.chain(dna.hash, keys.agent))
    return db, cells


NOW = 1_700_000_000_000_000
_session = iter(range(1, 1000))


def pay(cells: dict[str, Cell], spender: str, receiver: str, amount_mc: int, memo: str) -> None:
    to = cells[receiver]
    head = to.call("currency", "ledger_head", None, now_us=NOW)
    payload = {"to": to.agent, "amount_mc": amount_mc, "receiver_head": head, "memo": memo}
    transfer = cells[spender].call("currency", "prepare_payment", payload, now_us=NOW)
    session = next(_session).to_bytes(16, "big")
    commit_in_process(cells[spender], to, transfer, session_id=session, now_us=NOW + 1)


def balance(cells: dict[str, Cell], name: str) -> int:
    value: int = cells[name].call("currency", "balance", None, now_us=NOW).balance_mc
    return value


@pytest.fixture(scope="module")
def paid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice pays bob 1.500, then bob pays carol 0.500, then each sets a profile: bob's chain is
    genesis (0-3), the transfer from alice (4), the one to carol (5), his profile (6) and its
    link (7)."""
    path = tmp_path_factory.mktemp("wallet") / "ioe.db"
    db, cells = wallet(path)
    with db:
        for cell in cells.values():
            cell.genesis(membrane_proof_for(cell.keys), now_us=NOW - 10)
        pay(cells, "alice", "bob", 1_500, "rent for march")
        pay(cells, "bob", "carol", 500, "lunch money")
        for name, cell in cells.items():
            cell.call("profile", "set_profile", {"name": name, "zone": "au"}, now_us=NOW + 2)
        assert [balance(cells, n) for n in ("alice", "bob", "carol")] == [-1_500, 1_000, 500]
    SqliteDatabase.open(path).close()  # every record verified: all below the watermark
    return path


def bob_row(path: Path, seq: int) -> tuple[int, bytes]:
    bob = KeyPair(bytes([71]) * 32).agent
    ((cell_id,),) = raw(path, "SELECT id FROM cells WHERE agent = ?", (bytes(bob),))
    ((entry_hash,),) = raw(
        path, "SELECT entry_hash FROM actions WHERE cell_id = ? AND seq = ?", (cell_id, seq)
    )
    assert raw(path, "SELECT max(seq) FROM actions WHERE cell_id = ?", (cell_id,)) == [(7,)]
    return cell_id, entry_hash


def test_a_changed_entry_index_of_the_latest_transfer_stops_the_wallet_instead_of_lying(
    paid: Path, tmp_path: Path
) -> None:
    path = copy(paid, tmp_path / "ioe.db")
    cell_id, _ = bob_row(path, 5)
    where = "WHERE cell_id = ? AND seq = 5"
    assert raw(path, f"SELECT entry_index FROM actions {where}", (cell_id,)) == [(0,)]
    raw(path, f"UPDATE actions SET entry_index = 1 {where}", (cell_id,))
    db, cells = wallet(path)  # opening looks at the new records only: there are none
    with db:
        refused(db.verify_all, 5, "stored entry_index differs from the signed action's")
        # Read past the changed column, bob's balance was that of his transfer before (1.500).
        refused(lambda: balance(cells, "bob"), 5)
        heads = {name: cell.head() for name, cell in cells.items()}
        refused(lambda: pay(cells, "carol", "bob", 100, "to bob"), 5)  # his position is unread
        refused(lambda: pay(cells, "bob", "alice", 100, "from bob"), 5)
        assert {name: cell.head() for name, cell in cells.items()} == heads  # nothing committed
        assert (balance(cells, "alice"), balance(cells, "carol")) == (-1_500, 500)


@pytest.mark.parametrize(("seq", "memo"), [(5, b"lunch"), (4, b"rent")])
def test_a_changed_memo_of_an_old_transfer_is_never_served(
    paid: Path, tmp_path: Path, seq: int, memo: bytes
) -> None:
    path = copy(paid, tmp_path / "ioe.db")
    _, entry_hash = bob_row(path, seq)
    ((content,),) = raw(path, "SELECT content FROM entries WHERE hash = ?", (entry_hash,))
    flip_blob(path, "entries", "content", "hash = ?", (entry_hash,), content.index(memo))
    db, cells = wallet(path)  # neither transfer is a chain's head: opening does not read it
    with db:
        # The balance is read from the transfers of the last 64 records: both are among them.
        refused(lambda: balance(cells, "bob"), seq, "entry does not match its hash")
        refused(lambda: cells["bob"].call("currency", "history", None, now_us=NOW), seq)
        refused(db.verify_all, seq, "entry does not match its hash")


# ------------------------------------------------------- reading the bytes as they are laid out

hashes32 = st.binary(min_size=32, max_size=32)
small = st.integers(0, 255)
times = st.integers(0, 2**64 - 1)
KEY = KeyPair(bytes([9]) * 32)


@st.composite
def actions(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(
            [
                Dna,
                AgentValidationPkg,
                InitZomesComplete,
                Create,
                Update,
                Delete,
                CreateLink,
                DeleteLink,
            ]
        )
    )
    seq = draw(st.integers(0, 2**64 - 1))
    common = (KEY.agent, draw(times), seq, None if seq == 0 else ActionHash(draw(hashes32)))
    entry_type = AppEntryType(draw(small), draw(small), draw(st.sampled_from(list(Visibility))))
    base = AgentPubKey(draw(hashes32))
    fields: dict[type, tuple[Any, ...]] = {
        Dna: (DnaHash(draw(hashes32)),),
        AgentValidationPkg: (draw(st.none() | st.binary(max_size=300)),),
        InitZomesComplete: (),
        Create: (entry_type, EntryHash(draw(hashes32))),
        Update: (
            entry_type,
            EntryHash(draw(hashes32)),
            ActionHash(draw(hashes32)),
            EntryHash(draw(hashes32)),
        ),
        Delete: (ActionHash(draw(hashes32)), EntryHash(draw(hashes32))),
        CreateLink: (
            base,
            EntryHash(draw(hashes32)),
            draw(small),
            draw(small),
            draw(st.binary(max_size=300)),
        ),
        DeleteLink: (ActionHash(draw(hashes32)), base),
    }
    return kind(*common, *fields[kind])


@settings(max_examples=300, deadline=None)
@given(action=actions())
def test_the_index_reads_what_the_decoder_reads(action: Any) -> None:
    blob = SignedAction.sign(action, KEY).to_bytes()
    decoded = SignedAction.from_bytes(blob).action
    entry_type = decoded.entry_type
    bucket = (
        (int(decoded.TYPE), entry_type.zome_index, entry_type.entry_index)
        if entry_type
        else (int(decoded.TYPE), -1, -1)
    )
    dna = bytes(decoded.dna_hash) if isinstance(decoded, Dna) else None
    prev = bytes(decoded.prev) if decoded.prev is not None else None
    assert _scan_action(blob) == (bucket, decoded.seq, prev, bytes(decoded.author), dna)


# ---------------------------------------------- any byte of any row: caught, or nothing read


def observe(path: Path, kit: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Everything the node reads from the store, opened as a node opens it: each read's value,
    or REFUSED when it raised ChainIntegrityError."""
    seen: dict[str, Any] = {}

    def read(key: str, fn: Callable[[], Any]) -> None:
        try:
            seen[key] = fn()
        except ChainIntegrityError:
            seen[key] = REFUSED

    def records(found: Any) -> Any:
        if found is None:
            return None
        items = found if isinstance(found, list) else [found]
        shown = [
            (r.signed_action.to_bytes(), r.entry.to_bytes() if r.entry else None) for r in items
        ]
        return shown if isinstance(found, list) else shown[0]

    try:
        db = SqliteDatabase.open(path)
    except ChainIntegrityError:
        return {"open": REFUSED}
    with db:
        filters = [ChainQuery(entry_type=NOTE), ChainQuery(entry_type=SECRET)] + [
            ChainQuery(action_type=kind) for kind in ActionType
        ]
        for n in (1, 2):
            store = chain_of(db, kit, n)
            read(f"head {n}", store.head)
            read(f"all {n}", lambda s=store: records(s.query(ChainQuery())))
            read(f"iter {n}", lambda s=store: records(list(s.iter_records())))
            for i, query in enumerate(filters):
                read(f"query {n} {i}", lambda s=store, q=query: records(s.query(q)))
        for (cell, seq), action_hash in facts["hash"].items():
            read(f"get record {cell} {seq}", lambda h=action_hash: records(db.get_record(h)))
            read(f"get action {cell} {seq}", lambda h=action_hash: db.get_action(h))
        for key, entry_hash in facts["entry"].items():
            read(f"get entry {key}", lambda e=entry_hash: db.get_entry(e))
        for n, top in ((1, 11), (2, 5)):
            agent = kit.key_pair(n).agent
            read(
                f"get activity {n}",
                lambda a=agent, t=top, c=n: db.get_agent_activity(a, facts["hash"][(c, t)]),
            )
        for name in ("a", "b", "c"):
            read(f"links {name}", lambda b=facts[name]: db.links(b))
    return seen


def candidates(path: Path) -> list[tuple[str, str, str, tuple[Any, ...], int]]:
    """(table, column, where, key, size) of every non-null value of the chain tables."""
    found = []
    tables = {
        "cells": (("id",), ("id", "dna_hash", "agent", "verified_seq")),
        "actions": (
            ("cell_id", "seq"),
            (
                "cell_id",
                "seq",
                "hash",
                "type",
                "timestamp",
                "entry_hash",
                "entry_zome",
                "entry_index",
                "signed",
            ),
        ),
        "entries": (("hash",), ("hash", "content")),
    }
    for table, (keys, columns) in tables.items():
        where = " AND ".join(f"{k} = ?" for k in keys)
        for row in raw(path, f"SELECT {', '.join(keys + columns)} FROM {table}"):
            key, values = row[: len(keys)], row[len(keys) :]
            for column, value in zip(columns, values, strict=True):
                if value is not None:
                    size = 8 if isinstance(value, int) else len(value)
                    found.append((table, column, where, tuple(key), size))
    return found


@pytest.fixture(scope="module")
def baseline(
    written: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory, kit: Any
) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    path, facts = written
    scratch = copy(path, tmp_path_factory.mktemp("baseline") / "ioe.db")
    seen = observe(scratch, kit, facts)
    assert REFUSED not in seen.values()
    assert seen["links a"] and seen["links b"]
    yield seen, candidates(path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_changed_byte_is_caught_or_changes_nothing_read(
    written: tuple[Path, dict[str, Any]],
    baseline: tuple[dict[str, Any], list[Any]],
    tmp_path_factory: pytest.TempPathFactory,
    kit: Any,
    data: st.DataObject,
) -> None:
    path, facts = written
    expected, targets = baseline
    table, column, where, key, size = data.draw(st.sampled_from(targets), label="value")
    at = data.draw(st.integers(0, size - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="mask")
    work = tmp_path_factory.mktemp("flip")
    changed = copy(path, work / "changed.db")
    (value,) = raw(changed, f"SELECT {column} FROM {table} WHERE {where}", key)[0]
    if isinstance(value, int):  # one byte of its 64-bit two's complement form
        bits = (value % 2**64) ^ (mask << (8 * at))
        new: Any = bits - 2**64 if bits >= 2**63 else bits
    else:
        flipped = bytearray(value)
        flipped[at] ^= mask
        new = bytes(flipped)
    try:
        raw(changed, f"UPDATE {table} SET {column} = ? WHERE {where}", (new, *key))
    except sqlite3.IntegrityError:
        return  # a value another row holds: the store's keys refuse the change itself
    verified = copy(changed, work / "verified.db")
    try:
        with SqliteDatabase.open(verified, dnas=[kit.dna]) as db:
            db.verify_all({kit.dna.hash: kit.dna})
        caught = False
    except ChainIntegrityError:
        caught = True
    seen = observe(changed, kit, facts)
    for what, got in seen.items():
        # Never another value: the one written, a refusal, or (looked up by a changed key)
        # nothing held under that key.
        assert (
            got == expected.get(what, got)
            or got == REFUSED
            or (got is None and what.startswith("get "))
        ), (what, table, column, key)
    if not caught:
        assert seen == expected, (table, column, key)
    shutil.rmtree(work)
