"""The conductor: a data directory's database, keys and cells, wired together.

A data directory holds ``ioe.sqlite`` (every chain, plus the conductor's settings) and
``keystore.json`` (the owner's root seed, encrypted). Agent keys are never stored: they are
derived from the root seed on open (``docs/keys.md``). This module does the I/O the engine must
not do: it reads the clock and passes the time in.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ioe.crypto.derivation import (
    APP_AGENT_BASE,
    OWNER_DEVICE_INDEX,
    OwnerAccount,
    device_agent_key,
)
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, read_keystore, write_keystore
from ioe.dnas import build_dna, core_network, network_spec
from ioe.encoding import Value
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.engine.ports import ChainQuery
from ioe.engine.records import ActionType, AgentValidationPkg
from ioe.errors import IoEError, KeystoreError
from ioe.hashing import AgentPubKey, DnaHash
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.device_account import DEVICE_SEED_SECRET, DeviceAccount
from ioe.identity.membership import OwnerMembership, owner_membership
from ioe.store.sqlite import SqliteDatabase

DB_FILE = "ioe.sqlite"
KEYSTORE_FILE = "keystore.json"
ROOT_SEED_SECRET = "root_seed"
NETWORK_SETTING = "core_network"
"""The network this directory's agent belongs to (``ioe.dnas.network_spec``; absent: the
default network). Set by ``ioe init --network``, ``ioe network use``, or, on a device, by the
owner that enrolls it."""
PROVISIONAL_SETTING = "provisional_device"
"""Set on a device's data directory made with a provisional identity (``ioe device plug-in`` or
``ioe device run`` on a new directory) until it is enrolled, or until its user runs it as its own
owner (``ioe device run --standalone``): such a device runs unenrolled, under the factory-default
policy, and joins no network."""
PROVISIONAL_AGENTS_SETTING = "provisional_agents"
"""The agent keys of a device's provisional identity (their chains stay in the database after
enrollment, never published): ``ioe chain show`` says so."""
RESTORE_SETTING = "chain_restore_pending"
"""Set by ``ioe recover`` until the owner's chains are fetched back from the network
(``ioe.identity.service.recovery``): no genesis is written meanwhile, or the old chain would be
forked."""

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


def make_private(data_dir: Path) -> None:
    """A data directory is its user's alone: the directory 0700, its database and the SQLite
    files beside it (``-wal``, ``-shm``, which SQLite creates with the database's mode) 0600,
    made so before anything is written (and mended on open, for directories made before)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    database = data_dir / DB_FILE
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, data_dir / f"{DB_FILE}-wal", data_dir / f"{DB_FILE}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)


def owner_keyset(account: OwnerAccount) -> Keyset:
    """A single owner's keyset: its authorization key, with its revocation key as revoker (what
    its certificates and its owner membership carry)."""
    return Keyset(single_owner(account.authorization_key().agent, account.revocation_key().agent))


def owner_membership_for(account: OwnerAccount, now_us: int) -> OwnerMembership:
    """The owner agent's membrane proof of the core DNA: its owner membership, bound by the
    owner agent and signed by the authorization key."""
    doc = owner_membership(owner_keyset(account), account.agent_key(), now_us)
    return doc.signed_by(account.authorization_key())


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
        spec = db.get_setting(NETWORK_SETTING)
        self._core = core_network(spec if isinstance(spec, Mapping) else None)
        self._cells: dict[tuple[DnaHash, int, int], Cell] = {}
        for dna_hash, dna in known_dnas(db).items():
            for slot in self._slots():
                if slot.dna_hash == dna_hash and self._derivable(slot):
                    self._cells[(dna_hash, slot.device, slot.agent)] = self._make_cell(dna, slot)

    # --------------------------------------------------------------------------- construction

    @classmethod
    def init(
        cls,
        data_dir: Path,
        unlock: Unlock,
        *,
        clock: Clock = system_clock_us,
        network: Mapping[str, Value] | None = None,
    ) -> tuple[Conductor, str]:
        """Create an owner account in ``data_dir``, a member of ``network`` (a network spec,
        ``ioe.dnas.load_network``; None: the default network). Returns the conductor and the
        mnemonic, which is shown once and never stored in clear."""
        account = OwnerAccount.generate()
        conductor = cls._create(data_dir, account, unlock, clock, network=network)
        return conductor, account.mnemonic()

    @classmethod
    def recover(
        cls,
        data_dir: Path,
        mnemonic: str,
        unlock: Unlock,
        *,
        clock: Clock = system_clock_us,
        restore: bool = False,
        network: Mapping[str, Value] | None = None,
    ) -> Conductor:
        """Restore the owner account from its mnemonic (into a new or keystore-less directory).
        With ``restore``, the chains are to be fetched from the network before anything is
        written (:data:`RESTORE_SETTING`)."""
        account = OwnerAccount.from_mnemonic(mnemonic)
        return cls._create(data_dir, account, unlock, clock, restore=restore, network=network)

    @classmethod
    def _create(
        cls,
        data_dir: Path,
        account: OwnerAccount,
        unlock: Unlock,
        clock: Clock,
        *,
        restore: bool = False,
        network: Mapping[str, Value] | None = None,
    ) -> Conductor:
        core = core_network(network)  # ValueError before anything is written
        keystore = data_dir / KEYSTORE_FILE
        if keystore.exists():
            raise AlreadyInitialised(f"{data_dir} already holds an owner account ({keystore})")
        make_private(data_dir)
        db = SqliteDatabase.open(data_dir / DB_FILE)
        try:
            owner = db.get_setting("owner")
            if owner is not None and owner != bytes(account.agent_key().agent):
                raise AlreadyInitialised(f"{data_dir} belongs to another owner")
            if restore:  # before the keystore: a directory with keys never lacks the mark
                db.put_setting(RESTORE_SETTING, True)
            if network is not None:
                db.put_setting(NETWORK_SETTING, network_spec(core))
            write_keystore(
                keystore, {ROOT_SEED_SECRET: account.root_seed()}, unlock, overwrite=False
            )
            db.put_setting("owner", bytes(account.agent_key().agent))
            conductor = cls(data_dir, db, account, clock)
            conductor._install_owner_cell()
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
        make_private(data_dir)
        db = SqliteDatabase.open(data_dir / DB_FILE)
        try:
            conductor = cls(data_dir, db, account, clock)
            conductor._install_owner_cell()  # a no-op unless this build's core DNA is new here
        except BaseException:
            db.close()
            raise
        return conductor

    def _install_owner_cell(self) -> None:
        """The owner agent's core cell, whose genesis carries its owner membership."""
        assert isinstance(self.account, OwnerAccount)
        core = self.core_dna
        if self.db.get_setting(RESTORE_SETTING):  # the chain comes back from the network first
            self.install_cell(core, device=OWNER_DEVICE_INDEX, agent=0, genesis=False)
            return
        key = (core.hash, OWNER_DEVICE_INDEX, 0)
        if key in self._cells and self._cells[key].has_genesis():
            return
        proof = owner_membership_for(self.account, self.clock()).to_bytes()
        self.install_cell(core, device=OWNER_DEVICE_INDEX, agent=0, membrane_proof=proof)

    def use_network(self, network: Mapping[str, Value]) -> DnaDef:
        """Make ``network`` this owner's core network: its cell is installed (genesis with the
        owner membership) and the previous core network's cells no longer run (their chains
        stay in the database). For a founder who had to know its own agent key before writing
        the network file that names it. Devices follow their owner: they are enrolled into a
        network, not moved."""
        if not isinstance(self.account, OwnerAccount):
            raise IoEError("an enrolled device belongs to the network its owner enrolled it in")
        core = core_network(network)
        self.db.put_setting(NETWORK_SETTING, network_spec(core))
        self._core = core
        self._cells = {
            key: cell
            for key, cell in self._cells.items()
            if cell.dna.name != core.name or key[0] == core.hash
        }
        self.db.put_setting("cells", [s.to_value() for s in self._slots() if self._runs(s)])
        self._install_owner_cell()
        return core

    def _runs(self, slot: CellSlot) -> bool:
        return (slot.dna_hash, slot.device, slot.agent) in self._cells

    @property
    def core_dna(self) -> DnaDef:
        """The core DNA of this directory's network (:data:`NETWORK_SETTING`)."""
        return self._core

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
        make_private(data_dir)
        db = SqliteDatabase.open(data_dir / DB_FILE)
        try:
            db.put_setting("owner", bytes(account.owner))
            conductor = cls(data_dir, db, account, clock)
            proof = account.certificate.to_bytes()
            conductor.install_cell(
                conductor.core_dna, device=account.index, agent=account.agent, membrane_proof=proof
            )
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
        identity it had before enrollment are left in the database but no longer run, nor do
        the cells of its agents before a key rotation."""
        if not isinstance(self.account, DeviceAccount):
            return True
        if slot.device == self.account.index and slot.agent >= APP_AGENT_BASE:
            return True  # an app key of this device (``app_agent_index``)
        return (slot.device, slot.agent) == (self.account.index, self.account.agent)

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
        self,
        dna: DnaDef,
        *,
        device: int,
        agent: int = 0,
        membrane_proof: bytes | None = None,
        genesis: bool = True,
    ) -> Cell:
        """Create (or return) the cell of ``dna`` for device ``device``'s agent key ``agent``,
        writing its genesis records (unless ``genesis`` is False: a chain to be restored)."""
        key = (dna.hash, device, agent)
        if key not in self._cells:
            self.db.register_dna(dna)
            slot = CellSlot(dna.hash, device, agent)
            self._cells[key] = self._make_cell(dna, slot)
            self.db.put_setting("cells", [s.to_value() for s in [*self._slots(), slot]])
        cell = self._cells[key]
        if genesis:
            cell.genesis(membrane_proof, now_us=self.clock())
        return cell

    def cells(self) -> list[Cell]:
        return list(self._cells.values())

    @staticmethod
    def membrane_proof(cell: Cell) -> bytes | None:
        """The membrane proof ``cell``'s genesis carries (what its agent infos present)."""
        query = ChainQuery(action_type=ActionType.AGENT_VALIDATION_PKG, limit=1)
        for record in cell.query(query):
            if isinstance(record.action, AgentValidationPkg):
                return record.action.membrane_proof
        return None

    @property
    def owner_cell(self) -> Cell:
        agent = self.account.agent if isinstance(self.account, DeviceAccount) else 0
        return self._cells[(self.core_dna.hash, self.home_device, agent)]

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
