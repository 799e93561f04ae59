"""What only the SQLite store does: schema versions, verification on open, tamper detection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.engine.cell import Cell
from ioe.errors import ChainIntegrityError, StoreError
from ioe.store.sqlite import MIGRATIONS, SqliteChainStore, SqliteDatabase


def raw(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Run one statement on the file directly, as corruption or another program would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(sql, args).fetchall()


def verified_seq(path: Path) -> int:
    return int(raw(path, "SELECT verified_seq FROM cells")[0][0])


def flip(
    path: Path, table: str, column: str, key: str, value: Any, position: int, mask: int = 0xFF
) -> bytes:
    """Flip the ``mask`` bits of one byte of a blob; returns the original blob."""
    (blob,) = raw(path, f"SELECT {column} FROM {table} WHERE {key} = ?", (value,))[0]
    changed = bytearray(blob)
    changed[position] ^= mask
    raw(path, f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (bytes(changed), value))
    return bytes(blob)


def flip_action(path: Path, seq: int, position: int = -1, mask: int = 0xFF) -> bytes:
    return flip(path, "actions", "signed", "seq", seq, position, mask)


def restore_action(path: Path, seq: int, blob: bytes) -> None:
    raw(path, "UPDATE actions SET signed = ? WHERE seq = ?", (blob, seq))


def write_notes(cell: Cell, kit: Any, *titles: str) -> None:
    for title in titles:
        cell.call("notes", "create", kit.Note(title), now_us=cell.head().timestamp + 1)


def build(path: Path, kit: Any) -> int:
    """A chain with every kind of record, each entry distinct; returns its length."""
    with SqliteDatabase.open(path, dnas=[kit.dna]) as db:
        cell = kit.new_cell(db)
        now = kit.T0 + 1_000
        a = cell.call("notes", "create", kit.Note("a"), now_us=now)  # 4
        b = cell.call("notes", "create", kit.Note("b", "body"), now_us=now + 1)  # 5
        cell.call("notes", "create", kit.Secret(7), now_us=now + 2)  # 6
        cell.call("notes", "update", (a, kit.Note("a2")), now_us=now + 3)  # 7
        link = cell.call("notes", "link", (a, b, b"tag"), now_us=now + 4)  # 8
        cell.call("notes", "delete", b, now_us=now + 5)  # 9
        cell.call("notes", "unlink", link, now_us=now + 6)  # 10
        return cell.head().seq + 1


@pytest.fixture
def path(tmp_path: Path, kit: Any) -> Path:
    path = tmp_path / "ioe.db"
    build(path, kit)
    return path


# -------------------------------------------------------------------------------- schema


def test_schema_version_is_set(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with SqliteDatabase.open(path) as db:
        assert db.schema_version == len(MIGRATIONS) >= 1
    assert raw(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {name for (name,) in raw(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"cells", "actions", "entries", "dnas", "settings"} <= tables
    assert "links" not in tables  # links are derived from the signed link actions
    with SqliteDatabase.open(path) as db:  # reopening migrates nothing and keeps the version
        assert db.schema_version == len(MIGRATIONS)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteDatabase.open(path).close()
    raw(path, f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="schema version"):
        SqliteDatabase.open(path)


def test_an_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SqliteDatabase.open(tmp_path)  # a directory


def test_dna_specs_and_settings_persist(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "ioe.db"
    with SqliteDatabase.open(path, dnas=[kit.dna]) as db:
        db.register_dna(kit.dna)  # twice is harmless
        db.put_setting("answer", {"n": 42})
        db.put_setting("answer", {"n": 43})
    with SqliteDatabase.open(path) as db:
        assert db.dna_specs() == {
            kit.dna.hash: {
                "name": "test-notes",
                "properties": {"purpose": "tests"},
                "network_seed": "",
            }
        }
        assert db.get_setting("answer") == {"n": 43}
        assert db.get_setting("missing") is None


# ------------------------------------------------------------------------ incremental verify


def test_reopening_verifies_only_what_is_new(path: Path, kit: Any) -> None:
    assert verified_seq(path) == -1  # written, never verified
    with SqliteDatabase(path) as db:
        assert db.verify_incremental() == 11
        assert db.verify_incremental() == 0
    assert verified_seq(path) == 10

    with SqliteDatabase.open(path) as db:
        cell = kit.new_cell(db)
        write_notes(cell, kit, "x", "y", "z")
    assert verified_seq(path) == 10
    with SqliteDatabase(path) as db:
        assert db.verify_incremental() == 3
    assert verified_seq(path) == 13

    with SqliteDatabase.open(path) as db:
        write_notes(kit.new_cell(db), kit, "w")
    with SqliteDatabase.open(path):  # open itself verifies and moves the watermark
        pass
    assert verified_seq(path) == 14


def test_tampering_after_the_watermark_is_caught_on_open(path: Path, kit: Any) -> None:
    SqliteDatabase.open(path).close()
    assert verified_seq(path) == 10
    with SqliteDatabase.open(path) as db:
        write_notes(kit.new_cell(db), kit, "x", "y", "z")  # 11, 12, 13
    flip_action(path, 12)
    with pytest.raises(ChainIntegrityError) as caught:
        SqliteDatabase.open(path)
    assert caught.value.seq == 12
    assert verified_seq(path) == 10


def test_tampering_before_the_watermark_needs_a_full_verify(path: Path, kit: Any) -> None:
    SqliteDatabase.open(path).close()
    flip_action(path, 5)
    with SqliteDatabase.open(path) as db:  # incremental: starts after record #10
        with pytest.raises(ChainIntegrityError) as caught:
            db.verify_all()
        assert caught.value.seq == 5


def test_a_missing_record_is_caught(path: Path) -> None:
    raw(path, "DELETE FROM actions WHERE seq = 6")
    with pytest.raises(ChainIntegrityError, match="sequence gap") as caught:
        SqliteDatabase.open(path)
    assert caught.value.seq == 6


def test_a_missing_verified_record_is_caught(path: Path) -> None:
    SqliteDatabase.open(path).close()
    raw(path, "DELETE FROM actions WHERE seq = 10")
    with pytest.raises(ChainIntegrityError, match="verified record missing") as caught:
        SqliteDatabase.open(path)
    assert caught.value.seq == 10


def test_a_missing_entry_is_caught(path: Path) -> None:
    (entry_hash,) = raw(path, "SELECT entry_hash FROM actions WHERE seq = 5")[0]
    raw(path, "DELETE FROM entries WHERE hash = ?", (entry_hash,))
    with pytest.raises(ChainIntegrityError, match="entry is missing") as caught:
        SqliteDatabase.open(path)
    assert caught.value.seq == 5


def test_a_chain_with_a_wrong_stored_hash_is_caught(path: Path) -> None:
    (other,) = raw(path, "SELECT hash FROM actions WHERE seq = 3")[0]
    raw(path, "UPDATE actions SET hash = ? WHERE seq = 4", (other,))
    with pytest.raises(ChainIntegrityError, match="stored hash") as caught:
        SqliteDatabase.open(path)
    assert caught.value.seq == 4


def test_app_rules_run_when_the_dna_is_known(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "ioe.db"
    with SqliteDatabase.open(path) as db:
        cell = kit.new_cell(db)
        writer = kit.ChainWriter(cell.keys)
        writer.records = list(cell.store.iter_records())
        writer.now = cell.head().timestamp + 1
        bad = writer.create(kit.Note(kit.FORBIDDEN))  # system-valid, app-invalid
        cell.store.append([bad], cell.head().hash)
    with SqliteDatabase.open(path) as db:  # incremental verification knows no DNA
        assert db.verify_all() == 5
        with pytest.raises(ChainIntegrityError, match="forbidden title") as caught:
            db.verify_all({kit.dna.hash: kit.dna})
        assert caught.value.seq == 4


# --------------------------------------------------------------------- flipped bytes, property


@pytest.fixture(scope="module")
def tamper_target(tmp_path_factory: pytest.TempPathFactory, kit: Any) -> Iterator[Any]:
    """One chain for every example: each flips a byte, verifies, and restores it."""
    path = tmp_path_factory.mktemp("tamper") / "ioe.db"
    length = build(path, kit)
    rows = raw(path, "SELECT seq, length(signed), entry_hash FROM actions ORDER BY seq")
    first_use: dict[bytes, int] = {}
    for seq, _, entry_hash in rows:
        if entry_hash is not None:
            first_use.setdefault(entry_hash, seq)
    entries = [
        (entry_hash, seq, size)
        for (entry_hash, size) in raw(path, "SELECT hash, length(content) FROM entries")
        for seq in [first_use[entry_hash]]
    ]
    with SqliteDatabase.open(path) as db:
        store = db.chain(kit.dna.hash, kit.key_pair(1).agent)
        assert store.verify(incremental=False, dna=kit.dna) == length
        yield path, store, [(seq, size) for seq, size, _ in rows], entries


def full_verify(store: SqliteChainStore) -> ChainIntegrityError:
    # No DNA: the system rules alone (hashes, signatures, links) must catch every flip.
    with pytest.raises(ChainIntegrityError) as caught:
        store.verify(incremental=False, parallel=False)
    return caught.value


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_a_flipped_byte_in_any_action_is_caught(tamper_target: Any, data: Any) -> None:
    path, store, actions, _ = tamper_target
    seq, size = data.draw(st.sampled_from(actions), label="action")
    position = data.draw(st.integers(0, size - 1), label="position")
    original = flip_action(path, seq, position, data.draw(st.integers(1, 255), label="mask"))
    try:
        error = full_verify(store)
    finally:
        restore_action(path, seq, original)
    assert error.seq == seq


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_flipped_byte_in_any_entry_is_caught(tamper_target: Any, data: Any) -> None:
    path, store, _, entries = tamper_target
    entry_hash, seq, size = data.draw(st.sampled_from(entries), label="entry")
    position = data.draw(st.integers(0, size - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    original = flip(path, "entries", "content", "hash", entry_hash, position, mask)
    try:
        error = full_verify(store)
    finally:
        raw(path, "UPDATE entries SET content = ? WHERE hash = ?", (original, entry_hash))
    assert error.seq == seq


# ----------------------------------------------------------------------- parallel verification


def test_parallel_and_serial_verification_agree(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "ioe.db"
    length = build(path, kit)
    entry_of = dict(raw(path, "SELECT seq, entry_hash FROM actions"))

    def both(store: SqliteChainStore) -> tuple[Any, Any]:
        results = []
        for parallel in (True, False):
            try:
                results.append(store.verify(incremental=False, dna=kit.dna, parallel=parallel))
            except ChainIntegrityError as exc:
                results.append((exc.seq, exc.action_hash))
        return results[0], results[1]

    def spoil_entry(seq: int) -> None:
        raw(path, "UPDATE entries SET content = ? WHERE hash = ?", (b"\x00", entry_of[seq]))

    with SqliteDatabase.open(path) as db:
        store = db.chain(kit.dna.hash, kit.key_pair(1).agent)
        assert both(store) == (length, length)

        # A signature that is valid, but for another action: only the signature check sees it.
        ((blob_7,),) = raw(path, "SELECT signed FROM actions WHERE seq = 7")
        ((blob_8,),) = raw(path, "SELECT signed FROM actions WHERE seq = 8")
        raw(path, "UPDATE actions SET signed = ? WHERE seq = 8", (blob_8[:-64] + blob_7[-64:],))
        parallel, serial = both(store)
        assert parallel == serial
        assert parallel[0] == 8

        flip_action(path, 6)  # a bad signature alone
        parallel, serial = both(store)
        assert parallel == serial
        assert parallel[0] == 6

        spoil_entry(5)  # an earlier bad entry wins over the later bad signature
        parallel, serial = both(store)
        assert parallel == serial
        assert parallel[0] == 5

        flip_action(path, 4)  # an earlier bad signature wins over the bad entry
        parallel, serial = both(store)
        assert parallel == serial
        assert parallel[0] == 4


def test_nested_transactions_join_the_outer_one_and_roll_back_alone(tmp_path: Path) -> None:
    db = SqliteDatabase.open(tmp_path / "nested.sqlite")
    try:
        with db.transaction():
            db.put_setting("a", 1)
            with pytest.raises(RuntimeError), db.transaction():
                db.put_setting("b", 2)
                raise RuntimeError("inner fails")
            db.put_setting("c", 3)
        assert (db.get_setting("a"), db.get_setting("b"), db.get_setting("c")) == (1, None, 3)
        with pytest.raises(RuntimeError), db.transaction():
            db.put_setting("d", 4)
            with db.transaction():
                db.put_setting("e", 5)
            raise RuntimeError("outer fails")
        assert db.get_setting("d") is None and db.get_setting("e") is None
    finally:
        db.close()


# ------------------------------------------------------------------------ copies and damage


def test_a_backup_is_a_whole_verifiable_copy(path: Path, tmp_path: Path, kit: Any) -> None:
    copy = tmp_path / "copy.db"
    with SqliteDatabase.open(path) as db:
        db.put_setting("kept", 42)
        db.backup_to(copy)
    assert raw(copy, "SELECT hash, signed FROM actions ORDER BY seq") == raw(
        path, "SELECT hash, signed FROM actions ORDER BY seq"
    )
    with SqliteDatabase.open(copy, dnas=[kit.dna]) as db:
        assert db.verify_all({kit.dna.hash: kit.dna}) == len(raw(path, "SELECT 1 FROM actions"))
        assert db.get_setting("kept") == 42


def test_a_flipped_entry_bit_is_one_bit_of_the_largest_entry(path: Path) -> None:
    before = dict(raw(path, "SELECT hash, content FROM entries"))
    largest = max(before, key=lambda h: len(before[h]))
    sizes = sorted(len(content) for content in before.values())
    assert sizes[-1] > sizes[-2], "the largest entry is one entry"
    with SqliteDatabase.open(path) as db:
        assert db.flip_entry_bit() == largest
        with pytest.raises(ChainIntegrityError):
            db.verify_all()
    after = dict(raw(path, "SELECT hash, content FROM entries"))
    changed = {h for h in before if before[h] != after[h]}
    assert changed == {largest}
    diff = [a ^ b for a, b in zip(before[largest], after[largest], strict=True)]
    middle = len(diff) // 2
    assert diff[middle] == 0x01 and not any(diff[:middle] + diff[middle + 1 :])


def test_flipping_a_bit_of_no_entry_changes_nothing(tmp_path: Path) -> None:
    with SqliteDatabase.open(tmp_path / "empty.db") as db:
        assert db.flip_entry_bit() is None
