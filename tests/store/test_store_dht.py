"""What a revocation's cutoff removes from the held ops (``SqliteDhtStore.drop_ops_beyond``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ioe.engine.dht import DhtOp, publishable_ops
from ioe.engine.records import Create, Record
from ioe.hashing import DnaHash
from ioe.store.dht import OpStatus, SqliteDhtStore
from ioe.store.sqlite import SqliteDatabase

NOW = 1_800_000_000_000_000


def ops(*records: Record) -> list[DhtOp]:
    return [op for record in records for op in publishable_ops(record)]


def test_ops_beyond_the_cutoff_and_a_fork_at_it_are_dropped(tmp_path: Path, kit: Any) -> None:
    author = kit.ChainWriter(kit.key_pair(1))
    author.genesis()
    kept_first = author.create(kit.Note("a"))  # seq 4
    fork = author.next(Create, **author.app_fields(kit.Note("fork")))  # another seq 5
    head = author.create(kit.Note("b"))  # seq 5: the last valid action
    beyond = author.create(kit.Note("c"))  # seq 6
    other = kit.ChainWriter(kit.key_pair(2))
    other.genesis()
    other.create(kit.Note("a"))
    other.create(kit.Note("b"))
    other.create(kit.Note("c"))  # seq 6 of another author: stays
    assert (fork.action.seq, head.action.seq, beyond.action.seq) == (5, 5, 6)

    kept = ops(*author.records[:4], kept_first, head, *other.records)
    dropped = ops(fork, beyond)
    elsewhere = ops(beyond)  # the same author's ops in another DNA's network: stay
    with SqliteDatabase.open(tmp_path / "ioe.db") as db:
        store = SqliteDhtStore(db, kit.dna.hash)
        for op in kept + dropped:
            assert store.put_op(op, OpStatus.VALID, NOW)
        other_dna = SqliteDhtStore(db, DnaHash(b"\x07" * 32))
        for op in elsewhere:
            other_dna.put_op(op, OpStatus.VALID, NOW)

        assert store.drop_ops_beyond(author.keys.agent, 5, head.action_hash) == len(dropped)

        assert all(store.get_op(op.hash) is None for op in dropped)
        assert all(store.get_op(op.hash) == op for op in kept)
        assert all(other_dna.get_op(op.hash) == op for op in elsewhere)


def test_without_a_head_only_what_follows_the_cutoff_goes(tmp_path: Path, kit: Any) -> None:
    author = kit.ChainWriter(kit.key_pair(1))
    author.genesis()
    at_cutoff = author.create(kit.Note("a"))  # seq 4
    after = author.create(kit.Note("b"))  # seq 5
    with SqliteDatabase.open(tmp_path / "ioe.db") as db:
        store = SqliteDhtStore(db, kit.dna.hash)
        for op in ops(*author.records):
            store.put_op(op, OpStatus.VALID, NOW)
        assert store.drop_ops_beyond(author.keys.agent, 4, None) == len(ops(after))
        assert all(store.get_op(op.hash) is not None for op in ops(at_cutoff))
        assert store.drop_ops_beyond(author.keys.agent, 4, None) == 0
