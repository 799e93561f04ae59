"""SQLite storage of a node's reputation observations (tables of schema version 4).

``reputation_events`` holds one row per (agent, kind, day): the count and the latest time of that
day's events. ``reputation_refs`` remembers the references of events that must count once. What
the bounds are, and why, is :mod:`ioe.identity.service.reputation`'s to say: they are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from ioe.hashing import AgentPubKey
from ioe.store.sqlite import SqliteDatabase


@dataclass(frozen=True, slots=True)
class EventLimits:
    """How much is kept: days per (agent, kind), agents, and references."""

    max_days: int
    max_subjects: int
    max_refs: int


@dataclass(frozen=True, slots=True)
class EventCount:
    """One (agent, kind, day) row: how many events, and when the latest was."""

    subject: AgentPubKey
    kind: str
    count: int
    last_us: int


class SqliteReputationStore:
    """The reputation tables in a conductor's database."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def count_event(
        self,
        subject: AgentPubKey,
        kind: str,
        day: int,
        at_us: int,
        *,
        ref_key: bytes | None,
        limits: EventLimits,
    ) -> bool:
        """Count one event in its day's row, then trim to ``limits``, in one transaction. An
        event whose ``ref_key`` was already seen is not counted again. True if counted."""
        with self.db.transaction() as conn:
            if ref_key is not None:
                seen = conn.execute("SELECT 1 FROM reputation_refs WHERE ref = ?", (ref_key,))
                if seen.fetchone() is not None:
                    return False
                conn.execute(
                    "INSERT INTO reputation_refs (ref, at_us) VALUES (?, ?)", (ref_key, at_us)
                )
                conn.execute(
                    "DELETE FROM reputation_refs WHERE ref IN (SELECT ref FROM reputation_refs "
                    "ORDER BY at_us DESC, ref LIMIT -1 OFFSET ?)",
                    (limits.max_refs,),
                )
            updated = conn.execute(
                "UPDATE reputation_events SET count = count + 1, last_us = MAX(last_us, ?) "
                "WHERE subject = ? AND kind = ? AND day = ?",
                (at_us, bytes(subject), kind, day),
            ).rowcount
            if updated:
                return True
            conn.execute(
                "INSERT INTO reputation_events (subject, kind, day, count, last_us) "
                "VALUES (?, ?, ?, 1, ?)",
                (bytes(subject), kind, day, at_us),
            )
            conn.execute(
                "DELETE FROM reputation_events WHERE subject = ? AND kind = ? AND day IN "
                "(SELECT day FROM reputation_events WHERE subject = ? AND kind = ? "
                "ORDER BY day DESC LIMIT -1 OFFSET ?)",
                (bytes(subject), kind, bytes(subject), kind, limits.max_days),
            )
            subjects = conn.execute(
                "SELECT COUNT(DISTINCT subject) FROM reputation_events"
            ).fetchone()[0]
            if subjects > limits.max_subjects:
                conn.execute(
                    "DELETE FROM reputation_events WHERE subject IN (SELECT subject FROM "
                    "reputation_events GROUP BY subject ORDER BY MAX(last_us), subject "
                    "LIMIT ?)",
                    (subjects - limits.max_subjects,),
                )
        return True

    def event_counts(self, subject: AgentPubKey | None = None) -> list[EventCount]:
        """Every stored row (of ``subject``, or of everyone)."""
        if subject is None:
            rows = self.db._query("SELECT subject, kind, count, last_us FROM reputation_events", ())
        else:
            rows = self.db._query(
                "SELECT subject, kind, count, last_us FROM reputation_events WHERE subject = ?",
                (bytes(subject),),
            )
        return [EventCount(AgentPubKey(a), kind, count, last) for a, kind, count, last in rows]

    def subjects(self) -> list[AgentPubKey]:
        """Every agent with a stored event, in key order."""
        rows = self.db._query("SELECT DISTINCT subject FROM reputation_events ORDER BY subject", ())
        return [AgentPubKey(row[0]) for row in rows]
