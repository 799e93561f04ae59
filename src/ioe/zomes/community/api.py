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
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.community.entries import (
    ZONE_LINK,
    CommunityCharter,
    CommunityEntry,
    PrivateCommunityEntry,
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
