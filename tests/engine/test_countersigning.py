"""The countersigned entry and its validation, and the chain lock, in one process."""

from __future__ import annotations

import dataclasses

import pytest

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.countersigning import (
    CountersignedEntry,
    Preflight,
    Response,
    commit_session,
    find_committed,
)
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.schema import to_value
from ioe.engine.validation import SourceHost
from ioe.errors import ChainError, ChainLocked, ValidationError
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.profile.entries import Profile

DNA = core_dna()
NOW = 1_700_000_000_000_000
KEYS = [KeyPair(bytes([i + 10]) * 32) for i in range(3)]


def new_cells(db: MemoryDatabase | None = None) -> list[Cell]:
    db = db or MemoryDatabase()
    cells = [Cell(DNA, keys, db.chain(DNA.hash, keys.agent)) for keys in KEYS]
    for cell in cells:
        cell.genesis(membrane_proof_for(cell.keys), now_us=NOW)
    return cells


def preflight(parties: list[Cell], value: object, *, witness: KeyPair | None = None) -> Preflight:
    entry_type, _ = DNA.entry_type_for(type(value))
    return Preflight(
        session_id=b"\x01" * 16,
        dna_hash=DNA.hash,
        parties=tuple(c.agent for c in parties),
        witness=witness.agent if witness else None,
        entry_zome=entry_type.zome_index,
        entry_index=entry_type.entry_index,
        entry=encode(to_value(value)),
        session_time_us=NOW + 10,
        expires_us=NOW + 10_000_000,
    )


def signed_set(parties: list[Cell], pf: Preflight) -> CountersignedEntry:
    responses = []
    for cell in parties:
        head = cell.head()
        assert head is not None
        responses.append(Response.sign(cell.keys, pf, head))
    return CountersignedEntry(pf, tuple(responses))


def test_every_party_commits_the_same_set_with_only_the_set_in_hand() -> None:
    cells = new_cells()
    alice, bob = cells[0], cells[1]
    pf = preflight([alice, bob], Profile("Deal", "au/nsw"))
    entry = signed_set([alice, bob], pf)
    actions = [commit_session(cell, entry) for cell in (alice, bob)]
    for cell, action in zip((alice, bob), actions, strict=True):
        record = cell.get(action)
        assert record is not None and cell.entry_value(record) == entry
        assert find_committed(cell, pf.session_id) == (action, entry)
        # An authority accepts every op of it.
        host = SourceHost(DNA, cell.store)
        for op in publishable_ops(record):
            assert validate_op(op, DNA, host), op.op_type


def test_the_app_entry_inside_is_judged_by_its_own_zome() -> None:
    alice, bob, _ = new_cells()
    entry = signed_set([alice, bob], preflight([alice, bob], Profile("Deal", "Not A Zone")))
    with pytest.raises(ValidationError, match="zone"):
        commit_session(alice, entry)


@pytest.mark.parametrize("flaw", ["signature", "missing", "order", "outsider", "witness"])
def test_an_incomplete_or_forged_set_is_refused(flaw: str) -> None:
    alice, bob, carol = new_cells()
    pf = preflight([alice, bob], Profile("Deal", "au/nsw"))
    entry = signed_set([alice, bob], pf)
    if flaw == "signature":
        bad = dataclasses.replace(entry.responses[1], signature=bytes(64))
        entry = dataclasses.replace(entry, responses=(entry.responses[0], bad))
    elif flaw == "missing":
        entry = dataclasses.replace(entry, responses=entry.responses[:1])
    elif flaw == "order":
        entry = dataclasses.replace(entry, responses=entry.responses[::-1])
    elif flaw == "outsider":
        with pytest.raises(ChainError, match="not a party"):
            commit_session(carol, entry)
        return
    else:
        entry = dataclasses.replace(entry, witness_signature=bytes(64))
    with pytest.raises(ValidationError):
        commit_session(alice, entry)


def test_a_witnessed_set_needs_the_witness_signature() -> None:
    alice, bob, _ = new_cells()
    witness = KEYS[2]
    pf = preflight([alice, bob], Profile("Deal", "au/nsw"), witness=witness)
    entry = signed_set([alice, bob], pf)
    with pytest.raises(ValidationError, match="witness"):
        commit_session(alice, entry)
    assert commit_session(alice, entry.with_witness(witness))


def test_a_set_is_void_once_the_chain_has_moved() -> None:
    alice, bob, _ = new_cells()
    entry = signed_set([alice, bob], preflight([alice, bob], Profile("Deal", "au/nsw")))
    alice.call("profile", "set_profile", {"name": "A", "zone": "au"}, now_us=NOW + 20)
    with pytest.raises(ChainError, match="moved"):
        commit_session(alice, entry)


def test_a_locked_chain_refuses_writes_but_reads_and_the_session_commit_work() -> None:
    alice, bob, _ = new_cells()
    entry = signed_set([alice, bob], preflight([alice, bob], Profile("Deal", "au/nsw")))
    alice.lock = entry.session_id
    with pytest.raises(ChainLocked, match="locked by countersigning session"):
        alice.call("profile", "set_profile", {"name": "A", "zone": "au"}, now_us=NOW + 20)
    assert alice.call("capability", "list_grants", None, now_us=NOW + 20) == {}
    assert alice.head() is not None and alice.head().seq == 3  # type: ignore[union-attr]
    commit_session(alice, entry)
    alice.lock = None
    alice.call("profile", "set_profile", {"name": "A", "zone": "au"}, now_us=NOW + 20)
