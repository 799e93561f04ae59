"""SQLite storage: one database per conductor, WAL, ``synchronous=FULL`` for chain writes.

Each append is one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a zome call's records land all
together or not at all, and a commit that has returned survives a crash or power loss. Opening a
database applies pending schema migrations and verifies every chain from its last verified record
onwards (hash links, signatures, sequence, entry hashes), so corruption is found before use.

What the node reads is what was signed, whenever it was verified: every record read is decoded
from its signed bytes and checked against its row (action hash, sequence number, author, the
columns kept beside the bytes), its signature (remembered per record once checked, for as long
as the bytes stay the same) and its entry's hash. Which records a query selects, and the links
of a base, come from an index this process derives from the signed bytes themselves (the hash
chain up to a head whose signature is checked), never from columns that are not signed. A record
that fails is refused with :class:`ChainIntegrityError` naming it (logged once). ``docs/engine.md``
says what is checked when.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from ioe.crypto.batch import PendingCheck, SignatureWorkers, SignedMessage, signed_message
from ioe.crypto.keys import SIGNATURE_SIZE
from ioe.encoding import Value, decode, encode
from ioe.engine.dna import DnaDef
from ioe.engine.ports import ChainHead, ChainQuery, Link, require_sequence
from ioe.engine.records import (
    ACTION_SIGNATURE_CONTEXT,
    ActionType,
    AnyAction,
    CreateLink,
    DeleteLink,
    Dna,
    Entry,
    Record,
    SignedAction,
    Visibility,
)
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ChainError, ChainIntegrityError, EncodingError, StoreError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DnaHash,
    EntryHash,
    HoloHash,
    blake2b_256,
    to_typed_bytes,
)
from ioe.store.dht import SqliteDhtStore

MIGRATIONS: tuple[str, ...] = (
    # 1: chains, entries, links, DNA specs, conductor settings
    """
    CREATE TABLE dnas (
        hash BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        spec BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE cells (
        id INTEGER PRIMARY KEY,
        dna_hash BLOB NOT NULL,
        agent BLOB NOT NULL,
        verified_seq INTEGER NOT NULL DEFAULT -1,
        UNIQUE (dna_hash, agent)
    );
    CREATE TABLE actions (
        cell_id INTEGER NOT NULL REFERENCES cells (id),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        type INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        entry_hash BLOB,
        entry_zome INTEGER,
        entry_index INTEGER,
        signed BLOB NOT NULL,
        PRIMARY KEY (cell_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX actions_by_hash ON actions (hash);
    CREATE INDEX actions_by_entry_type ON actions (cell_id, entry_zome, entry_index, seq);
    CREATE TABLE entries (
        hash BLOB PRIMARY KEY,
        content BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE links (
        create_hash BLOB PRIMARY KEY,
        author BLOB NOT NULL,
        timestamp INTEGER NOT NULL,
        base BLOB NOT NULL,
        target BLOB NOT NULL,
        zome INTEGER NOT NULL,
        type INTEGER NOT NULL,
        tag BLOB NOT NULL,
        deleted_by BLOB
    ) WITHOUT ROWID;
    CREATE INDEX links_by_base ON links (base, zome, type);
    """,
    # 2: the DHT — ops held as an authority, the author's publish queue, receipts, agent infos
    """
    CREATE TABLE dht_ops (
        dna_hash BLOB NOT NULL,
        op_hash BLOB NOT NULL,
        basis BLOB NOT NULL,
        op_type INTEGER NOT NULL,
        action_hash BLOB NOT NULL,
        author BLOB NOT NULL,
        seq INTEGER NOT NULL,
        status INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (dna_hash, op_hash)
    ) WITHOUT ROWID;
    CREATE INDEX dht_ops_by_basis ON dht_ops (dna_hash, basis, op_type);
    CREATE INDEX dht_ops_by_action ON dht_ops (action_hash);
    CREATE INDEX dht_ops_by_author ON dht_ops (dna_hash, author, seq);
    CREATE TABLE publish_queue (
        dna_hash BLOB NOT NULL,
        op_hash BLOB NOT NULL,
        basis BLOB NOT NULL,
        data BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_us INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (dna_hash, op_hash)
    ) WITHOUT ROWID;
    CREATE INDEX publish_queue_due ON publish_queue (done, next_attempt_us);
    CREATE TABLE op_receipts (
        op_hash BLOB NOT NULL,
        validator BLOB NOT NULL,
        valid INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (op_hash, validator)
    ) WITHOUT ROWID;
    CREATE TABLE agent_infos (
        dna_hash BLOB NOT NULL,
        agent BLOB NOT NULL,
        signed_at_us INTEGER NOT NULL,
        expires_at_us INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (dna_hash, agent)
    ) WITHOUT ROWID;
    """,
    # 3: warrants (checked, true or false) and the agents blocked because of them
    """
    CREATE TABLE warrants (
        dna_hash BLOB NOT NULL,
        hash BLOB NOT NULL,
        kind INTEGER NOT NULL,
        warranted BLOB NOT NULL,
        signer BLOB NOT NULL,
        upheld INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (dna_hash, hash)
    ) WITHOUT ROWID;
    CREATE INDEX warrants_by_warranted ON warrants (dna_hash, warranted);
    CREATE TABLE blocked_agents (
        dna_hash BLOB NOT NULL,
        agent BLOB NOT NULL,
        reason TEXT NOT NULL,
        warrant BLOB NOT NULL,
        blamed_by BLOB NOT NULL,
        since_us INTEGER NOT NULL,
        PRIMARY KEY (dna_hash, agent)
    ) WITHOUT ROWID;
    """,
    # 4: reputation: per agent, kind and day, how many events this node validated (and the
    # references of events that must count once)
    """
    CREATE TABLE reputation_events (
        subject BLOB NOT NULL,
        kind TEXT NOT NULL,
        day INTEGER NOT NULL,
        count INTEGER NOT NULL,
        last_us INTEGER NOT NULL,
        PRIMARY KEY (subject, kind, day)
    ) WITHOUT ROWID;
    CREATE TABLE reputation_refs (
        ref BLOB PRIMARY KEY,
        at_us INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 5: nothing unsigned selects what is read: queries by type and links come from an index
    # derived from the signed actions (so the SQL index by entry type and the links table go)
    """
    DROP INDEX actions_by_entry_type;
    DROP TABLE links;
    """,
)

log = logging.getLogger(__name__)

_ROW_COLUMNS = (
    "a.seq, a.hash, a.signed, a.type, a.timestamp, a.entry_hash, a.entry_zome, a.entry_index"
)
"""A record's row: its key columns, the signed bytes, and the columns kept beside them (each is
checked against the signed action when the row is read)."""
_RECORD_COLUMNS = _ROW_COLUMNS + ", e.content"
_RECORD_FROM = "actions a LEFT JOIN entries e ON e.hash = a.entry_hash"
_CONTENT = 8  # where a record row has its entry's content
_VERIFY_PAGE = 256
_PARALLEL_FROM = 4 * _VERIFY_PAGE
_PAGES_AHEAD = 2
_SCAN_PAGE = 1024
_RECENT = 4096
_RECENT_BYTES = 4 << 20
_RECENT_LARGEST = 16 << 10
_IN_CHUNK = 500

_MEMO_SIZE = 8
_MEMO_KEY = os.urandom(16)
"""Keys the digests that remember, per record, which (action hash, signature) pair has been
checked in this process: unknown outside it, so no stored bytes can be made to match one."""

_NO_TYPE = -1
Bucket = tuple[int, int, int]
"""What a query can select a record by: (action type, entry zome index, entry index), the entry
parts -1 for actions that create no entry."""
_LINK_TYPES = (int(ActionType.CREATE_LINK), int(ActionType.DELETE_LINK))
_ENTRY_TYPES = (int(ActionType.CREATE), int(ActionType.UPDATE))


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Map sqlite3's exceptions to ours at this boundary."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


class SqliteDatabase:
    """A conductor's database: many chains, shared content-addressed entries."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._workers: SignatureWorkers | None = None
        self._depth = 0
        self._committed: list[Callable[[], None]] = []
        self._cells: dict[int, _Cell] = {}
        self._recent: OrderedDict[tuple[int, int, int], tuple[tuple[Any, ...], Record]] = (
            OrderedDict()
        )
        """The last records read, with the row each was checked from (``_Cell.record``)."""
        self._recent_bytes = 0
        self._links: _LinkIndex | None = None
        with _mapped(f"cannot open {self.path}"):
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # ------------------------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        dnas: Iterable[DnaDef] = (),
        verify: bool = True,
    ) -> SqliteDatabase:
        """Open (creating if needed), migrate, and verify every chain incrementally."""
        db = cls(path)
        for dna in dnas:
            db.register_dna(dna)
        if verify:
            try:
                db.verify_incremental()
            except BaseException:
                db.close()
                raise
        return db

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        with _mapped("close"):
            self._conn.close()

    def signature_workers(self) -> SignatureWorkers:
        """Worker processes for batch signature checks, started on first use."""
        if self._workers is None:
            self._workers = SignatureWorkers()
        return self._workers

    def __enter__(self) -> SqliteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with _mapped("schema migration"):
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}; this ioe knows {len(MIGRATIONS)}"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                statements = [s for s in script.split(";") if s.strip()]
                with self.transaction():
                    for statement in statements:
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with _mapped("schema version"):
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable transaction. Nested uses join the outermost one (so a caller can
        batch many small writes into one commit); only synchronous code may nest, never across
        an ``await``. A nested block that raises is rolled back alone (a savepoint)."""
        if self._depth:
            savepoint = f"nested_{self._depth}"
            pending = len(self._committed)
            with _mapped("transaction"):
                self._conn.execute(f"SAVEPOINT {savepoint}")
                self._depth += 1
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
                    del self._committed[pending:]
                    raise
                finally:
                    self._depth -= 1
                self._conn.execute(f"RELEASE {savepoint}")
            return
        with _mapped("transaction"):
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._committed.clear()
                raise
            finally:
                self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._committed.clear()
                raise
        done, self._committed = self._committed, []
        for then in done:
            then()

    def _remember_recent(
        self, key: tuple[int, int, int], row: tuple[Any, ...], record: Record
    ) -> None:
        old = self._recent.pop(key, None)
        if old is not None:
            self._recent_bytes -= _row_size(old[0])
        self._recent[key] = (row, record)
        self._recent_bytes += _row_size(row)
        while self._recent_bytes > _RECENT_BYTES or len(self._recent) > _RECENT:
            _, (evicted, _) = self._recent.popitem(last=False)
            self._recent_bytes -= _row_size(evicted)

    def _when_committed(self, then: Callable[[], None]) -> None:
        """Run ``then`` once the current transaction has committed (never if it rolls back)."""
        self._committed.append(then)

    # -------------------------------------------------------------------------------- registry

    def register_dna(self, dna: DnaDef) -> None:
        """Remember how to rebuild ``dna`` (name, properties, network seed) from its hash."""
        spec = encode(
            {
                "name": dna.name,
                "properties": dict(dna.properties),
                "network_seed": dna.network_seed,
            }
        )
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dnas (hash, name, spec) VALUES (?, ?, ?)",
                (dna.hash, dna.name, spec),
            )

    def dna_specs(self) -> dict[DnaHash, Value]:
        """``{hash: {"name", "properties", "network_seed"}}`` of every registered DNA."""
        with _mapped("list DNAs"):
            rows = self._conn.execute("SELECT hash, spec FROM dnas").fetchall()
        return {DnaHash(h): decode(spec) for h, spec in rows}

    def get_setting(self, key: str) -> Value | None:
        with _mapped("read setting"):
            row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return decode(row[0]) if row else None

    def put_setting(self, key: str, value: Value) -> None:
        data = encode(value)
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, data))

    def chain(self, dna_hash: DnaHash, agent: AgentPubKey) -> SqliteChainStore:
        """The store of one cell's chain (created empty if new)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO cells (dna_hash, agent) VALUES (?, ?)",
                (bytes(dna_hash), bytes(agent)),
            )
            row = conn.execute(
                "SELECT id FROM cells WHERE dna_hash = ? AND agent = ?",
                (bytes(dna_hash), bytes(agent)),
            ).fetchone()
        return SqliteChainStore(self, int(row[0]), dna_hash, agent)

    def cells(self) -> list[tuple[DnaHash, AgentPubKey]]:
        with _mapped("list cells"):
            rows = self._conn.execute("SELECT dna_hash, agent FROM cells ORDER BY id").fetchall()
        return [(DnaHash(d), AgentPubKey(a)) for d, a in rows]

    def backup_to(self, target: Path | str) -> None:
        """A consistent copy of this database at ``target`` (SQLite's online backup: the
        copy is whole even while this database is in use)."""
        with _mapped(f"back up to {target}"), closing(sqlite3.connect(target)) as copy:
            self._conn.backup(copy)

    def flip_entry_bit(self) -> EntryHash | None:
        """Flip one bit in the middle of the largest stored entry, under every check, as a
        failing disk would: ``ioe demo`` shows verification catching it. Returns the entry's
        hash (None when there is no entry)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT hash, content FROM entries ORDER BY length(content) DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            flipped = bytearray(row[1])
            flipped[len(flipped) // 2] ^= 0x01
            conn.execute("UPDATE entries SET content = ? WHERE hash = ?", (bytes(flipped), row[0]))
        return EntryHash(row[0])

    # ----------------------------------------------------------------------------- verification

    def verify_incremental(self) -> int:
        """Verify each chain from its last verified record; returns the number checked. Cheap
        checks of what is older: no record belongs to an unknown chain, and each chain's first
        record and last verified one are its agent's, signed, of its DNA."""
        self._check_no_orphans()
        checked = 0
        for dna_hash, agent in self.cells():
            checked += self.chain(dna_hash, agent).verify(incremental=True)
        return checked

    def verify_all(
        self,
        dnas: Mapping[DnaHash, DnaDef] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Verify every record of every chain from genesis (and app rules for known DNAs), every
        column kept beside the signed bytes, and that no record belongs to an unknown chain."""
        self._check_no_orphans()
        checked = 0
        for dna_hash, agent in self.cells():
            dna = (dnas or {}).get(dna_hash)
            checked += self.chain(dna_hash, agent).verify(incremental=False, dna=dna)
            if progress:
                progress(checked)
        return checked

    def _check_no_orphans(self) -> None:
        """Every stored action belongs to a known chain (a changed ``cell_id`` or cell ``id``
        would otherwise hide it). One index step per chain."""
        known = {int(row[0]) for row in self._query("SELECT id FROM cells", ())}
        (found,) = self._query("SELECT min(cell_id) FROM actions", ())[0]
        while found is not None:
            if found not in known:
                rows = self._query(
                    "SELECT seq, hash, signed FROM actions WHERE cell_id = ? ORDER BY seq LIMIT 1",
                    (found,),
                )
                raise _orphan(found, *rows[0])
            (found,) = self._query("SELECT min(cell_id) FROM actions WHERE cell_id > ?", (found,))[
                0
            ]

    # ------------------------------------------------------------------- content-addressed reads

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        with _mapped("query"):
            return self._conn.execute(sql, args).fetchall()

    def _cell(
        self, cell_id: int, dna_hash: DnaHash | None = None, agent: AgentPubKey | None = None
    ) -> _Cell:
        """What this process knows of chain ``cell_id`` (its dna and agent as the caller names
        them, else as the cells table does)."""
        cell = self._cells.get(cell_id)
        if cell is None:
            if dna_hash is None or agent is None:
                rows = self._query("SELECT dna_hash, agent FROM cells WHERE id = ?", (cell_id,))
                if not rows:
                    raise StoreError(f"no chain {cell_id} in {self.path}")
                try:
                    dna_hash, agent = DnaHash(rows[0][0]), AgentPubKey(rows[0][1])
                except EncodingError as exc:
                    raise StoreError(f"chain {cell_id} in {self.path}: {exc}") from exc
            cell = self._cells[cell_id] = _Cell(self, cell_id, dna_hash, agent)
        return cell

    def _located(self, action_hash: ActionHash, *, entry: bool) -> Record | None:
        """The record stored under ``action_hash``, checked (None when none is)."""
        columns, source = (_RECORD_COLUMNS, _RECORD_FROM) if entry else (_ROW_COLUMNS, "actions a")
        rows = self._query(
            f"SELECT a.cell_id, {columns} FROM {source} WHERE a.hash = ? LIMIT 1",
            (bytes(action_hash),),
        )
        if not rows:
            return None
        row = rows[0]
        try:
            cell = self._cell(int(row[0]))
        except StoreError:
            raise _orphan(row[0], row[1], row[2], row[3]) from None
        return cell.record(row[1:], row[1], entry=entry)

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        record = self._located(action_hash, entry=False)
        return record.signed_action if record is not None else None

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        rows = self._query("SELECT content FROM entries WHERE hash = ?", (bytes(entry_hash),))
        if not rows:
            return None
        try:
            entry = Entry.from_bytes(rows[0][0])
            if entry.hash() == entry_hash:
                return entry
            reason = "entry does not match its hash"
        except EncodingError as exc:
            reason = f"entry undecodable: {exc}"
        # Name a record that cites it (a scan, on this failing path only).
        cited = self._query(
            "SELECT cell_id, seq, hash FROM actions WHERE entry_hash = ? LIMIT 1",
            (bytes(entry_hash),),
        )
        if not cited:
            raise StoreError(f"entry {entry_hash.to_text()}: {reason}")
        cell_id, seq, action_hash = cited[0]
        raise self._cell(int(cell_id)).fail(seq, _text(action_hash), reason)

    def get_record(self, action_hash: ActionHash) -> Record | None:
        return self._located(action_hash, entry=True)

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        rows = self._query(
            "SELECT a.cell_id, a.seq FROM actions a JOIN cells c ON c.id = a.cell_id "
            "WHERE a.hash = ? AND c.agent = ? LIMIT 1",
            (bytes(chain_top), bytes(author)),
        )
        if not rows:
            return None
        cell_id, seq = rows[0]
        cell = self._cell(int(cell_id))
        activity = [r.signed_action for r in cell.range(0, seq, entries=False)]
        if len(activity) != seq + 1 or activity[-1].hash != chain_top:
            raise cell.fail(seq, _text(bytes(chain_top)), "record missing or moved")
        return activity

    def links(
        self, base: HoloHash, zome_index: int | None = None, link_type: int | None = None
    ) -> list[Link]:
        found = [
            link
            for link in self._link_index().at(base)
            if (zome_index is None or link.zome_index == zome_index)
            and (link_type is None or link.link_type == link_type)
        ]
        return sorted(found, key=lambda link: (link.timestamp, bytes(link.create_action)))

    def _link_index(self) -> _LinkIndex:
        """Live links of every chain here, derived from their signed link actions (built on first
        use, then kept up to date with each chain)."""
        cells = [
            self._cell(int(cell_id), DnaHash(dna_hash), AgentPubKey(agent))
            for cell_id, dna_hash, agent in self._query(
                "SELECT id, dna_hash, agent FROM cells ORDER BY id", ()
            )
        ]
        if self._links is None:
            index = _LinkIndex()
            for cell in cells:
                cell.current()
                for seq in cell.link_seqs(0):
                    index.add(cell.read(seq, entries=False))
            self._links = index
        for cell in cells:
            cell.current()  # records others appended since feed the index
        return self._links


class SqliteChainStore:
    """One cell's chain in a :class:`SqliteDatabase` (implements ``ChainStore``)."""

    def __init__(
        self, db: SqliteDatabase, cell_id: int, dna_hash: DnaHash, agent: AgentPubKey
    ) -> None:
        self.db = db
        self._cell_id = cell_id
        self.dna_hash = dna_hash
        self.agent = agent
        self._cell = db._cell(cell_id, dna_hash, agent)
        self.get_action = db.get_action
        self.get_entry = db.get_entry
        self.get_record = db.get_record
        self.get_agent_activity = db.get_agent_activity
        self.links = db.links

    def head(self) -> ChainHead | None:
        return self._cell.head()

    def append(self, records: Sequence[Record], expected_head: ActionHash | None) -> None:
        if not records:
            return
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT hash, seq FROM actions WHERE cell_id = ? ORDER BY seq DESC LIMIT 1",
                (self._cell_id,),
            ).fetchone()
            current = ActionHash(row[0]) if row else None
            if current != expected_head:
                raise ChainError("the chain head moved during the call; nothing was written")
            require_sequence(records, row[1] + 1 if row else 0)
            # Caught here, inside the transaction: transaction() maps any sqlite3 error that
            # leaves it to StoreError, and a constraint violation is a refused append.
            try:
                self._insert(conn, records)
            except sqlite3.IntegrityError as exc:
                raise ChainError(f"append refused by the store: {exc}") from exc
            self.db._when_committed(lambda: self._cell.appended(records))

    @property
    def _forgotten_key(self) -> str:
        return _forgotten_key(self._cell_id)

    def forgotten_entries(self) -> frozenset[ActionHash]:
        """Records of this chain whose private entry is lost (see :meth:`append_restored`)."""
        return self._cell.forgotten()

    def append_restored(self, records: Sequence[Record], expected_head: ActionHash | None) -> None:
        """Append records fetched back from the network by a recovery (already verified by the
        caller). Private entries never leave their author, so those records come back without
        them: they are remembered, in the same transaction, as *forgotten*, and verification
        accepts exactly those entries as missing."""
        lost = [r.action_hash for r in records if r.entry is None and r.is_private()]
        with self.db.transaction():
            self.append(records, expected_head)
            if lost:
                known = self.forgotten_entries() | frozenset(lost)
                self.db.put_setting(self._forgotten_key, sorted(bytes(h) for h in known))

    def _insert(self, conn: sqlite3.Connection, records: Sequence[Record]) -> None:
        conn.executemany(
            "INSERT INTO actions (cell_id, seq, hash, type, timestamp, entry_hash, "
            "entry_zome, entry_index, signed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self._action_row(r) for r in records],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO entries (hash, content) VALUES (?, ?)",
            [
                (r.action.entry_hash, r.entry.to_bytes())
                for r in records
                if r.entry is not None and r.action.entry_hash is not None
            ],
        )

    def _action_row(self, record: Record) -> tuple[Any, ...]:
        action = record.action
        return (
            self._cell_id,
            action.seq,
            record.action_hash,
            *_side_values(action),
            record.signed_action.to_bytes(),
        )

    def query(self, query: ChainQuery) -> list[Record]:
        cell, entries = self._cell, query.include_entries
        if query.action_type is None and query.entry_type is None:
            if query.limit is not None and query.limit <= 0:
                return []
            return list(cell.range(query.from_seq, query.until_seq, entries, query.limit))
        cell.current()
        want = _Selection(query)
        records = []
        for seq, row in cell.rows(cell.select(want, query), entries):
            record = cell.record(row, seq, entry=entries)
            if not want.matches(record.action):
                raise cell.fail(seq, record.action_hash.to_text(), "changed since it was indexed")
            records.append(record)
        return records

    def iter_records(self, from_seq: int = 0) -> Iterator[Record]:
        """Records in chain order, read in pages (no whole-chain load)."""
        return self._cell.range(from_seq, None, True)

    def verify(
        self, *, incremental: bool, dna: DnaDef | None = None, parallel: bool | None = None
    ) -> int:
        """Verify this chain (from genesis, or after the last verified record).

        Raises :class:`ChainIntegrityError` naming the first bad record. Returns the number of
        records checked. Records are read in pages; with ``parallel`` (the default for chains
        longer than a few pages) each page's signatures are checked by worker processes while
        this process decodes and checks everything else. Every column kept beside the signed
        bytes is checked against them. Incrementally, the first record and the last verified
        one are read (and so checked) too: a chain whose agent or DNA was changed in the cells
        table fails there.
        """
        start, after = 0, None
        if incremental:
            rows = self.db._query("SELECT verified_seq FROM cells WHERE id = ?", (self._cell_id,))
            verified_seq = int(rows[0][0])
            if verified_seq >= 0:
                self.query(ChainQuery(until_seq=0, include_entries=False))
                anchor = self.query(ChainQuery(from_seq=verified_seq, until_seq=verified_seq))
                if not anchor or anchor[0].action.seq != verified_seq:
                    raise ChainIntegrityError(
                        self.agent.to_text(), verified_seq, None, "verified record missing"
                    )
                after = anchor[0].signed_action
                start = verified_seq + 1
        if parallel is None:
            head = self.db._query(
                "SELECT max(seq) FROM actions WHERE cell_id = ?", (self._cell_id,)
            )[0][0]
            parallel = head is not None and head + 1 - start >= _PARALLEL_FROM
        host = None
        if dna is not None:
            # What the chain cites from other agents is read where the node keeps it: the
            # DNA's held and fetched ops.
            host = SourceHost(dna, SqliteDhtStore(self.db, dna.hash))
        verifier = ChainVerifier(
            dna, after=after, app_host=host, forgotten=self.forgotten_entries()
        )
        workers = self.db.signature_workers() if parallel else None
        seq = start
        with _mapped("verify chain"):
            cursor = self.db._conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} "
                "WHERE a.cell_id = ? AND a.seq >= ? ORDER BY a.seq",
                (self._cell_id, start),
            )
            # Keep the workers a page ahead: the signatures of the next page are already being
            # checked while this process checks everything else of the current one.
            queue: deque[tuple[list[Any], PendingCheck | None]] = deque()
            while True:
                while len(queue) < _PAGES_AHEAD and (rows := cursor.fetchmany(_VERIFY_PAGE)):
                    checks = [self._signature_check(row) for row in rows] if workers else None
                    queue.append((rows, workers.submit(checks) if workers and checks else None))
                if not queue:
                    break
                rows, pending = queue.popleft()
                for record in self._verify_page(rows, seq, verifier, pending):
                    self._cell.remember(record.signed_action)
                seq += len(rows)
        if verifier.count:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE cells SET verified_seq = MAX(verified_seq, ?) WHERE id = ?",
                    (seq - 1, self._cell_id),
                )
        return verifier.count

    def _signature_check(self, row: Sequence[Any]) -> SignedMessage:
        """The row's signature check, from the stored hash and the blob's last 64 bytes (both are
        compared with what decoding computes before the result is trusted)."""
        blob = row[2]
        return signed_message(self.agent, ACTION_SIGNATURE_CONTEXT, row[1], blob[-SIGNATURE_SIZE:])

    def _verify_page(
        self,
        rows: Sequence[Sequence[Any]],
        first_seq: int,
        verifier: ChainVerifier,
        pending: PendingCheck | None,
    ) -> list[Record]:
        """Check a page in order; report its first bad record, whichever check found it."""
        failure: ChainIntegrityError | None = None
        failed_at = len(rows)
        checked = []
        for index, row in enumerate(rows):
            try:
                record = self._decode_row(row, first_seq + index)
                if pending is not None and bytes(record.signed_action.signature) != row[2][-64:]:
                    raise ChainIntegrityError(
                        self.agent.to_text(), first_seq + index, None, "signature field mismatch"
                    )
                verifier.feed(record, check_signature=pending is None)
                checked.append(record)
            except ChainIntegrityError as exc:
                failure, failed_at = exc, index
                break
        bad_signature = pending.result() if pending is not None else None
        if bad_signature is not None and bad_signature < failed_at:
            seq = first_seq + bad_signature
            raise ChainIntegrityError(
                self.agent.to_text(),
                seq,
                ActionHash(rows[bad_signature][1]).to_text(),
                "signature does not verify",
            )
        if failure is not None:
            raise failure
        return checked

    def _decode_row(self, row: Sequence[Any], expected_seq: int) -> Record:
        stored_seq, stored_hash = row[0], row[1]
        try:
            signed = SignedAction.from_bytes(row[2])
            content = row[_CONTENT]
            record = Record(signed, Entry.from_bytes(content) if content is not None else None)
        except EncodingError as exc:
            raise ChainIntegrityError(
                self.agent.to_text(), stored_seq, None, f"undecodable: {exc}"
            ) from exc
        action = record.action
        if stored_seq != expected_seq or action.seq != stored_seq:
            raise ChainIntegrityError(
                self.agent.to_text(), expected_seq, None, "sequence gap or mismatch"
            )
        reason = None
        if record.action_hash != stored_hash:
            reason = _HASH_DIFFERS
        elif action.author != self.agent:
            reason = "author is not the chain's agent"
        elif isinstance(action, Dna) and action.dna_hash != self.dna_hash:
            reason = "chain belongs to another DNA than its cell's"
        elif column := _side_mismatch(action, row):
            reason = f"stored {column} differs from the signed action's"
        if reason is not None:
            raise ChainIntegrityError(
                self.agent.to_text(), stored_seq, record.action_hash.to_text(), reason
            )
        return record


class _Selection:
    """What a filtered query selects, as index buckets and as a check of a decoded action."""

    __slots__ = ("action_type", "entry_type")

    def __init__(self, query: ChainQuery) -> None:
        self.action_type = None if query.action_type is None else int(query.action_type)
        entry = query.entry_type
        self.entry_type = None if entry is None else (entry.zome_index, entry.entry_index)

    def selects(self, bucket: Bucket) -> bool:
        return (self.action_type is None or bucket[0] == self.action_type) and (
            self.entry_type is None or bucket[1:] == self.entry_type
        )

    def matches(self, action: AnyAction) -> bool:
        return self.selects(_bucket_of(action))


class _Cell:
    """What this process knows of one chain, derived from its signed bytes.

    * a memo, per record, of the (action hash, signature) pair whose signature was checked;
    * an index of which records are of which action and entry type (built on the first query
      that selects by type, by reading every record's signed bytes: each must hash to its
      stored hash and name the one before it, up to the last, whose signature is checked;
      kept up to date as records are appended);
    * the last head read, so the head is decoded again only when its row changed.
    """

    __slots__ = (
        "_buckets",
        "_head",
        "_last_hash",
        "_memo",
        "_reported",
        "agent",
        "db",
        "dna_hash",
        "id",
        "length",
    )

    def __init__(self, db: SqliteDatabase, cell_id: int, dna_hash: DnaHash, agent: AgentPubKey):
        self.db = db
        self.id = cell_id
        self.dna_hash = dna_hash
        self.agent = agent
        self.length = -1
        """Records in the type index (-1: not built yet)."""
        self._last_hash: bytes | None = None
        self._buckets: dict[Bucket, array[int]] = {}
        self._memo = bytearray()
        self._head: tuple[tuple[Any, ...], ChainHead] | None = None
        self._reported: set[tuple[int, str]] = set()

    # --------------------------------------------------------------------------- failures

    def fail(self, seq: int, action_hash: str | None, reason: str) -> ChainIntegrityError:
        """The error refusing record ``seq``, logged the first time it is met."""
        error = ChainIntegrityError(self.agent.to_text(), seq, action_hash, reason)
        if (seq, reason) not in self._reported:
            self._reported.add((seq, reason))
            log.error("refusing a stored record that does not verify: %s", error)
        return error

    # ------------------------------------------------------------------- checking one record

    def record(self, row: Sequence[Any], expected_seq: int, *, entry: bool) -> Record:
        """The record of a row (``_ROW_COLUMNS``, then the entry's content when ``entry``),
        checked against its signed bytes, or :class:`ChainIntegrityError`. A row read again
        unchanged (every column equal) gives the record its check gave."""
        seq = row[0]
        if seq != expected_seq:
            raise self.fail(expected_seq, None, "sequence gap or mismatch")
        recent = self.db._recent
        key = (self.id, seq, len(row))
        hit = recent.get(key)
        if hit is not None and hit[0] == row:
            recent.move_to_end(key)
            return hit[1]
        record = self._check(row, entry=entry)
        # Kept unless large, or a lost private entry (whose loss is looked up every time).
        if _row_size(row) <= _RECENT_LARGEST and (
            not entry or record.entry is not None or record.action.entry_hash is None
        ):
            self.db._remember_recent(key, tuple(row), record)
        return record

    def _check(self, row: Sequence[Any], *, entry: bool) -> Record:
        seq = row[0]
        try:
            signed = SignedAction.from_bytes(row[2])
        except EncodingError as exc:
            raise self.fail(seq, _text(row[1]), f"undecodable: {exc}") from exc
        action = signed.action
        reason = None
        if signed.hash != row[1]:
            reason = _HASH_DIFFERS
        elif action.seq != seq:
            reason = "sequence gap or mismatch"
        elif action.author != self.agent:
            reason = "author is not the chain's agent"
        elif isinstance(action, Dna) and action.dna_hash != self.dna_hash:
            reason = "chain belongs to another DNA than its cell's"
        elif column := _side_mismatch(action, row):
            reason = f"stored {column} differs from the signed action's"
        elif not self._signature_ok(signed):
            reason = "signature does not verify"
        if reason is not None:
            raise self.fail(seq, signed.hash.to_text(), reason)
        if not entry:
            return Record(signed)
        return Record(signed, self._entry(signed, row[_CONTENT]))

    def _entry(self, signed: SignedAction, content: bytes | None) -> Entry | None:
        action = signed.action
        entry_hash = action.entry_hash
        if entry_hash is None:
            return None
        reason = "entry is missing"
        if content is None:
            entry_type = action.entry_type
            private = entry_type is not None and entry_type.visibility is Visibility.PRIVATE
            if private and signed.hash in self.forgotten():
                return None  # lost with a recovery, known to be
        else:
            try:
                entry = Entry.from_bytes(content)
                if entry.hash() == entry_hash:
                    return entry
                reason = "entry does not match its hash"
            except EncodingError as exc:
                reason = f"entry undecodable: {exc}"
        raise self.fail(action.seq, signed.hash.to_text(), reason)

    def _signature_ok(self, signed: SignedAction) -> bool:
        seq = signed.action.seq
        digest = _memo_digest(signed)
        at = seq * _MEMO_SIZE
        if self._memo[at : at + _MEMO_SIZE] == digest:
            return True
        if not signed.signature_valid():
            return False
        self._note(seq, digest)
        return True

    def remember(self, signed: SignedAction) -> None:
        """``signed`` is known good (checked elsewhere, or written here)."""
        self._note(signed.action.seq, _memo_digest(signed))

    def _note(self, seq: int, digest: bytes) -> None:
        at = seq * _MEMO_SIZE
        if len(self._memo) < at:
            self._memo.extend(bytes(at - len(self._memo)))
        self._memo[at : at + _MEMO_SIZE] = digest

    def forgotten(self) -> frozenset[ActionHash]:
        """Records whose private entry is known lost (read when an entry is missing: rare)."""
        stored = self.db.get_setting(_forgotten_key(self.id))
        if not isinstance(stored, list):
            return frozenset()
        return frozenset(ActionHash(h) for h in stored if type(h) is bytes and len(h) == 32)

    # ------------------------------------------------------------------------------ reading

    def head(self) -> ChainHead | None:
        rows = self.db._query(
            f"SELECT {_ROW_COLUMNS} FROM actions a WHERE a.cell_id = ? ORDER BY a.seq DESC LIMIT 1",
            (self.id,),
        )
        if not rows:
            if self.length > 0:
                raise self.fail(self.length - 1, None, "record missing (the chain lost its head)")
            return None
        row = tuple(rows[0])
        if self.length > 0 and row[0] < self.length - 1:
            raise self.fail(self.length - 1, None, "record missing (the chain lost its head)")
        if self._head is not None and self._head[0] == row:
            return self._head[1]
        action = self.record(row, row[0], entry=False).action
        head = ChainHead(action.seq, ActionHash(row[1]), action.timestamp)
        self._head = (row, head)
        return head

    def read(self, seq: int, *, entries: bool) -> Record:
        for found, row in self.rows([seq], entries):
            return self.record(row, found, entry=entries)
        raise AssertionError("rows() yields every sequence number asked")  # pragma: no cover

    def range(
        self, first: int, last: int | None, entries: bool, limit: int | None = None
    ) -> Iterator[Record]:
        """Records ``first`` to ``last`` (or the head) in order: each checked, without gaps,
        each naming the one before it."""
        columns, source = (
            (_RECORD_COLUMNS, _RECORD_FROM) if entries else (_ROW_COLUMNS, "actions a")
        )
        sql = f"SELECT {columns} FROM {source} WHERE a.cell_id = ? AND a.seq >= ?"
        args: list[Any] = [self.id, max(first, 0)]
        if last is not None:
            sql += " AND a.seq <= ?"
            args.append(last)
        sql += " ORDER BY a.seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self._ranged(sql, args, max(first, 0), last, entries=entries, limit=limit)

    def _ranged(
        self,
        sql: str,
        args: Sequence[Any],
        first: int,
        last: int | None,
        *,
        entries: bool,
        limit: int | None,
    ) -> Iterator[Record]:
        expected, prev = first, None
        with _mapped("read chain"):
            cursor = self.db._conn.execute(sql, args)
            while rows := cursor.fetchmany(512):
                for row in rows:
                    record = self.record(row, expected, entry=entries)
                    if prev is not None and record.action.prev != prev:
                        raise self.fail(
                            expected,
                            record.action_hash.to_text(),
                            "previous-action hash does not match the record before it",
                        )
                    prev = record.action_hash
                    expected += 1
                    yield record
        if (
            self.length > expected
            and (last is None or last >= expected)
            and limit != (expected - first)
        ):
            raise self.fail(expected, None, "record missing (the chain is shorter than it was)")

    def rows(self, seqs: Sequence[int], entries: bool) -> Iterator[tuple[int, Sequence[Any]]]:
        """(seq, row) for each of ``seqs`` (ascending), or a failure naming the first missing."""
        if not seqs:
            return
        columns, source = (
            (_RECORD_COLUMNS, _RECORD_FROM) if entries else (_ROW_COLUMNS, "actions a")
        )
        select = f"SELECT {columns} FROM {source} WHERE a.cell_id = ? AND "
        low, high = seqs[0], seqs[-1]
        stream: Iterable[Sequence[Any]]
        if 3 * len(seqs) >= high - low + 1:  # dense: one range read
            stream = self.db._query(
                select + "a.seq >= ? AND a.seq <= ? ORDER BY a.seq", (self.id, low, high)
            )
        else:
            stream = chain.from_iterable(
                self.db._query(
                    select + f"a.seq IN ({','.join('?' * len(chunk))}) ORDER BY a.seq",
                    (self.id, *chunk),
                )
                for chunk in (seqs[at : at + _IN_CHUNK] for at in range(0, len(seqs), _IN_CHUNK))
            )
        rows = iter(stream)
        row = next(rows, None)
        for seq in seqs:
            while row is not None and row[0] < seq:  # not selected
                row = next(rows, None)
            if row is None or row[0] != seq:
                raise self.fail(seq, None, "record missing")
            yield seq, row
            row = next(rows, None)

    # ------------------------------------------------------------------------ the type index

    def current(self) -> None:
        """Build the type index, or extend it with what was appended by someone else."""
        top = self.db._query("SELECT max(seq) FROM actions WHERE cell_id = ?", (self.id,))[0][0]
        top = -1 if top is None else top
        self.length = max(self.length, 0)
        if top < self.length - 1:
            raise self.fail(
                self.length - 1, None, "record missing (the chain is shorter than it was)"
            )
        if top >= self.length:
            self._scan(self.length)

    def _scan(self, start: int) -> None:
        """Index records ``start`` onwards from their signed bytes (see the class)."""
        buckets: dict[Bucket, list[int]] = {}
        prev = self._last_hash if start else None
        expected = start
        agent, dna = bytes(self.agent), bytes(self.dna_hash)
        with _mapped("index chain"):
            cursor = self.db._conn.execute(
                "SELECT seq, hash, signed FROM actions WHERE cell_id = ? AND seq >= ? ORDER BY seq",
                (self.id, start),
            )
            while rows := cursor.fetchmany(_SCAN_PAGE):
                for seq, stored_hash, blob in rows:
                    if seq != expected:
                        raise self.fail(expected, None, "sequence gap or mismatch")
                    try:
                        if blake2b_256(blob[1:-66]) != stored_hash:
                            raise self.fail(seq, _text(stored_hash), _HASH_DIFFERS)
                        bucket, action_seq, action_prev, author, dna_hash = _scan_action(blob)
                    except (IndexError, KeyError, TypeError, ValueError):
                        raise self.fail(seq, _text(stored_hash), _undecodable(blob)) from None
                    if (
                        action_seq != seq
                        or action_prev != prev
                        or author != agent
                        or (dna_hash is not None and dna_hash != dna)
                    ):
                        raise self.fail(
                            seq, _text(stored_hash), _scan_mismatch(seq, prev, agent, blob)
                        )
                    if bucket in buckets:
                        buckets[bucket].append(seq)
                    else:
                        buckets[bucket] = [seq]
                    prev = stored_hash
                    expected += 1
        if expected == start:
            return
        # The last one's signature covers, through the hash links, every one before it.
        last = self.read(expected - 1, entries=False)
        if last.action_hash != prev:
            raise self.fail(expected - 1, last.action_hash.to_text(), "changed while indexed")
        for bucket, seqs in buckets.items():
            self._buckets.setdefault(bucket, array("q")).extend(seqs)
        self.length, self._last_hash = expected, prev
        if self.db._links is not None:
            for seq in self.link_seqs(start):
                self.db._links.add(self.read(seq, entries=False))

    def appended(self, records: Sequence[Record]) -> None:
        """Records this process has just written (and so knows good)."""
        for record in records:
            self.remember(record.signed_action)
        if self.length == records[0].action.seq:
            for record in records:
                self._buckets.setdefault(_bucket_of(record.action), array("q")).append(
                    record.action.seq
                )
            self.length += len(records)
            self._last_hash = bytes(records[-1].action_hash)
        if self.db._links is not None:
            for record in records:
                self.db._links.add(record)

    def select(self, want: _Selection, query: ChainQuery) -> list[int]:
        """The sequence numbers a filtered query selects, in order."""
        low = max(query.from_seq, 0)
        high = self.length - 1 if query.until_seq is None else min(query.until_seq, self.length - 1)
        if low > high:
            return []
        parts = [
            seqs[bisect_left(seqs, low) : bisect_right(seqs, high)]
            for bucket, seqs in self._buckets.items()
            if want.selects(bucket)
        ]
        selected = parts[0].tolist() if len(parts) == 1 else sorted(chain.from_iterable(parts))
        return selected if query.limit is None else selected[: max(query.limit, 0)]

    def link_seqs(self, start: int) -> list[int]:
        return sorted(
            seq
            for bucket, seqs in self._buckets.items()
            if bucket[0] in _LINK_TYPES
            for seq in seqs[bisect_left(seqs, start) :]
        )


class _LinkIndex:
    """Live links by base, from the link actions of every chain here."""

    __slots__ = ("_base_of", "_by_base", "_deleted")

    def __init__(self) -> None:
        self._by_base: dict[bytes, dict[ActionHash, Link]] = {}
        self._base_of: dict[ActionHash, bytes] = {}
        self._deleted: set[ActionHash] = set()

    def add(self, record: Record) -> None:
        action = record.action
        if isinstance(action, CreateLink):
            if record.action_hash in self._deleted:
                return
            base = to_typed_bytes(action.base)
            self._base_of[record.action_hash] = base
            self._by_base.setdefault(base, {})[record.action_hash] = Link(
                record.action_hash,
                action.author,
                action.timestamp,
                action.base,
                action.target,
                action.zome_index,
                action.link_type,
                action.tag,
            )
        elif isinstance(action, DeleteLink):
            self._deleted.add(action.link_add)
            where = self._base_of.pop(action.link_add, None)
            if where is not None:
                self._by_base[where].pop(action.link_add, None)

    def at(self, base: HoloHash) -> list[Link]:
        return list(self._by_base.get(to_typed_bytes(base), {}).values())


# ---------------------------------------------------------------------------------- helpers


def _orphan(cell_id: Any, seq: Any, action_hash: Any, blob: Any) -> ChainIntegrityError:
    """The error naming a record stored under a chain that does not exist."""
    try:
        author = SignedAction.from_bytes(blob).action.author.to_text()
    except (EncodingError, TypeError):
        author = "an unknown agent"
    return ChainIntegrityError(
        author, seq, _text(action_hash), f"stored under chain {cell_id}, which does not exist"
    )


def _row_size(row: Sequence[Any]) -> int:
    """The bytes a record's row holds: signed action, and entry when read with it."""
    content = row[_CONTENT] if len(row) > _CONTENT else None
    return len(row[2]) + (len(content) if content is not None else 0)


def _forgotten_key(cell_id: int) -> str:
    return f"forgotten_entries:{cell_id}"


def _text(action_hash: Any) -> str | None:
    try:
        return ActionHash(action_hash).to_text()
    except (EncodingError, TypeError):
        return None


def _memo_digest(signed: SignedAction) -> bytes:
    return hashlib.blake2b(
        signed.hash + signed.signature, digest_size=_MEMO_SIZE, key=_MEMO_KEY
    ).digest()


def _bucket_of(action: AnyAction) -> Bucket:
    entry_type = action.entry_type
    if entry_type is None:
        return (int(action.TYPE), _NO_TYPE, _NO_TYPE)
    return (int(action.TYPE), entry_type.zome_index, entry_type.entry_index)


def _side_values(action: AnyAction) -> tuple[Any, ...]:
    """The columns kept beside an action's signed bytes: type, timestamp, entry hash, entry
    zome and entry index."""
    entry_type = action.entry_type
    return (
        int(action.TYPE),
        action.timestamp,
        action.entry_hash,
        entry_type.zome_index if entry_type else None,
        entry_type.entry_index if entry_type else None,
    )


def _side_mismatch(action: AnyAction, row: Sequence[Any]) -> str | None:
    """The first column kept beside ``action`` in ``row`` that differs from it, if any."""
    entry_type = action.entry_type
    if row[3] != action.TYPE:
        return "type"
    if row[4] != action.timestamp:
        return "timestamp"
    if row[5] != action.entry_hash:
        return "entry_hash"
    if entry_type is None:
        if row[6] is not None:
            return "entry_zome"
        if row[7] is not None:
            return "entry_index"
        return None
    if row[6] != entry_type.zome_index:
        return "entry_zome"
    if row[7] != entry_type.entry_index:
        return "entry_index"
    return None


_HASH_DIFFERS = "stored hash differs from the signed action's"


def _undecodable(blob: Any) -> str:
    """Why bytes that do not scan are refused: the full decoder says."""
    try:
        SignedAction.from_bytes(blob)
    except (EncodingError, TypeError) as exc:
        return f"undecodable: {exc}"
    return "undecodable"


def _scan_mismatch(seq: int, prev: bytes | None, agent: bytes, blob: bytes) -> str:
    """Why a record that hashes right does not belong where it is stored."""
    _, action_seq, action_prev, author, _ = _scan_action(blob)
    if action_seq != seq:
        return "sequence gap or mismatch"
    if action_prev != prev:
        return "previous-action hash does not match the record before it"
    if author != agent:
        return "author is not the chain's agent"
    return "chain belongs to another DNA than its cell's"


_UINT_SIZE = {24: 1, 25: 2, 26: 4, 27: 8}
_HASH_HEAD = b"\x58\x20"
_SIGNATURE_HEAD = b"\x58\x40"
_ENTRY_TYPE_HEAD = 0x83
_NULL = 0xF6
_DNA = int(ActionType.DNA)
_LAST_TYPE = int(ActionType.DELETE_LINK)


def _uint(blob: bytes, at: int) -> tuple[int, int]:
    """A canonical CBOR unsigned integer at ``at``: (value, where the next item starts)."""
    head = blob[at]
    if head < 24:
        return head, at + 1
    end = at + 1 + _UINT_SIZE[head]
    return int.from_bytes(blob[at + 1 : end], "big"), end


def _scan_action(blob: bytes) -> tuple[Bucket, int, bytes | None, bytes, bytes | None]:
    """(bucket, seq, prev, author, dna hash of a Dna action) read straight from signed-action
    bytes as this store writes them (``docs/encoding.md``), without decoding the rest. Only
    trusted once the bytes hash to the stored hash and the hash links hold up to a checked
    signature; raises IndexError, KeyError or ValueError on bytes laid out otherwise."""
    kind = blob[2]
    if (
        blob[0] != 0x82
        or not 0x85 <= blob[1] <= 0x8A
        or kind > _LAST_TYPE
        or blob[3:5] != _HASH_HEAD
        or blob[-66:-64] != _SIGNATURE_HEAD
    ):
        raise ValueError("not a signed action")
    head = blob[37]  # the timestamp, skipped
    at = 38 if head < 24 else 38 + _UINT_SIZE[head]
    seq, at = _uint(blob, at)
    prev = None
    if blob[at] == _NULL:
        at += 1
    elif blob[at : at + 2] == _HASH_HEAD:
        prev, at = blob[at + 2 : at + 34], at + 34
    else:
        raise ValueError("prev")
    if kind in _ENTRY_TYPES:
        if blob[at] != _ENTRY_TYPE_HEAD:
            raise ValueError("entry type")
        zome, at = _uint(blob, at + 1)
        index, _ = _uint(blob, at)
        return (kind, zome, index), seq, prev, blob[5:37], None
    if kind == _DNA:
        if blob[at : at + 2] != _HASH_HEAD:
            raise ValueError("dna hash")
        return (kind, _NO_TYPE, _NO_TYPE), seq, prev, blob[5:37], blob[at + 2 : at + 34]
    return (kind, _NO_TYPE, _NO_TYPE), seq, prev, blob[5:37], None
