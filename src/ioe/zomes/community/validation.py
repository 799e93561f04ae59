"""Integrity rules of the community zome (pure: no clock, no I/O).

**Charters.** A ``community`` (public) or ``private_community`` entry is valid when its charter
verifies (:func:`~ioe.zomes.community.entries.charter_problem`), its visibility matches the entry
type, and its author is an owner agent of the charter's manager keyset: the author joined the
network with an owner membership of that very keyset (its ``AgentValidationPkg``), so nobody
can found a community in someone else's name.

**Memberships.** A ``community_membership`` (or private) entry is valid when its membership
decodes, cites the action that founded its community (``charter_at``; a public membership only a
public community) and the member's own ``AgentValidationPkg`` (``member_joined``), the member's
kind matches what it joined with (a device: an enrollment certificate; a person: an owner
membership), both the manager keyset and the member's owner keyset signed it
(:func:`~ioe.zomes.community.entries.membership_problem`), and its author is an owner agent of
the manager keyset.

**Revocations.** A ``community_membership_revocation`` is valid when it cites a membership and
its author is the manager's owner agent, the member's owner agent, or the member itself.

**Links.** ``community_zone`` goes from the anchor of a prefix of a public community's zone to
the author's own charter; ``community_member`` from a community's id, and ``member_of`` from the
member's key, to the author's own membership of it; ``membership_revoked`` from a membership to
the author's own revocation of it.
"""

from __future__ import annotations

from typing import TypeVar

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import (
    AgentValidationPkg,
    CreateLink,
    Record,
    SignedAction,
    Visibility,
)
from ioe.engine.schema import decode_as
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity import wire
from ioe.identity.authority import Keyset
from ioe.identity.certificate import EnrollmentCertificate, enrollment_record
from ioe.identity.membership import OwnerMembership, is_certificate
from ioe.zomes.community.entries import (
    COMMUNITY_ENTRY,
    MEMBER_LINK,
    MEMBER_OF_LINK,
    MEMBERSHIP_ENTRY,
    PRIVATE_COMMUNITY_ENTRY,
    PRIVATE_MEMBERSHIP_ENTRY,
    REVOCATION_ENTRY,
    REVOKED_LINK,
    ZONE_LINK,
    CommunityCharter,
    CommunityEntry,
    CommunityMembership,
    MemberKind,
    MembershipEntry,
    MembershipRevocation,
    PrivateCommunityEntry,
    PrivateMembershipEntry,
    checked_charter,
    membership_problem,
    zone_anchor,
    zone_prefixes,
)
from ioe.zomes.community.entries import (
    Visibility as CommunityVisibility,
)

COMMUNITY_ZOME = "community"
E = TypeVar("E")


class Refused(Exception):
    """Why an op is invalid (raised inside this module, turned into :class:`Invalid`)."""


def _cited(
    host: IntegrityHost, action: ActionHash, zome_index: int, cls: type[E], what: str
) -> tuple[Record, E]:
    """The record at ``action`` and its entry, which must be of this zome's type ``cls``."""
    return cited_entry(host, action, integrity, zome_index, cls, what=what)


def cited_entry(
    host: IntegrityHost,
    action: ActionHash,
    zome: IntegrityZome,
    zome_index: int,
    cls: type[E],
    *,
    what: str,
) -> tuple[Record, E]:
    """The record at ``action`` and its entry, which must be ``zome``'s type ``cls`` (``zome``
    sitting at ``zome_index`` in the DNA); :class:`Refused` otherwise."""
    record = host.must_get_valid_record(action)
    index = zome.entry_index(cls)
    entry_type = record.action.entry_type
    if (
        record.entry is None
        or index is None
        or entry_type is None
        or (entry_type.zome_index, entry_type.entry_index) != (zome_index, index)
    ):
        raise Refused(f"{action.short()} is not {what}")
    try:
        return record, decode_as(cls, record.entry.payload)
    except EncodingError as exc:
        raise Refused(f"{action.short()} is not {what}: {exc}") from None


def founder_problem(
    charter: CommunityCharter, activity: list[SignedAction], author: AgentPubKey
) -> str | None:
    """Why ``author`` (whose chain is ``activity``) may not act as ``charter``'s manager."""
    keyset = owner_keyset_of(activity, author)
    if keyset is None:
        return "a community is managed by owner agents (a device cannot manage one)"
    if keyset.id != charter.manager.id:
        return "the author is not an owner agent of the charter's manager keyset"
    return None


def owner_keyset_of(activity: list[SignedAction], agent: AgentPubKey) -> Keyset | None:
    """The keyset of the owner membership ``agent`` joined with; None for a device (or an
    agent with no valid owner membership)."""
    found = enrollment_record(activity, agent)
    if found is None or is_certificate(found[1]):
        return None
    try:
        membership = OwnerMembership.from_bytes(found[1])
    except EncodingError:
        return None
    return membership.keyset if membership.owner == agent else None


def _activity(op: Op, host: IntegrityHost) -> list[SignedAction]:
    action = op.action
    return host.must_get_agent_activity(action.author, action.prev) if action.prev else []


def _charter_of(entry: CommunityEntry | PrivateCommunityEntry) -> CommunityCharter:
    charter = checked_charter(entry.charter)
    if isinstance(charter, str):
        raise Refused(charter)
    return charter


def _check_charter_entry(op: Op, host: IntegrityHost) -> None:
    entry = op.app_entry
    assert isinstance(entry, CommunityEntry | PrivateCommunityEntry)
    charter = _charter_of(entry)
    public = isinstance(entry, CommunityEntry)
    wanted = CommunityVisibility.PUBLIC if public else CommunityVisibility.PRIVATE
    if charter.visibility != wanted:
        raise Refused(f"a {charter.visibility} community is a {wanted}-type entry's charter")
    problem = founder_problem(charter, _activity(op, host), op.action.author)
    if problem:
        raise Refused(problem.replace("managed by", "founded by"))


def member_keyset(joined: SignedAction, membership: CommunityMembership) -> Keyset:
    """The member's owner keyset, from the membrane proof it joined with."""
    action = joined.action
    if (
        not isinstance(action, AgentValidationPkg)
        or action.author != membership.member
        or action.membrane_proof is None
    ):
        raise Refused("member_joined is not the member's own AgentValidationPkg")
    proof = action.membrane_proof
    try:
        if is_certificate(proof):
            if membership.kind is not MemberKind.DEVICE:
                raise Refused("the member joined as a device: its kind is device")
            certificate = EnrollmentCertificate.from_bytes(proof)
            return certificate.keyset
        if membership.kind is not MemberKind.PERSON:
            raise Refused("the member joined as an owner: its kind is person")
        return OwnerMembership.from_bytes(proof).keyset
    except EncodingError as exc:
        raise Refused(f"the member's membrane proof does not decode: {exc}") from None


def checked_membership(
    entry: MembershipEntry | PrivateMembershipEntry, zome_index: int, host: IntegrityHost
) -> tuple[CommunityMembership, CommunityCharter, Keyset]:
    """The membership of ``entry``, its community's charter and the member's owner keyset,
    all verified (:class:`Refused` otherwise)."""
    try:
        membership = CommunityMembership.from_bytes(entry.membership)
    except EncodingError as exc:
        raise Refused(f"malformed membership: {exc}") from None
    founded: CommunityEntry | PrivateCommunityEntry
    if isinstance(entry, MembershipEntry):
        _, founded = _cited(
            host, entry.charter_at, zome_index, CommunityEntry, "a public community's charter"
        )
    else:
        try:
            _, founded = _cited(
                host, entry.charter_at, zome_index, PrivateCommunityEntry, "a community's charter"
            )
        except Refused:
            _, founded = _cited(
                host, entry.charter_at, zome_index, CommunityEntry, "a community's charter"
            )
    charter = _charter_of(founded)
    owner = member_keyset(host.must_get_action(entry.member_joined), membership)
    problem = membership_problem(membership, charter, owner)
    if problem:
        raise Refused(problem)
    return membership, charter, owner


def _check_membership_entry(op: Op, host: IntegrityHost) -> None:
    entry = op.app_entry
    assert isinstance(entry, MembershipEntry | PrivateMembershipEntry)
    entry_type = op.action.entry_type
    assert entry_type is not None
    _, charter, _ = checked_membership(entry, entry_type.zome_index, host)
    problem = founder_problem(charter, _activity(op, host), op.action.author)
    if problem:
        raise Refused(f"a membership is written by the community's manager: {problem}")


def _check_revocation(op: Op, host: IntegrityHost) -> None:
    revocation = op.app_entry
    assert isinstance(revocation, MembershipRevocation)
    problem = wire.text_problem(revocation.reason, "a revocation's reason", allow_empty=True)
    if problem:
        raise Refused(problem)
    entry_type = op.action.entry_type
    assert entry_type is not None
    _, entry = _cited(
        host, revocation.membership_at, entry_type.zome_index, MembershipEntry, "a membership"
    )
    membership, charter, owner = checked_membership(entry, entry_type.zome_index, host)
    author = op.action.author
    if author == membership.member:
        return
    keyset = owner_keyset_of(_activity(op, host), author)
    if keyset is None or keyset.id not in (charter.manager.id, owner.id):
        raise Refused("a membership is revoked by its manager, its member or the member's owner")


def _check_link(action: CreateLink, host: IntegrityHost) -> None:
    if not isinstance(action.target, ActionHash):
        raise Refused("a community link points at an action")
    zome, target = action.zome_index, action.target
    record: Record
    if action.link_type == integrity.link_index(ZONE_LINK):
        record, founded = _cited(host, target, zome, CommunityEntry, "a public community")
        charter = _charter_of(founded)
        if action.base not in {zone_anchor(p) for p in zone_prefixes(charter.zone)}:
            raise Refused(
                "a community_zone link goes from the anchor of a prefix of the community's zone"
            )
    elif action.link_type in (integrity.link_index(n) for n in (MEMBER_LINK, MEMBER_OF_LINK)):
        record, entry = _cited(host, target, zome, MembershipEntry, "a membership")
        try:
            membership = CommunityMembership.from_bytes(entry.membership)
        except EncodingError as exc:
            raise Refused(f"malformed membership: {exc}") from None
        member_link = action.link_type == integrity.link_index(MEMBER_LINK)
        if action.base != (membership.community if member_link else membership.member):
            raise Refused("a membership is linked from its community's id and its member's key")
    else:
        record, revocation = _cited(host, target, zome, MembershipRevocation, "a revocation")
        if action.base != revocation.membership_at:
            raise Refused("a revocation is linked from the membership it revokes")
    if record.action.author != action.author:
        raise Refused("a community link points at the author's own record")


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    entry = op.app_entry
    try:
        if isinstance(entry, CommunityEntry | PrivateCommunityEntry):
            _check_charter_entry(op, host)
        elif isinstance(entry, MembershipEntry | PrivateMembershipEntry):
            _check_membership_entry(op, host)
        elif isinstance(entry, MembershipRevocation):
            _check_revocation(op, host)
        if isinstance(action, CreateLink) and op.type in (
            OpType.STORE_RECORD,
            OpType.REGISTER_ADD_LINK,
        ):
            _check_link(action, host)
    except Refused as exc:
        return Invalid(str(exc))
    return VALID


integrity = IntegrityZome(
    name=COMMUNITY_ZOME,
    version="1",
    entry_defs=(
        EntryDef(COMMUNITY_ENTRY, CommunityEntry, Visibility.PUBLIC),
        EntryDef(PRIVATE_COMMUNITY_ENTRY, PrivateCommunityEntry, Visibility.PRIVATE),
        EntryDef(MEMBERSHIP_ENTRY, MembershipEntry, Visibility.PUBLIC),
        EntryDef(PRIVATE_MEMBERSHIP_ENTRY, PrivateMembershipEntry, Visibility.PRIVATE),
        EntryDef(REVOCATION_ENTRY, MembershipRevocation, Visibility.PUBLIC),
    ),
    link_types=(ZONE_LINK, MEMBER_LINK, MEMBER_OF_LINK, REVOKED_LINK),
    validate=validate,
)

__all__ = [
    "COMMUNITY_ZOME",
    "Refused",
    "cited_entry",
    "checked_membership",
    "founder_problem",
    "integrity",
    "validate",
]
