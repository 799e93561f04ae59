"""The conductor: data directory, keystore, derived keys and cells, across reopen and recovery."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ioe.conductor import AlreadyInitialised, Conductor, NotInitialised
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keystore import Unlock
from ioe.dnas import core_dna
from ioe.errors import WrongPassphrase
from ioe.testing.membership import device_certificate

UNLOCK = Unlock(passphrase="a long enough passphrase")


def ticking(start: int = 1_800_000_000_000_000):  # type: ignore[no-untyped-def]
    now = [start]

    def clock() -> int:
        now[0] += 1_000
        return now[0]

    return clock


def test_init_creates_the_owner_cell_with_genesis(tmp_path: Path) -> None:
    conductor, mnemonic = Conductor.init(tmp_path, UNLOCK, clock=ticking())
    with conductor:
        owner = conductor.owner_cell
        assert owner.agent == OwnerAccount.from_mnemonic(mnemonic).agent_key().agent
        head = owner.head()
        assert head is not None and head.seq == 3


def test_reopen_restores_cells_and_keys(tmp_path: Path) -> None:
    conductor, _ = Conductor.init(tmp_path, UNLOCK, clock=ticking())
    with conductor:
        assert isinstance(conductor.account, OwnerAccount)
        proof = device_certificate(conductor.account, 1).to_bytes()
        plug = conductor.install_cell(core_dna(), device=1, membrane_proof=proof)
        conductor.call(plug, "telemetry", "record_batch", [{"at_us": 1, "values": {"power_mw": 5}}])
        agent, head = plug.agent, plug.head()
    with Conductor.open(tmp_path, UNLOCK, clock=ticking(1_900_000_000_000_000)) as reopened:
        agents = {cell.agent for cell in reopened.cells()}
        assert agent in agents
        again = next(cell for cell in reopened.cells() if cell.agent == agent)
        assert again.head() == head
        assert again.agent == device_agent_key(reopened.account.device_seed(1), 0).agent
        assert len(again.call("telemetry", "batches", now_us=1_900_000_000_000_000)) == 1


def test_wrong_passphrase_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    conductor, _ = Conductor.init(tmp_path, UNLOCK, clock=ticking())
    conductor.close()
    before = (tmp_path / "keystore.json").read_bytes()
    with pytest.raises(WrongPassphrase):
        Conductor.open(tmp_path, Unlock(passphrase="not the passphrase"))
    assert (tmp_path / "keystore.json").read_bytes() == before


def test_open_before_init_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised):
        Conductor.open(tmp_path, UNLOCK)


def test_recover_after_losing_the_keystore_keeps_the_chain(tmp_path: Path) -> None:
    conductor, mnemonic = Conductor.init(tmp_path, UNLOCK, clock=ticking())
    with conductor:
        head = conductor.owner_cell.head()
    (tmp_path / "keystore.json").unlink()
    new_unlock = Unlock(passphrase="a new passphrase after the loss")
    with Conductor.recover(tmp_path, mnemonic, new_unlock, clock=ticking()) as recovered:
        assert recovered.owner_cell.head() == head


def test_recover_refuses_a_directory_of_another_owner(tmp_path: Path) -> None:
    conductor, _ = Conductor.init(tmp_path, UNLOCK, clock=ticking())
    conductor.close()
    (tmp_path / "keystore.json").unlink()
    stranger = OwnerAccount.generate().mnemonic()
    with pytest.raises(AlreadyInitialised):
        Conductor.recover(tmp_path, stranger, UNLOCK)
    assert not (tmp_path / "keystore.json").exists()


NETWORK = {
    "network_seed": "a test network",
    "properties": {"currency": {"symbol": "NRG", "credit_limits": {"default_mc": 5_000}}},
}


def test_an_owner_joins_the_network_it_is_given(tmp_path: Path) -> None:
    unlock = UNLOCK
    conductor, _ = Conductor.init(tmp_path / "a", unlock, clock=ticking(), network=NETWORK)
    with conductor:
        core = conductor.owner_cell.dna
        assert core.hash == conductor.core_dna.hash != core_dna().hash
        assert core.properties["currency"] == NETWORK["properties"]["currency"]  # type: ignore[index]
        balance = conductor.call(conductor.owner_cell, "currency", "balance")
        assert (balance.symbol, balance.credit_limit_mc) == ("NRG", 5_000)  # type: ignore[attr-defined]
    with Conductor.open(tmp_path / "a", unlock, clock=ticking()) as reopened:
        assert reopened.owner_cell.dna.hash == core.hash
        assert [c.dna.hash for c in reopened.cells()] == [core.hash]


def test_an_owner_moves_to_another_network_keeping_its_old_chain(tmp_path: Path) -> None:
    unlock = UNLOCK
    conductor, _ = Conductor.init(tmp_path / "a", unlock, clock=ticking())
    with conductor:
        old = conductor.owner_cell
        moved = conductor.use_network(NETWORK)
        assert conductor.owner_cell.dna.hash == moved.hash != old.dna.hash
        assert conductor.owner_cell.agent == old.agent  # the same agent key on both networks
        assert [c.dna.hash for c in conductor.cells()] == [moved.hash]
        assert conductor.membrane_proof(conductor.owner_cell) is not None  # a full genesis
        assert {h for h, _ in conductor.db.cells()} == {old.dna.hash, moved.hash}
    with Conductor.open(tmp_path / "a", unlock, clock=ticking()) as reopened:
        assert [c.dna.hash for c in reopened.cells()] == [moved.hash]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"properties": {"currency": {"bogus": 1}}}, "unknown settings"),
        ({"properties": {"x": 1.5}}, "not canonical"),
        ({"properties": {}, "colour": "red"}, "at most the keys"),
        ({"network_seed": 7}, "network seed is text"),
        ({"properties": {"value": {"colour": 1}}}, "value rules"),
    ],
)
def test_a_network_the_zomes_would_refuse_is_refused_before_anything_is_written(
    tmp_path: Path, spec: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Conductor.init(tmp_path / "a", UNLOCK, network=spec)  # type: ignore[arg-type]
    assert not (tmp_path / "a" / "keystore.json").exists()


def test_a_data_directory_is_its_users_alone(tmp_path: Path) -> None:
    """Other local users read nothing: the directory 0700, the database and SQLite's -wal and
    -shm beside it 0600 (a grant's secret, were it kept, would sit in the -wal), the keystore
    0600; a directory made before is mended on open."""
    data = tmp_path / "owner"
    conductor, _ = Conductor.init(data, UNLOCK, clock=ticking())
    conductor.call(conductor.owner_cell, "profile", "set_profile", {"name": "Sam", "zone": "au"})

    def mode(name: str) -> int:
        return stat.S_IMODE((data / name).stat().st_mode)

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("ioe.sqlite", "ioe.sqlite-wal", "ioe.sqlite-shm", "keystore.json"):
        assert mode(name) == 0o600, name
    conductor.close()
    data.chmod(0o755)
    (data / "ioe.sqlite").chmod(0o644)
    Conductor.open(data, UNLOCK, clock=ticking()).close()
    assert (stat.S_IMODE(data.stat().st_mode), mode("ioe.sqlite")) == (0o700, 0o600)
