"""Integrity rules of the community zome (pure: no clock, no I/O).

A ``community`` (public) or ``private_community`` entry is valid when its charter verifies
(:func:`~ioe.zomes.community.entries.charter_problem`), its visibility matches the entry type,
and its author is an owner agent of the charter's manager keyset: the author joined the network
with an owner membership of that very keyset (its ``AgentValidationPkg``), so nobody can found a
community in someone else's name.

A ``community_zone`` link goes from the anchor of one prefix of a public community's zone
(:func:`~ioe.zomes.community.entries.zone_anchor`) to the author's own ``community`` entry.
"""

from __future__ import annotations

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import AppEntryType, CreateLink, SignedAction, Visibility
from ioe.engine.schema import decode_as
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import enrollment_record
from ioe.identity.membership import OwnerMembership, is_certificate
from ioe.zomes.community.entries import (
    COMMUNITY_ENTRY,
    PRIVATE_COMMUNITY_ENTRY,
    ZONE_LINK,
    CommunityCharter,
    CommunityEntry,
    PrivateCommunityEntry,
    checked_charter,
    zone_anchor,
    zone_prefixes,
)
from ioe.zomes.community.entries import (
    Visibility as CommunityVisibility,
)

COMMUNITY_ZOME = "community"


def founder_problem(
    charter: CommunityCharter, activity: list[SignedAction], author: AgentPubKey
) -> str | None:
    """Why ``author`` (whose chain is ``activity``) may not found ``charter``, or None."""
    found = enrollment_record(activity, author)
    if found is None or is_certificate(found[1]):
        return "a community is founded by an owner agent (a device cannot manage one)"
    try:
        membership = OwnerMembership.from_bytes(found[1])
    except EncodingError:
        return "the founder's owner membership does not decode"
    if membership.owner != author or membership.keyset.id != charter.manager.id:
        return "the founder is an owner agent of the charter's manager keyset"
    return None


def _entry_problem(op: Op, host: IntegrityHost) -> str | None:
    entry = op.app_entry
    assert isinstance(entry, CommunityEntry | PrivateCommunityEntry)
    charter = checked_charter(entry.charter)
    if isinstance(charter, str):
        return charter
    wanted = (
        CommunityVisibility.PUBLIC
        if isinstance(entry, CommunityEntry)
        else CommunityVisibility.PRIVATE
    )
    if charter.visibility != wanted:
        return f"a {charter.visibility} community is a {wanted}-type entry's charter"
    action = op.action
    activity = host.must_get_agent_activity(action.author, action.prev) if action.prev else []
    return founder_problem(charter, activity, action.author)


def _link_problem(action: CreateLink, host: IntegrityHost) -> str | None:
    if not isinstance(action.target, ActionHash):
        return "a community_zone link points at the action that founded the community"
    record = host.must_get_valid_record(action.target)
    if record.action.author != action.author or record.entry is None:
        return "a community_zone link points at the author's own community"
    public = AppEntryType(action.zome_index, 0)  # entry_defs[0]: the public community
    if record.action.entry_type != public:
        return "a community_zone link points at a public community"
    try:
        entry = decode_as(CommunityEntry, record.entry.payload)
    except EncodingError:
        return "a community_zone link points at a public community"
    charter = checked_charter(entry.charter)
    if isinstance(charter, str):
        return charter
    if action.base not in {zone_anchor(p) for p in zone_prefixes(charter.zone)}:
        return "a community_zone link goes from the anchor of a prefix of the community's zone"
    return None


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    if isinstance(op.app_entry, CommunityEntry | PrivateCommunityEntry):
        problem = _entry_problem(op, host)
        if problem:
            return Invalid(problem)
    if isinstance(action, CreateLink) and op.type in (
        OpType.STORE_RECORD,
        OpType.REGISTER_ADD_LINK,
    ):
        problem = _link_problem(action, host)
        if problem:
            return Invalid(problem)
    return VALID


integrity = IntegrityZome(
    name=COMMUNITY_ZOME,
    version="1",
    entry_defs=(
        EntryDef(COMMUNITY_ENTRY, CommunityEntry, Visibility.PUBLIC),
        EntryDef(PRIVATE_COMMUNITY_ENTRY, PrivateCommunityEntry, Visibility.PRIVATE),
    ),
    link_types=(ZONE_LINK,),
    validate=validate,
)
