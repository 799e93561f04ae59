"""Zome functions of the community zome.

A node founds a community by signing its charter with its keyset (``ioe.community.service``)
and calling :func:`found` with the signed charter's bytes: a public one is committed and linked
from the anchor of every prefix of its zone (how the directory finds it); a private one stays on
this chain.
"""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.community.entries import (
    MEMBER_LINK,
    MEMBER_OF_LINK,
    REVOKED_LINK,
    ZONE_LINK,
    CommunityCharter,
    CommunityEntry,
    CommunityMembership,
    MembershipEntry,
    MembershipRevocation,
    PrivateCommunityEntry,
    PrivateMembershipEntry,
    Visibility,
    checked_charter,
    zone_anchor,
    zone_prefixes,
)

coordinator = CoordinatorZome("community")


@coordinator.function
def found(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"charter": bytes}`` (signed by this owner's keyset): the community's founding
    record. Refused if the charter does not verify."""
    if not isinstance(payload, dict) or not isinstance(payload.get("charter"), bytes):
        raise ZomeCallError("found takes {charter: bytes}")
    charter = checked_charter(payload["charter"])
    if isinstance(charter, str):
        raise ZomeCallError(charter)
    if charter.visibility is Visibility.PRIVATE:
        return ctx.create(PrivateCommunityEntry(payload["charter"]))
    action = ctx.create(CommunityEntry(payload["charter"]))
    for prefix in zone_prefixes(charter.zone):
        ctx.create_link(zone_anchor(prefix), action, ZONE_LINK)
    return action


@coordinator.function
def founded(ctx: CallContext, payload: Any = None) -> list[tuple[ActionHash, CommunityCharter]]:
    """The communities this agent founded (public and private), oldest first."""
    out = []
    for cls in (CommunityEntry, PrivateCommunityEntry):
        for record in ctx.query(cls):
            entry = ctx.cell.entry_value(record)
            assert isinstance(entry, CommunityEntry | PrivateCommunityEntry)
            charter = checked_charter(entry.charter)
            if isinstance(charter, CommunityCharter):
                out.append((record.action_hash, charter))
    return sorted(out, key=lambda item: item[1].created_us)


@coordinator.function
def add_member(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"membership": bytes, "charter_at": action, "member_joined": action}`` (signed
    by the manager and the member's owner) as this manager's record; a membership of a public
    community is linked from the community's id and from the member's key."""
    if not isinstance(payload, dict) or not isinstance(payload.get("membership"), bytes):
        raise ZomeCallError("add_member takes {membership: bytes, charter_at, member_joined}")
    charter_at, joined = payload.get("charter_at"), payload.get("member_joined")
    if not isinstance(charter_at, ActionHash) or not isinstance(joined, ActionHash):
        raise ZomeCallError("charter_at and member_joined are action hashes")
    try:
        CommunityMembership.from_bytes(payload["membership"])
    except EncodingError as exc:
        raise ZomeCallError(f"malformed membership: {exc}") from None
    founded = ctx.get(charter_at)
    public_type = ctx.dna.entry_type_for(CommunityEntry)[0]
    if founded is None or founded.action.entry_type != public_type:
        entry: MembershipEntry | PrivateMembershipEntry = PrivateMembershipEntry(
            payload["membership"], charter_at, joined
        )
        return ctx.create(entry)
    membership = CommunityMembership.from_bytes(payload["membership"])
    action = ctx.create(MembershipEntry(payload["membership"], charter_at, joined))
    ctx.create_link(membership.community, action, MEMBER_LINK)
    ctx.create_link(membership.member, action, MEMBER_OF_LINK)
    return action


@coordinator.function
def revoke_member(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"membership_at": action, "reason": str}``: the membership ends now."""
    if not isinstance(payload, dict) or not isinstance(payload.get("membership_at"), ActionHash):
        raise ZomeCallError("revoke_member takes {membership_at: action hash, reason?}")
    reason = payload.get("reason", "")
    if not isinstance(reason, str):
        raise ZomeCallError("a revocation's reason is text")
    action = ctx.create(MembershipRevocation(payload["membership_at"], reason))
    ctx.create_link(payload["membership_at"], action, REVOKED_LINK)
    return action
