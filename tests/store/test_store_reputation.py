"""The reputation tables behind named methods (``ioe.store.reputation``): a day's events in one
row, references counted once, and every bound trimmed in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ioe.crypto.keys import KeyPair
from ioe.store.reputation import EventCount, EventLimits, SqliteReputationStore
from ioe.store.sqlite import SqliteDatabase

A, B, C = (KeyPair(bytes([i]) * 32).agent for i in (1, 2, 3))
ROOMY = EventLimits(max_days=10, max_subjects=10, max_refs=10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteReputationStore]:
    with SqliteDatabase.open(tmp_path / "ioe.db") as db:
        yield SqliteReputationStore(db)


def test_events_of_one_day_share_a_row(store: SqliteReputationStore) -> None:
    for at_us in (30, 10, 20):
        assert store.count_event(A, "kept", 7, at_us, ref_key=None, limits=ROOMY)
    assert store.count_event(A, "kept", 8, 40, ref_key=None, limits=ROOMY)
    assert store.count_event(A, "broken", 7, 5, ref_key=None, limits=ROOMY)
    rows = sorted(store.event_counts(A), key=lambda r: (r.kind, r.last_us))
    assert rows == [
        EventCount(A, "broken", 1, 5),
        EventCount(A, "kept", 3, 30),  # the latest of the day, not the last recorded
        EventCount(A, "kept", 1, 40),
    ]


def test_a_reference_counts_once(store: SqliteReputationStore) -> None:
    assert store.count_event(A, "kept", 1, 10, ref_key=b"r1", limits=ROOMY)
    assert not store.count_event(A, "kept", 1, 11, ref_key=b"r1", limits=ROOMY)
    assert store.count_event(A, "kept", 1, 12, ref_key=b"r2", limits=ROOMY)
    assert [(r.count, r.last_us) for r in store.event_counts(A)] == [(2, 12)]


def test_the_oldest_days_go_first(store: SqliteReputationStore) -> None:
    limits = EventLimits(max_days=2, max_subjects=10, max_refs=10)
    for day in (5, 3, 4):
        store.count_event(A, "kept", day, day * 100, ref_key=None, limits=limits)
    store.count_event(A, "warrant", 1, 100, ref_key=None, limits=limits)  # another kind
    kept = sorted(r.last_us for r in store.event_counts(A) if r.kind == "kept")
    assert kept == [400, 500]
    assert [r.kind for r in store.event_counts(A)].count("warrant") == 1


def test_the_agent_seen_least_recently_goes_first(store: SqliteReputationStore) -> None:
    limits = EventLimits(max_days=10, max_subjects=2, max_refs=10)
    store.count_event(A, "kept", 1, 300, ref_key=None, limits=limits)
    store.count_event(B, "kept", 1, 100, ref_key=None, limits=limits)
    store.count_event(C, "kept", 1, 200, ref_key=None, limits=limits)
    assert set(store.subjects()) == {A, C}


def test_only_the_newest_references_are_remembered(store: SqliteReputationStore) -> None:
    limits = EventLimits(max_days=10, max_subjects=10, max_refs=2)
    for at_us, ref in ((1, b"old"), (2, b"mid"), (3, b"new")):
        store.count_event(A, "kept", 0, at_us, ref_key=ref, limits=limits)
    assert not store.count_event(A, "kept", 0, 4, ref_key=b"mid", limits=limits)
    assert store.count_event(A, "kept", 0, 5, ref_key=b"old", limits=limits)  # forgotten
    assert [r.count for r in store.event_counts(A)] == [4]


def test_subjects_are_in_key_order_and_counts_filter_by_subject(
    store: SqliteReputationStore,
) -> None:
    for agent in (C, A, B):
        store.count_event(agent, "kept", 1, 1, ref_key=None, limits=ROOMY)
    assert store.subjects() == sorted((A, B, C), key=bytes)
    assert [r.subject for r in store.event_counts(B)] == [B]
    assert len(store.event_counts()) == 3


def test_an_event_counted_in_a_failed_transaction_is_not_kept(
    store: SqliteReputationStore,
) -> None:
    with pytest.raises(RuntimeError), store.db.transaction():
        store.count_event(A, "kept", 1, 1, ref_key=b"r", limits=ROOMY)
        raise RuntimeError("the caller's work failed")
    assert store.event_counts() == []
    assert store.count_event(A, "kept", 1, 1, ref_key=b"r", limits=ROOMY)  # ref not kept either


def test_rows_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ioe.db"
    with SqliteDatabase.open(path) as db:
        SqliteReputationStore(db).count_event(A, "kept", 2, 9, ref_key=b"r", limits=ROOMY)
    with SqliteDatabase.open(path) as db:
        again = SqliteReputationStore(db)
        assert again.event_counts() == [EventCount(A, "kept", 1, 9)]
        assert not again.count_event(A, "kept", 2, 10, ref_key=b"r", limits=ROOMY)
