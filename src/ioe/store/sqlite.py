"""SQLite storage: one database per conductor, WAL, ``synchronous=FULL`` for chain writes.

Each append is one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a zome call's records land all
together or not at all, and a commit that has returned survives a crash or power loss. Opening a
database applies pending schema migrations and verifies every chain from its last verified record
onwards (hash links, signatures, sequence, entry hashes), so corruption is found before use.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ioe.crypto.batch import PendingCheck, SignatureWorkers, SignedMessage, signed_message
from ioe.crypto.keys import SIGNATURE_SIZE
from ioe.encoding import Value, decode, encode
from ioe.engine.dna import DnaDef
from ioe.engine.ports import ChainHead, ChainQuery, Link, require_sequence
from ioe.engine.records import (
    ACTION_SIGNATURE_CONTEXT,
    CreateLink,
    DeleteLink,
    Entry,
    Record,
    SignedAction,
)
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.errors import ChainError, ChainIntegrityError, EncodingError, StoreError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DnaHash,
    EntryHash,
    HoloHash,
    from_typed_bytes,
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
)

_RECORD_COLUMNS = "a.seq, a.hash, a.signed, e.content"
_RECORD_FROM = "actions a LEFT JOIN entries e ON e.hash = a.entry_hash"
_VERIFY_PAGE = 256
_PARALLEL_FROM = 4 * _VERIFY_PAGE
_PAGES_AHEAD = 2


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
            with _mapped("transaction"):
                self._conn.execute(f"SAVEPOINT {savepoint}")
                self._depth += 1
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
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
                raise
            finally:
                self._depth = 0
            self._conn.execute("COMMIT")

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
        """Verify each chain from its last verified record; returns the number checked."""
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
        """Verify every record of every chain from genesis (and app rules for known DNAs)."""
        checked = 0
        for dna_hash, agent in self.cells():
            dna = (dnas or {}).get(dna_hash)
            checked += self.chain(dna_hash, agent).verify(incremental=False, dna=dna)
            if progress:
                progress(checked)
        return checked

    # ------------------------------------------------------------------- content-addressed reads

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        with _mapped("query"):
            return self._conn.execute(sql, args).fetchall()

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        rows = self._query("SELECT signed FROM actions WHERE hash = ? LIMIT 1", (action_hash,))
        return SignedAction.from_bytes(rows[0][0]) if rows else None

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        rows = self._query("SELECT content FROM entries WHERE hash = ?", (entry_hash,))
        return Entry.from_bytes(rows[0][0]) if rows else None

    def get_record(self, action_hash: ActionHash) -> Record | None:
        rows = self._query(
            f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} WHERE a.hash = ? LIMIT 1",
            (action_hash,),
        )
        return _record(rows[0]) if rows else None

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        rows = self._query(
            "SELECT a.cell_id, a.seq FROM actions a JOIN cells c ON c.id = a.cell_id "
            "WHERE a.hash = ? AND c.agent = ? LIMIT 1",
            (chain_top, bytes(author)),
        )
        if not rows:
            return None
        cell_id, seq = rows[0]
        signed = self._query(
            "SELECT signed FROM actions WHERE cell_id = ? AND seq <= ? ORDER BY seq",
            (cell_id, seq),
        )
        return [SignedAction.from_bytes(row[0]) for row in signed]

    def links(
        self, base: HoloHash, zome_index: int | None = None, link_type: int | None = None
    ) -> list[Link]:
        sql = (
            "SELECT create_hash, author, timestamp, target, zome, type, tag FROM links "
            "WHERE base = ? AND deleted_by IS NULL"
        )
        args: list[Any] = [to_typed_bytes(base)]
        if zome_index is not None:
            sql += " AND zome = ?"
            args.append(zome_index)
        if link_type is not None:
            sql += " AND type = ?"
            args.append(link_type)
        rows = self._query(sql + " ORDER BY timestamp, create_hash", args)
        return [
            Link(
                ActionHash(create),
                AgentPubKey(author),
                timestamp,
                base,
                from_typed_bytes(target),
                zome,
                kind,
                tag,
            )
            for create, author, timestamp, target, zome, kind, tag in rows
        ]


class SqliteChainStore:
    """One cell's chain in a :class:`SqliteDatabase` (implements ``ChainStore``)."""

    def __init__(
        self, db: SqliteDatabase, cell_id: int, dna_hash: DnaHash, agent: AgentPubKey
    ) -> None:
        self.db = db
        self._cell_id = cell_id
        self.dna_hash = dna_hash
        self.agent = agent
        self.get_action = db.get_action
        self.get_entry = db.get_entry
        self.get_record = db.get_record
        self.get_agent_activity = db.get_agent_activity
        self.links = db.links

    def head(self) -> ChainHead | None:
        rows = self.db._query(
            "SELECT seq, hash, timestamp FROM actions WHERE cell_id = ? ORDER BY seq DESC LIMIT 1",
            (self._cell_id,),
        )
        if not rows:
            return None
        seq, action_hash, timestamp = rows[0]
        return ChainHead(seq, ActionHash(action_hash), timestamp)

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

    @property
    def _forgotten_key(self) -> str:
        return f"forgotten_entries:{self._cell_id}"

    def forgotten_entries(self) -> frozenset[ActionHash]:
        """Records of this chain whose private entry is lost (see :meth:`append_restored`)."""
        stored = self.db.get_setting(self._forgotten_key)
        return (
            frozenset(ActionHash(h) for h in stored if type(h) is bytes) if stored else frozenset()
        )

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
        for record in records:
            action = record.action
            if isinstance(action, CreateLink):
                conn.execute(
                    "INSERT INTO links (create_hash, author, timestamp, base, target, "
                    "zome, type, tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.action_hash,
                        action.author,
                        action.timestamp,
                        to_typed_bytes(action.base),
                        to_typed_bytes(action.target),
                        action.zome_index,
                        action.link_type,
                        action.tag,
                    ),
                )
            elif isinstance(action, DeleteLink):
                conn.execute(
                    "UPDATE links SET deleted_by = ? WHERE create_hash = ?",
                    (record.action_hash, action.link_add),
                )

    def _action_row(self, record: Record) -> tuple[Any, ...]:
        action = record.action
        entry_type = action.entry_type
        return (
            self._cell_id,
            action.seq,
            record.action_hash,
            int(action.TYPE),
            action.timestamp,
            action.entry_hash,
            entry_type.zome_index if entry_type else None,
            entry_type.entry_index if entry_type else None,
            record.signed_action.to_bytes(),
        )

    def query(self, query: ChainQuery) -> list[Record]:
        sql = f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} WHERE a.cell_id = ? AND a.seq >= ?"
        args: list[Any] = [self._cell_id, query.from_seq]
        if query.until_seq is not None:
            sql += " AND a.seq <= ?"
            args.append(query.until_seq)
        if query.action_type is not None:
            sql += " AND a.type = ?"
            args.append(int(query.action_type))
        if query.entry_type is not None:
            sql += " AND a.entry_zome = ? AND a.entry_index = ?"
            args += [query.entry_type.zome_index, query.entry_type.entry_index]
        sql += " ORDER BY a.seq"
        if query.limit is not None:
            sql += " LIMIT ?"
            args.append(query.limit)
        records = [_record(row) for row in self.db._query(sql, args)]
        if not query.include_entries:
            records = [Record(r.signed_action) for r in records]
        return records

    def iter_records(self, from_seq: int = 0) -> Iterator[Record]:
        """Records in chain order, read in pages (no whole-chain load)."""
        with _mapped("read chain"):
            cursor = self.db._conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} "
                "WHERE a.cell_id = ? AND a.seq >= ? ORDER BY a.seq",
                (self._cell_id, from_seq),
            )
            while rows := cursor.fetchmany(512):
                for row in rows:
                    yield _record(row)

    def verify(
        self, *, incremental: bool, dna: DnaDef | None = None, parallel: bool | None = None
    ) -> int:
        """Verify this chain (from genesis, or after the last verified record).

        Raises :class:`ChainIntegrityError` naming the first bad record. Returns the number of
        records checked. Records are read in pages; with ``parallel`` (the default for chains
        longer than a few pages) each page's signatures are checked by worker processes while
        this process decodes and checks everything else.
        """
        start, after = 0, None
        if incremental:
            rows = self.db._query("SELECT verified_seq FROM cells WHERE id = ?", (self._cell_id,))
            verified_seq = int(rows[0][0])
            if verified_seq >= 0:
                anchor = self.query(ChainQuery(from_seq=verified_seq, until_seq=verified_seq))
                if not anchor or anchor[0].action.seq != verified_seq:
                    raise ChainIntegrityError(
                        self.agent.to_text(), verified_seq, None, "verified record missing"
                    )
                after = anchor[0].signed_action
                start = verified_seq + 1
        if parallel is None:
            head = self.head()
            parallel = head is not None and head.seq + 1 - start >= _PARALLEL_FROM
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
                self._verify_page(rows, seq, verifier, pending)
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
    ) -> None:
        """Check a page in order; report its first bad record, whichever check found it."""
        failure: ChainIntegrityError | None = None
        failed_at = len(rows)
        for index, row in enumerate(rows):
            try:
                record = self._decode_row(row, first_seq + index)
                if pending is not None and bytes(record.signed_action.signature) != row[2][-64:]:
                    raise ChainIntegrityError(
                        self.agent.to_text(), first_seq + index, None, "signature field mismatch"
                    )
                verifier.feed(record, check_signature=pending is None)
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

    def _decode_row(self, row: Sequence[Any], expected_seq: int) -> Record:
        stored_seq, stored_hash = row[0], row[1]
        try:
            record = _record(row)
        except EncodingError as exc:
            raise ChainIntegrityError(
                self.agent.to_text(), stored_seq, None, f"undecodable: {exc}"
            ) from exc
        if stored_seq != expected_seq or record.action.seq != stored_seq:
            raise ChainIntegrityError(
                self.agent.to_text(), expected_seq, None, "sequence gap or mismatch"
            )
        if record.action_hash != stored_hash or record.action.author != self.agent:
            raise ChainIntegrityError(
                self.agent.to_text(),
                stored_seq,
                record.action_hash.to_text(),
                "stored hash or author differs",
            )
        return record


def _record(row: Sequence[Any]) -> Record:
    signed = SignedAction.from_bytes(row[2])
    content = row[3]
    return Record(signed, Entry.from_bytes(content) if content is not None else None)
