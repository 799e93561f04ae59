"""The conductor: a data directory's database, keys and cells, wired together.

A data directory holds ``ioe.sqlite`` (every chain, plus the conductor's settings) and
``keystore.json`` (the owner's root seed, encrypted). Agent keys are never stored: they are
derived from the root seed on open (``docs/keys.md``). This module does the I/O the engine must
not do: it reads the clock and passes the time in.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ioe.crypto.derivation import OWNER_DEVICE_INDEX, OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, read_keystore, write_keystore
from ioe.device_account import DEVICE_SEED_SECRET, DeviceAccount
from ioe.dnas import build_dna, core_dna
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.errors import IoEError, KeystoreError
from ioe.hashing import AgentPubKey, DnaHash
from ioe.store.sqlite import SqliteDatabase

DB_FILE = "ioe.sqlite"
KEYSTORE_FILE = "keystore.json"
ROOT_SEED_SECRET = "root_seed"

Clock = Callable[[], int]


def system_clock_us() -> int:
    return time.time_ns() // 1000


def default_data_dir() -> Path:
    """``$IOE_HOME``, else the platform's per-user data directory."""
    if home := os.environ.get("IOE_HOME"):
        return Path(home)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "ioe"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "ioe"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "ioe"


class AlreadyInitialised(IoEError):
    """The data directory already holds an owner account."""


class NotInitialised(IoEError):
    """The data directory holds no owner account."""


@dataclass(frozen=True, slots=True)
class CellSlot:
    """Where a cell's key comes from: device seed ``device`` of the owner, agent key ``agent``."""

    dna_hash: DnaHash
    device: int
    agent: int

    def to_value(self) -> dict[str, object]:
        return {"dna": bytes(self.dna_hash), "device": self.device, "agent": self.agent}


class Conductor:
    """Runs the cells of one owner's data directory."""

    def __init__(
        self,
        data_dir: Path,
        db: SqliteDatabase,
        account: OwnerAccount | DeviceAccount,
        clock: Clock,
    ) -> None:
        self.data_dir = data_dir
        self.db = db
        self.account = account
        self.clock = clock
        self._cells: dict[tuple[DnaHash, int, int], Cell] = {}
        for dna_hash, dna in known_dnas(db).items():
            for slot in self._slots():
                if slot.dna_hash == dna_hash and self._derivable(slot):
                    self._cells[(dna_hash, slot.device, slot.agent)] = self._make_cell(dna, slot)

    # --------------------------------------------------------------------------- construction

    @classmethod
    def init(
        cls, data_dir: Path, unlock: Unlock, *, clock: Clock = system_clock_us
    ) -> tuple[Conductor, str]:
        """Create an owner account in ``data_dir``. Returns the conductor and the mnemonic,
        which is shown once and never stored in clear."""
        account = OwnerAccount.generate()
        conductor = cls._create(data_dir, account, unlock, clock)
        return conductor, account.mnemonic()

    @classmethod
    def recover(
        cls, data_dir: Path, mnemonic: str, unlock: Unlock, *, clock: Clock = system_clock_us
    ) -> Conductor:
        """Restore the owner account from its mnemonic (into a new or keystore-less directory)."""
        account = OwnerAccount.from_mnemonic(mnemonic)
        return cls._create(data_dir, account, unlock, clock)

    @classmethod
    def _create(
        cls, data_dir: Path, account: OwnerAccount, unlock: Unlock, clock: Clock
    ) -> Conductor:
        keystore = data_dir / KEYSTORE_FILE
        if keystore.exists():
            raise AlreadyInitialised(f"{data_dir} already holds an owner account ({keystore})")
        data_dir.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase.open(data_dir / DB_FILE)
        try:
            owner = db.get_setting("owner")
            if owner is not None and owner != bytes(account.agent_key().agent):
                raise AlreadyInitialised(f"{data_dir} belongs to another owner")
            write_keystore(
                keystore, {ROOT_SEED_SECRET: account.root_seed()}, unlock, overwrite=False
            )
            db.put_setting("owner", bytes(account.agent_key().agent))
            conductor = cls(data_dir, db, account, clock)
            conductor.install_cell(core_dna(), device=OWNER_DEVICE_INDEX, agent=0)
        except BaseException:
            db.close()
            raise
        return conductor

    @classmethod
    def open(cls, data_dir: Path, unlock: Unlock, *, clock: Clock = system_clock_us) -> Conductor:
        """Open an initialised data directory (verifies chains written since the last open)."""
        keystore = data_dir / KEYSTORE_FILE
        if not keystore.exists():
            raise NotInitialised(f"{data_dir} has no owner account; run `ioe init` first")
        secrets = read_keystore(keystore, unlock)
        if DEVICE_SEED_SECRET in secrets:
            return cls._open_device(data_dir, DeviceAccount.from_secrets(secrets), clock)
        if ROOT_SEED_SECRET not in secrets:
            raise KeystoreError(f"{keystore} holds no root seed")
        account = OwnerAccount.from_root_seed(secrets[ROOT_SEED_SECRET])
        db = SqliteDatabase.open(data_dir / DB_FILE)
        return cls(data_dir, db, account, clock)

    @classmethod
    def adopt_device(
        cls,
        data_dir: Path,
        unlock: Unlock,
        account: DeviceAccount,
        *,
        clock: Clock = system_clock_us,
    ) -> Conductor:
        """Turn ``data_dir`` into an enrolled device's: its keystore now holds ``account`` (the
        provisional identity is dropped) and the device's agent joins the core DNA with its
        certificate as membrane proof. Safe to repeat after a crash at any point."""
        write_keystore(data_dir / KEYSTORE_FILE, account.to_secrets(), unlock, overwrite=True)
        return cls._open_device(data_dir, account, clock)

    @classmethod
    def _open_device(cls, data_dir: Path, account: DeviceAccount, clock: Clock) -> Conductor:
        db = SqliteDatabase.open(data_dir / DB_FILE)
        try:
            db.put_setting("owner", bytes(account.owner))
            conductor = cls(data_dir, db, account, clock)
            proof = account.certificate.to_bytes()
            conductor.install_cell(core_dna(), device=account.index, agent=0, membrane_proof=proof)
        except BaseException:
            db.close()
            raise
        return conductor

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Conductor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- cells

    def _slots(self) -> list[CellSlot]:
        stored = self.db.get_setting("cells") or []
        slots = [CellSlot(DnaHash(s["dna"]), s["device"], s["agent"]) for s in stored]
        return [slot for slot in slots if self._derivable(slot)]

    def _derivable(self, slot: CellSlot) -> bool:
        """An enrolled device holds only its own device seed: the cells of the provisional
        identity it had before enrollment are left in the database but no longer run."""
        return not isinstance(self.account, DeviceAccount) or slot.device == self.account.index

    @property
    def home_device(self) -> int:
        """The device index of this data directory's own agent (0 for an owner's console)."""
        if isinstance(self.account, DeviceAccount):
            return self.account.index
        return OWNER_DEVICE_INDEX

    @property
    def owner_agent(self) -> AgentPubKey:
        """The owner agent: this account's own for an owner, the certificate's for a device."""
        if isinstance(self.account, DeviceAccount):
            return self.account.owner
        return self.account.agent_key().agent

    def key_for(self, device: int, agent: int) -> KeyPair:
        return device_agent_key(self.account.device_seed(device), agent)

    def _make_cell(self, dna: DnaDef, slot: CellSlot) -> Cell:
        keys = self.key_for(slot.device, slot.agent)
        return Cell(dna, keys, self.db.chain(dna.hash, keys.agent))

    def install_cell(
        self, dna: DnaDef, *, device: int, agent: int = 0, membrane_proof: bytes | None = None
    ) -> Cell:
        """Create (or return) the cell of ``dna`` for device ``device``'s agent key ``agent``,
        writing its genesis records."""
        key = (dna.hash, device, agent)
        if key not in self._cells:
            self.db.register_dna(dna)
            slot = CellSlot(dna.hash, device, agent)
            self._cells[key] = self._make_cell(dna, slot)
            self.db.put_setting("cells", [s.to_value() for s in [*self._slots(), slot]])
        cell = self._cells[key]
        cell.genesis(membrane_proof, now_us=self.clock())
        return cell

    def cells(self) -> list[Cell]:
        return list(self._cells.values())

    @property
    def owner_cell(self) -> Cell:
        return self._cells[(core_dna().hash, self.home_device, 0)]

    def call(self, cell: Cell, zome: str, function: str, payload: object = None) -> object:
        """A zome call at the conductor's current time."""
        return cell.call(zome, function, payload, now_us=self.clock())


def known_dnas(db: SqliteDatabase) -> dict[DnaHash, DnaDef]:
    """The DNAs of ``db`` this build can rebuild (and so app-validate)."""
    found = {}
    for dna_hash, spec in db.dna_specs().items():
        dna = build_dna(spec)
        if dna is not None and dna.hash == dna_hash:
            found[dna_hash] = dna
    return found


@contextmanager
def open_database(data_dir: Path, *, verify: bool) -> Iterator[SqliteDatabase]:
    """The data directory's database alone (no keys needed): for verification and inspection."""
    path = data_dir / DB_FILE
    if not path.exists():
        raise NotInitialised(f"{data_dir} has no database ({path})")
    db = SqliteDatabase.open(path, verify=verify)
    try:
        yield db
    finally:
        db.close()
