"""The community zome: charters signed by their manager keyset, founded only by an owner agent
of that keyset, public ones linked from every prefix of their zone, private ones never
published; hostile charters refused with a clear reason."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.integrity import Invalid, OpType, Valid
from ioe.engine.records import CreateLink, Record, SignedAction
from ioe.engine.validation import SourceHost
from ioe.errors import EncodingError, ValidationError, ZomeCallError
from ioe.hashing import ExternalHash
from ioe.identity.authority import Keyset, single_owner
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import authorization_key_for, membrane_proof_for
from ioe.zomes.community.entries import (
    MAX_CHARTER_BYTES,
    CommunityCharter,
    Visibility,
    charter_problem,
    zone_anchor,
    zone_prefixes,
)

NOW = 1_700_000_000_000_000
ALICE, BOB = KeyPair(bytes([11]) * 32), KeyPair(bytes([12]) * 32)


def cells() -> tuple[Cell, Cell]:
    dna = core_dna()
    db = MemoryDatabase()
    out = []
    for keys in (ALICE, BOB):
        cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
        cell.genesis(membrane_proof_for(keys), now_us=NOW)
        out.append(cell)
    return out[0], out[1]


def charter_of(
    founder: KeyPair, *, zone: str = "au/nsw/newtown", private: bool = False, name: str = "King St"
) -> CommunityCharter:
    authz = authorization_key_for(founder)  # the founder's own keyset (membrane_proof_for)
    return CommunityCharter(
        version=1,
        name=name,
        zone=zone,
        visibility=Visibility.PRIVATE if private else Visibility.PUBLIC,
        parent=None,
        manager=Keyset(single_owner(authz.agent)),
        created_us=NOW,
    ).signed_by(authz)


def test_zone_prefixes_by_hand() -> None:
    assert zone_prefixes("au/nsw/newtown") == ["", "au", "au/nsw", "au/nsw/newtown"]
    assert zone_anchor("au") == ExternalHash.of(b"ioe/community/zone/au")


def test_a_public_community_is_founded_and_linked_from_each_zone_prefix() -> None:
    alice, _ = cells()
    charter = charter_of(ALICE)
    action = alice.call("community", "found", {"charter": charter.to_bytes()}, now_us=NOW)
    for prefix in zone_prefixes("au/nsw/newtown"):
        links = alice.store.links(zone_anchor(prefix))
        assert [link.target for link in links] == [action]
    assert alice.store.links(zone_anchor("au/vic")) == []
    [(found_at, found)] = alice.call("community", "founded", None, now_us=NOW)
    assert found_at == action and found.id == charter.id and found.name == "King St"


def test_every_op_of_a_founding_validates_at_an_authority() -> None:
    alice, _ = cells()
    action = alice.call("community", "found", {"charter": charter_of(ALICE).to_bytes()}, now_us=NOW)
    host = SourceHost(alice.dna, alice.store)
    records = [r for r in alice.query() if r.action.seq >= alice.get(action).action.seq]  # type: ignore[union-attr]
    assert len(records) == 1 + 4  # the charter and a link per zone prefix
    for record in records:
        for op in publishable_ops(record):
            assert isinstance(validate_op(op, alice.dna, host), Valid), op.op_type


def test_a_private_community_publishes_nothing() -> None:
    alice, _ = cells()
    charter = charter_of(ALICE, private=True)
    action = alice.call("community", "found", {"charter": charter.to_bytes()}, now_us=NOW)
    record = alice.get(action)
    assert record is not None and record.action.entry_type is not None
    assert record.action.entry_type.visibility.name == "PRIVATE"
    assert all(op.entry is None for op in publishable_ops(record))  # the entry stays here
    assert alice.store.links(zone_anchor("")) == []
    [(_, found)] = alice.call("community", "founded", None, now_us=NOW)
    assert found.visibility is Visibility.PRIVATE


def test_nobody_founds_a_community_in_someone_elses_name() -> None:
    _, bob = cells()
    with pytest.raises(ValidationError, match="owner agent of the charter's manager keyset"):
        bob.call("community", "found", {"charter": charter_of(ALICE).to_bytes()}, now_us=NOW)
    assert bob.call("community", "founded", None, now_us=NOW) == []


def test_a_charter_signed_by_a_stranger_is_refused() -> None:
    alice, _ = cells()
    unsigned = dataclasses.replace(charter_of(ALICE), signatures=())
    forged = unsigned.signed_by(BOB)  # BOB's key is not a signer of the manager keyset
    assert "not authorized" in (charter_problem(forged) or "")
    with pytest.raises(ZomeCallError, match="not authorized"):
        alice.call("community", "found", {"charter": forged.to_bytes()}, now_us=NOW)


def test_altering_a_signed_charter_breaks_it() -> None:
    charter = charter_of(ALICE)
    renamed = dataclasses.replace(charter, name="Someone else's street")
    assert charter_problem(charter) is None
    assert "not authorized" in (charter_problem(renamed) or "")
    assert renamed.id != charter.id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": ""}, "name is empty"),
        ({"name": "x" * 81}, "at most 80"),
        ({"name": "bad\nname"}, "control characters"),
        ({"zone": "AU/NSW"}, "zone"),
        ({"created_us": -1}, "non-negative"),
        ({"version": 2}, "version"),
    ],
)
def test_bad_charter_fields_are_refused_with_a_reason(
    change: dict[str, object], reason: str
) -> None:
    alice, _ = cells()
    bad = dataclasses.replace(charter_of(ALICE), **change)  # type: ignore[arg-type]
    with pytest.raises(ZomeCallError, match=reason):
        alice.call("community", "found", {"charter": bad.to_bytes()}, now_us=NOW)


def _relinked(cell: Cell, **change: object) -> Invalid | Valid:
    """Validate, as an authority would, one of ``cell``'s zone links altered by ``change``
    (and signed again by its author)."""
    link = next(r for r in cell.query() if isinstance(r.action, CreateLink))
    altered = dataclasses.replace(link.action, **change)  # type: ignore[arg-type]
    record = Record(SignedAction.sign(altered, cell.keys), None)
    [op] = [op for op in publishable_ops(record) if op.op_type is OpType.REGISTER_ADD_LINK]
    outcome = validate_op(op, cell.dna, SourceHost(cell.dna, cell.store))
    assert isinstance(outcome, Invalid | Valid)
    return outcome


def test_a_zone_link_from_another_zone_or_to_another_record_is_invalid() -> None:
    alice, _ = cells()
    alice.call("community", "found", {"charter": charter_of(ALICE).to_bytes()}, now_us=NOW)
    assert isinstance(_relinked(alice), Valid)
    wrong_zone = _relinked(alice, base=zone_anchor("au/vic"))
    assert isinstance(wrong_zone, Invalid) and "prefix of the community's zone" in wrong_zone.reason
    genesis = alice.query()[0].action_hash  # not a community
    not_community = _relinked(alice, target=genesis)
    assert isinstance(not_community, Invalid)


def test_oversized_and_garbled_charters_get_clear_errors() -> None:
    alice, _ = cells()
    with pytest.raises(ZomeCallError, match="over"):
        alice.call("community", "found", {"charter": b"\xa0" * (MAX_CHARTER_BYTES + 1)}, now_us=NOW)
    with pytest.raises(ZomeCallError, match="malformed charter"):
        alice.call("community", "found", {"charter": b"\xff\x00garbage"}, now_us=NOW)
    with pytest.raises(ZomeCallError, match="found takes"):
        alice.call("community", "found", {"charter": "text"}, now_us=NOW)
    assert alice.call("community", "founded", None, now_us=NOW) == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_charter_or_an_encoding_error(data: bytes) -> None:
    try:
        charter = CommunityCharter.from_bytes(data)
    except EncodingError:
        return
    assert charter.to_bytes() == data  # whatever decodes is canonical


@settings(max_examples=50, deadline=None)
@given(
    st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=80).filter(
        lambda s: s.isprintable()
    ),
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,5}", fullmatch=True), min_size=1, max_size=4),
)
def test_signed_charters_round_trip_and_verify(name: str, segments: list[str]) -> None:
    charter = charter_of(ALICE, name=name, zone="/".join(segments))
    again = CommunityCharter.from_bytes(charter.to_bytes())
    assert again == charter and charter_problem(again) is None
    assert charter.signatures[0].signer == authorization_key_for(ALICE).agent
