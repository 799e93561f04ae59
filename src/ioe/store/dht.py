"""SQLite storage of one DNA's DHT state on this node.

* ops this node holds as an authority (or has fetched and cached), with their validation status;
* the author's publish queue: ops waiting for enough validation receipts, with their next attempt
  time — persisted, so publishing resumes after a restart;
* the receipts received;
* the agent infos of the DNA's members;
* warrants checked here (true and false ones) and the agents blocked because of them.

It is also a :class:`~ioe.engine.validation.RecordSource` over everything this node knows (its own
chains, held ops, cache), for validation hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from ioe.encoding import encode
from ioe.engine.dht import AgentInfo, DhtOp, ValidationReceipt
from ioe.engine.ops import OpType
from ioe.engine.records import Entry, Record, SignedAction
from ioe.engine.warrants import Warrant
from ioe.errors import EncodingError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DhtOpHash,
    DnaHash,
    EntryHash,
    HoloHash,
    WarrantHash,
    from_typed_bytes,
    to_typed_bytes,
)

if TYPE_CHECKING:  # the database builds on this module (it reads what chains cite)
    from ioe.store.sqlite import SqliteDatabase


class OpStatus(IntEnum):
    VALID = 1
    INVALID = 2
    PENDING = 3  # waiting for dependencies
    CACHED = 4  # fetched for a read, not held as an authority


@dataclass(frozen=True, slots=True)
class BlockedAgent:
    """An agent this node refuses, and why."""

    dna_hash: DnaHash
    agent: AgentPubKey
    reason: str
    warrant: WarrantHash
    blamed_by: AgentPubKey  # the signer of the warrant that got the agent blocked
    since_us: int


@dataclass(frozen=True, slots=True)
class QueuedOp:
    op_hash: DhtOpHash
    op: DhtOp
    attempts: int


class SqliteDhtStore:
    """One DNA's DHT tables in a conductor's database."""

    def __init__(self, db: SqliteDatabase, dna_hash: DnaHash) -> None:
        self.db = db
        self.dna = bytes(dna_hash)

    # ---------------------------------------------------------------------------- held ops

    def put_op(self, op: DhtOp, status: OpStatus, now_us: int) -> bool:
        """Store (or upgrade the status of) an op; True if it was new or changed."""
        action = op.signed_action.action
        row = (
            self.dna,
            bytes(op.hash),
            to_typed_bytes(op.basis()),
            int(op.op_type),
            bytes(op.signed_action.hash),
            bytes(action.author),
            action.seq,
            int(status),
            now_us,
            op.to_bytes(),
        )
        with self.db.transaction() as conn:
            current = conn.execute(
                "SELECT status FROM dht_ops WHERE dna_hash = ? AND op_hash = ?",
                (self.dna, bytes(op.hash)),
            ).fetchone()
            if current is not None and not _upgrades(OpStatus(current[0]), status):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO dht_ops (dna_hash, op_hash, basis, op_type, action_hash, "
                "author, seq, status, received_us, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return True

    def op_status(self, op_hash: DhtOpHash) -> OpStatus | None:
        rows = self.db._query(
            "SELECT status FROM dht_ops WHERE dna_hash = ? AND op_hash = ?",
            (self.dna, bytes(op_hash)),
        )
        return OpStatus(rows[0][0]) if rows else None

    def get_op(self, op_hash: DhtOpHash) -> DhtOp | None:
        rows = self.db._query(
            "SELECT data FROM dht_ops WHERE dna_hash = ? AND op_hash = ?",
            (self.dna, bytes(op_hash)),
        )
        return DhtOp.from_bytes(rows[0][0]) if rows else None

    def held_op_hashes(self, limit: int = 100_000) -> list[DhtOpHash]:
        """Ops held as an authority and judged valid (what gossip compares)."""
        rows = self.db._query(
            "SELECT op_hash FROM dht_ops WHERE dna_hash = ? AND status = ? LIMIT ?",
            (self.dna, int(OpStatus.VALID), limit),
        )
        return [DhtOpHash(row[0]) for row in rows]

    def held_index(self, limit: int = 100_000) -> list[tuple[DhtOpHash, HoloHash]]:
        """(op hash, basis) of every op held as valid, without decoding the ops."""
        rows = self.db._query(
            "SELECT op_hash, basis FROM dht_ops WHERE dna_hash = ? AND status = ? LIMIT ?",
            (self.dna, int(OpStatus.VALID), limit),
        )
        return [(DhtOpHash(op_hash), from_typed_bytes(basis)) for op_hash, basis in rows]

    def pending_ops(self, limit: int = 1000) -> list[DhtOp]:
        rows = self.db._query(
            "SELECT data FROM dht_ops WHERE dna_hash = ? AND status = ? LIMIT ?",
            (self.dna, int(OpStatus.PENDING), limit),
        )
        return [DhtOp.from_bytes(row[0]) for row in rows]

    def ops_at(
        self, basis: HoloHash, op_types: Sequence[OpType], *, include_cached: bool = True
    ) -> list[DhtOp]:
        """Valid (and, if asked, cached) ops of these types at ``basis``."""
        statuses = [int(OpStatus.VALID)] + ([int(OpStatus.CACHED)] if include_cached else [])
        kinds = ",".join("?" * len(op_types))
        marks = ",".join("?" * len(statuses))
        rows = self.db._query(
            f"SELECT data FROM dht_ops WHERE dna_hash = ? AND basis = ? AND op_type IN ({kinds}) "
            f"AND status IN ({marks}) ORDER BY seq",
            (self.dna, to_typed_bytes(basis), *[int(t) for t in op_types], *statuses),
        )
        return [DhtOp.from_bytes(row[0]) for row in rows]

    def activity_at_seq(self, author: AgentPubKey, seq: int) -> list[DhtOp]:
        """Every agent-activity op stored for ``author`` at sequence number ``seq``, whatever its
        verdict (fork detection; index ``dht_ops_by_author``)."""
        rows = self.db._query(
            "SELECT data FROM dht_ops WHERE dna_hash = ? AND author = ? AND seq = ? "
            "AND op_type = ?",
            (self.dna, bytes(author), seq, int(OpType.REGISTER_AGENT_ACTIVITY)),
        )
        return [DhtOp.from_bytes(row[0]) for row in rows]

    def drop_ops_beyond(
        self, author: AgentPubKey, last_valid_seq: int, head: ActionHash | None
    ) -> int:
        """Forget every op of ``author`` after ``last_valid_seq``, and at it any action but
        ``head`` (when given): what a revocation's cutoff voids. Returns how many were held."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM dht_ops WHERE dna_hash = ? AND author = ? AND "
                "(seq > ? OR (seq = ? AND ? IS NOT NULL AND action_hash != ?))",
                (
                    self.dna,
                    bytes(author),
                    last_valid_seq,
                    last_valid_seq,
                    bytes(head) if head is not None else None,
                    bytes(head) if head is not None else b"",
                ),
            )
            return cursor.rowcount

    # -------------------------------------------------------- RecordSource (validation hosts)

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        found = self.db.get_action(action_hash)
        if found is not None:
            return found
        rows = self.db._query(
            "SELECT data FROM dht_ops WHERE action_hash = ? AND dna_hash = ? AND status IN (?, ?) "
            "LIMIT 1",
            (bytes(action_hash), self.dna, int(OpStatus.VALID), int(OpStatus.CACHED)),
        )
        return DhtOp.from_bytes(rows[0][0]).signed_action if rows else None

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        found = self.db.get_entry(entry_hash)
        if found is not None:
            return found
        for op in self.ops_at(entry_hash, [OpType.STORE_ENTRY]):
            if op.entry is not None:
                return op.entry
        return None

    def get_record(self, action_hash: ActionHash) -> Record | None:
        found = self.db.get_record(action_hash)
        if found is not None:
            return found
        for op in self.ops_at(action_hash, [OpType.STORE_RECORD]):
            return Record(op.signed_action, op.entry)
        signed = self.get_action(action_hash)  # known from another op (agent activity)
        if signed is None:
            return None
        entry_hash = signed.action.entry_hash
        return Record(signed, None if entry_hash is None else self.get_entry(entry_hash))

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        found = self.db.get_agent_activity(author, chain_top)
        if found is not None:
            return found
        ops = self.ops_at(author, [OpType.REGISTER_AGENT_ACTIVITY])
        actions = [op.signed_action for op in ops]
        for index, signed in enumerate(actions):
            if signed.hash == chain_top:
                chain = actions[: index + 1]
                if [s.action.seq for s in chain] == list(range(len(chain))):
                    return chain
                return None
        return None

    # ---------------------------------------------------------------------- publish queue

    def enqueue(self, ops: Sequence[DhtOp], now_us: int) -> int:
        """Queue ops for publishing (idempotent); returns how many were new."""
        rows = [
            (self.dna, bytes(op.hash), to_typed_bytes(op.basis()), op.to_bytes(), now_us)
            for op in ops
        ]
        with self.db.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO publish_queue (dna_hash, op_hash, basis, data, "
                "next_attempt_us) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            return conn.total_changes - before

    def due(self, now_us: int, limit: int = 256) -> list[QueuedOp]:
        rows = self.db._query(
            "SELECT op_hash, data, attempts FROM publish_queue WHERE dna_hash = ? AND done = 0 "
            "AND next_attempt_us <= ? ORDER BY next_attempt_us LIMIT ?",
            (self.dna, now_us, limit),
        )
        return [QueuedOp(DhtOpHash(h), DhtOp.from_bytes(data), n) for h, data, n in rows]

    def queue_size(self) -> tuple[int, int]:
        """(ops still publishing, ops done)."""
        rows = self.db._query(
            "SELECT done, COUNT(*) FROM publish_queue WHERE dna_hash = ? GROUP BY done", (self.dna,)
        )
        counts = dict(rows)
        return counts.get(0, 0), counts.get(1, 0)

    def all_published(self, op_hashes: Sequence[DhtOpHash]) -> bool:
        """Whether every one of these ops is queued and done."""
        unique = {bytes(h) for h in op_hashes}
        done = 0
        batch = sorted(unique)
        for start in range(0, len(batch), 500):  # SQLite's bound on parameters
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db._query(
                f"SELECT COUNT(*) FROM publish_queue WHERE dna_hash = ? AND done = 1 "
                f"AND op_hash IN ({marks})",
                (self.dna, *chunk),
            )
            done += rows[0][0]
        return done == len(unique)

    def reschedule(self, op_hash: DhtOpHash, attempts: int, next_attempt_us: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE publish_queue SET attempts = ?, next_attempt_us = ? "
                "WHERE dna_hash = ? AND op_hash = ?",
                (attempts, next_attempt_us, self.dna, bytes(op_hash)),
            )

    def mark_published(self, op_hash: DhtOpHash) -> bool:
        """Mark an op done; False when it already was (or is not queued)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE publish_queue SET done = 1 WHERE dna_hash = ? AND op_hash = ? AND done = 0",
                (self.dna, bytes(op_hash)),
            )
            return cursor.rowcount > 0

    # ------------------------------------------------------------------------------ receipts

    def add_receipt(self, receipt: ValidationReceipt) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO op_receipts (op_hash, validator, valid, data) "
                "VALUES (?, ?, ?, ?)",
                (
                    bytes(receipt.op),
                    bytes(receipt.validator),
                    int(receipt.valid),
                    encode(receipt.to_value()),
                ),
            )

    def receipt_validators(self, op_hash: DhtOpHash) -> set[AgentPubKey]:
        rows = self.db._query(
            "SELECT validator FROM op_receipts WHERE op_hash = ? AND valid = 1", (bytes(op_hash),)
        )
        return {AgentPubKey(row[0]) for row in rows}

    # --------------------------------------------------------------------------- agent infos

    def put_agent_info(self, info: AgentInfo) -> bool:
        """Keep the newest info per agent; True if this one was newer."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT signed_at_us FROM agent_infos WHERE dna_hash = ? AND agent = ?",
                (self.dna, bytes(info.agent)),
            ).fetchone()
            if row is not None and row[0] >= info.signed_at_us:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO agent_infos (dna_hash, agent, signed_at_us, "
                "expires_at_us, data) VALUES (?, ?, ?, ?, ?)",
                (
                    self.dna,
                    bytes(info.agent),
                    info.signed_at_us,
                    info.expires_at_us,
                    info.to_bytes(),
                ),
            )
        return True

    def agent_infos(self, now_us: int) -> list[AgentInfo]:
        rows = self.db._query(
            "SELECT data FROM agent_infos WHERE dna_hash = ? AND expires_at_us > ?",
            (self.dna, now_us),
        )
        infos = []
        for (data,) in rows:
            try:
                infos.append(AgentInfo.from_bytes(data))
            except EncodingError:
                continue
        return infos

    # ------------------------------------------------------------------------------- warrants

    def put_warrant(self, warrant: Warrant, *, upheld: bool, now_us: int) -> bool:
        """Keep a checked warrant (true or false); True if it was new."""
        with self.db.transaction() as conn:
            before = conn.total_changes
            conn.execute(
                "INSERT OR IGNORE INTO warrants (dna_hash, hash, kind, warranted, signer, upheld, "
                "received_us, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.dna,
                    bytes(warrant.hash),
                    int(warrant.kind),
                    bytes(warrant.author),
                    bytes(warrant.signer),
                    int(upheld),
                    now_us,
                    warrant.to_bytes(),
                ),
            )
            return conn.total_changes > before

    def has_warrant(self, warrant_hash: WarrantHash) -> bool:
        return bool(
            self.db._query(
                "SELECT 1 FROM warrants WHERE dna_hash = ? AND hash = ?",
                (self.dna, bytes(warrant_hash)),
            )
        )

    def warrants_about(self, agent: AgentPubKey) -> int:
        rows = self.db._query(
            "SELECT COUNT(*) FROM warrants WHERE dna_hash = ? AND warranted = ?",
            (self.dna, bytes(agent)),
        )
        return int(rows[0][0])

    def warrant_hashes(self, limit: int = 4096) -> list[WarrantHash]:
        rows = self.db._query(
            "SELECT hash FROM warrants WHERE dna_hash = ? ORDER BY received_us LIMIT ?",
            (self.dna, limit),
        )
        return [WarrantHash(row[0]) for row in rows]

    def get_warrant(self, warrant_hash: WarrantHash) -> bytes | None:
        rows = self.db._query(
            "SELECT data FROM warrants WHERE dna_hash = ? AND hash = ?",
            (self.dna, bytes(warrant_hash)),
        )
        return bytes(rows[0][0]) if rows else None

    def warrant_counts(self) -> tuple[int, int]:
        """(true warrants, false warrants) kept for this DNA."""
        rows = self.db._query(
            "SELECT upheld, COUNT(*) FROM warrants WHERE dna_hash = ? GROUP BY upheld", (self.dna,)
        )
        counts = dict(rows)
        return counts.get(1, 0), counts.get(0, 0)

    # ------------------------------------------------------------------------ blocked agents

    def block(
        self,
        agent: AgentPubKey,
        *,
        reason: str,
        warrant: WarrantHash,
        blamed_by: AgentPubKey,
        now_us: int,
    ) -> bool:
        """Block ``agent`` (for good: a block survives restarts); True if it was new."""
        with self.db.transaction() as conn:
            before = conn.total_changes
            conn.execute(
                "INSERT OR IGNORE INTO blocked_agents (dna_hash, agent, reason, warrant, "
                "blamed_by, since_us) VALUES (?, ?, ?, ?, ?, ?)",
                (self.dna, bytes(agent), reason, bytes(warrant), bytes(blamed_by), now_us),
            )
            return conn.total_changes > before

    def blocked(self) -> dict[AgentPubKey, BlockedAgent]:
        return {b.agent: b for b in blocked_agents(self.db) if bytes(b.dna_hash) == self.dna}


def blocked_agents(db: SqliteDatabase) -> list[BlockedAgent]:
    """Every agent blocked in any DNA of ``db``, oldest block first."""
    rows = db._query(
        "SELECT dna_hash, agent, reason, warrant, blamed_by, since_us FROM blocked_agents "
        "ORDER BY since_us, agent",
        (),
    )
    return [
        BlockedAgent(
            DnaHash(dna), AgentPubKey(agent), reason, WarrantHash(warrant), AgentPubKey(by), since
        )
        for dna, agent, reason, warrant, by, since in rows
    ]


def _upgrades(current: OpStatus, new: OpStatus) -> bool:
    """Whether a stored op's status may change to ``new``: a verdict replaces "pending" or
    "cached"; a verdict is never replaced."""
    if current in (OpStatus.VALID, OpStatus.INVALID):
        return False
    return new != current
