"""The community zome: charters signed by their manager keyset, founded only by an owner agent
of that keyset, public ones linked from every prefix of their zone, private ones never
published; hostile charters refused with a clear reason."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.conductor import owner_keyset
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.integrity import Invalid, OpType, Valid
from ioe.engine.records import CreateLink, Record, SignedAction
from ioe.engine.validation import SourceHost
from ioe.errors import EncodingError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash, ExternalHash
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import enrollment_record
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import (
    authorization_key_for,
    device_certificate,
    membrane_proof_for,
    owner_membership_proof,
)
from ioe.zomes.community.entries import (
    MAX_CHARTER_BYTES,
    Access,
    CommunityCharter,
    CommunityMembership,
    MemberKind,
    Role,
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


# ------------------------------------------------------------------------------ memberships

ANN = OwnerAccount.from_root_seed(bytes([21]) * 32)
CAL = OwnerAccount.from_root_seed(bytes([22]) * 32)


@dataclasses.dataclass
class World:
    ann: Cell  # Ann's owner agent: founds the community
    plug: Cell  # Ann's device 1
    cal: Cell  # another owner
    cal_plug: Cell  # Cal's device 1
    charter: CommunityCharter
    charter_at: ActionHash


def world() -> World:
    dna = core_dna()
    db = MemoryDatabase()

    def cell(keys: KeyPair, proof: bytes) -> Cell:
        made = Cell(dna, keys, db.chain(dna.hash, keys.agent))
        made.genesis(proof, now_us=NOW)
        return made

    def device(account: OwnerAccount) -> Cell:
        cert = device_certificate(account, 1, now_us=NOW)
        return cell(device_agent_key(account.device_seed(1), 0), cert.to_bytes())

    ann = cell(ANN.agent_key(), owner_membership_proof(ANN, now_us=NOW))
    cal = cell(CAL.agent_key(), owner_membership_proof(CAL, now_us=NOW))
    charter = CommunityCharter(
        1, "King St", "au/nsw/newtown", Visibility.PUBLIC, None, owner_keyset(ANN), NOW
    ).signed_by(ANN.authorization_key())
    charter_at = ann.call("community", "found", {"charter": charter.to_bytes()}, now_us=NOW)
    return World(ann, device(ANN), cal, device(CAL), charter, charter_at)


def joined_at(cell: Cell) -> ActionHash:
    found = enrollment_record([r.signed_action for r in cell.query()], cell.agent)
    assert found is not None
    return found[0].hash


def membership(
    w: World, member: Cell, *, kind: MemberKind = MemberKind.DEVICE, role: Role = Role.MEMBER,
    access: tuple[Access, ...] = (Access.SEE,),
) -> CommunityMembership:  # fmt: skip
    return CommunityMembership(1, w.charter.id, member.agent, kind, role, access, NOW)


def add(w: World, signed: CommunityMembership, member: Cell, by: Cell | None = None) -> ActionHash:
    payload = {
        "membership": signed.to_bytes(),
        "charter_at": w.charter_at,
        "member_joined": joined_at(member),
    }
    action: ActionHash = (by or w.ann).call("community", "add_member", payload, now_us=NOW)
    return action


def all_ops_valid(cell: Cell, since: ActionHash) -> None:
    host = SourceHost(cell.dna, cell.store)
    start = cell.get(since)
    assert start is not None
    for record in cell.query():
        if record.action.seq >= start.action.seq:
            for op in publishable_ops(record):
                assert isinstance(validate_op(op, cell.dna, host), Valid), op.op_type


def test_a_device_joins_with_its_managers_and_its_owners_signatures() -> None:
    w = world()
    both = (
        membership(w, w.plug, access=(Access.SEE, Access.TRADE))
        .signed_as_manager(ANN.authorization_key())
        .signed_as_owner(ANN.authorization_key())
    )  # Ann owns the plug too
    action = add(w, both, w.plug)
    all_ops_valid(w.ann, action)
    [member_link] = w.ann.store.links(w.charter.id)
    [member_of] = w.ann.store.links(w.plug.agent)
    assert member_link.target == action and member_of.target == action


def test_another_owners_device_needs_that_owners_signature() -> None:
    w = world()
    manager_only = membership(w, w.cal_plug).signed_as_manager(ANN.authorization_key())
    with pytest.raises(ValidationError, match="not signed by the member's owner"):
        add(w, manager_only, w.cal_plug)
    wrong_owner = manager_only.signed_as_owner(ANN.authorization_key())  # Ann does not own it
    with pytest.raises(ValidationError, match="not signed by the member's owner"):
        add(w, wrong_owner, w.cal_plug)
    both = manager_only.signed_as_owner(CAL.authorization_key())
    all_ops_valid(w.ann, add(w, both, w.cal_plug))


def test_the_owner_alone_cannot_make_a_membership() -> None:
    w = world()
    owner_only = membership(w, w.cal_plug).signed_as_owner(CAL.authorization_key())
    with pytest.raises(ValidationError, match="not signed by the community's manager"):
        add(w, owner_only, w.cal_plug)


def test_only_the_manager_writes_memberships() -> None:
    w = world()
    both = (
        membership(w, w.cal_plug)
        .signed_as_manager(ANN.authorization_key())
        .signed_as_owner(CAL.authorization_key())
    )
    with pytest.raises(ValidationError, match="written by the community's manager"):
        add(w, both, w.cal_plug, by=w.cal)  # Cal cites Ann's charter, but is not its manager


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"role": Role.OBSERVER, "access": (Access.CONTROL,)}, "may not be given control"),
        ({"access": (Access.TRADE, Access.SEE)}, "once each, in order"),
        ({"role": Role.MANAGER, "access": (Access.SEE,)}, "cannot manage"),
        ({"kind": MemberKind.PERSON}, "kind is device"),
    ],
)
def test_bad_memberships_are_refused_with_a_reason(change: dict[str, object], reason: str) -> None:
    w = world()
    bad = dataclasses.replace(membership(w, w.plug), **change)  # type: ignore[arg-type]
    signed = bad.signed_as_manager(ANN.authorization_key()).signed_as_owner(ANN.authorization_key())
    with pytest.raises((ValidationError, ZomeCallError), match=reason):
        add(w, signed, w.plug)


def test_a_person_joins_as_a_person() -> None:
    w = world()
    cal = (
        membership(w, w.cal, kind=MemberKind.PERSON, role=Role.OPERATOR,
                   access=(Access.CONTROL, Access.SEE))
        .signed_as_manager(ANN.authorization_key())
        .signed_as_owner(CAL.authorization_key())
    )  # fmt: skip
    all_ops_valid(w.ann, add(w, cal, w.cal))


def test_either_side_revokes_and_a_stranger_cannot() -> None:
    w = world()
    both = (
        membership(w, w.cal_plug)
        .signed_as_manager(ANN.authorization_key())
        .signed_as_owner(CAL.authorization_key())
    )
    action = add(w, both, w.cal_plug)
    revoke = {"membership_at": action, "reason": "moved out"}
    revoked = w.ann.call("community", "revoke_member", revoke, now_us=NOW)
    all_ops_valid(w.ann, revoked)
    [link] = w.ann.store.links(action)
    assert link.target == revoked
    by_member = w.cal_plug.call("community", "revoke_member", revoke, now_us=NOW + 1)
    assert isinstance(by_member, ActionHash)
    with pytest.raises(ValidationError, match="revoked by its manager"):
        w.plug.call("community", "revoke_member", revoke, now_us=NOW + 2)  # Ann's other device
