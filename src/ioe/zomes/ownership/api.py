"""Zome functions of the ownership zome."""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.ownership.entries import (
    REVOCATION_LINK,
    TRANSFER_LINK,
    KeyRevocationEntry,
    KeyTransferEntry,
)
from ioe.zomes.ownership.validation import OWNERSHIP_ZOME

coordinator = CoordinatorZome(OWNERSHIP_ZOME)


@coordinator.function
def revoke(ctx: CallContext, payload: Any) -> ActionHash:
    """Publish ``{"revocation", "certificate", "enrolled_at", "keyset_changes"?}`` (wire bytes;
    ``enrolled_at`` the revoked key's ``AgentValidationPkg`` action hash, as bytes) and link it
    from the revoked key. Validation refuses it unless this agent owns the revoked device."""
    if not isinstance(payload, dict):
        raise ZomeCallError("revoke takes {revocation, certificate, enrolled_at, keyset_changes?}")
    try:
        entry = KeyRevocationEntry(
            bytes(payload["revocation"]),
            bytes(payload["certificate"]),
            ActionHash(bytes(payload["enrolled_at"])),
            tuple(bytes(c) for c in payload.get("keyset_changes") or ()),
        )
    except (KeyError, TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"revoke: bad payload: {exc}") from None
    checked = entry.checked()
    if isinstance(checked, str):
        raise ZomeCallError(f"not a valid revocation: {checked}")
    action = ctx.create(entry)
    ctx.create_link(checked.revocation.revoked, action, REVOCATION_LINK)
    return action


@coordinator.function
def revocations_of(ctx: CallContext, payload: Any) -> list[bytes]:
    """The wire forms of the revocations of agent ``payload`` (its key bytes) this chain made.
    (Revocations by anyone, from the network: the node's ``/v1/revocations/{agent}``.)"""
    try:
        agent = AgentPubKey(bytes(payload))
    except (TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"revocations_of takes an agent key: {exc}") from None
    found = []
    for link in ctx.get_links(agent, REVOCATION_LINK):
        entry = ctx.get_value(ActionHash(link.target), KeyRevocationEntry)
        if entry is not None:
            found.append(entry.revocation)
    return found


@coordinator.function
def record_transfer(ctx: CallContext, payload: Any) -> ActionHash:
    """Publish ``{"transfer", "old_certificate", "new_certificate", "old_enrolled_at",
    "old_keyset_changes"?}`` (wire bytes; ``old_enrolled_at`` the old key's
    ``AgentValidationPkg`` action hash) and link it from the old device key. Validation refuses
    it unless both keysets signed and this agent is the old or the new owner agent."""
    if not isinstance(payload, dict):
        raise ZomeCallError(
            "record_transfer takes {transfer, old_certificate, new_certificate, old_enrolled_at}"
        )
    try:
        entry = KeyTransferEntry(
            bytes(payload["transfer"]),
            bytes(payload["old_certificate"]),
            bytes(payload["new_certificate"]),
            ActionHash(bytes(payload["old_enrolled_at"])),
            tuple(bytes(c) for c in payload.get("old_keyset_changes") or ()),
        )
    except (KeyError, TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"record_transfer: bad payload: {exc}") from None
    checked = entry.checked()
    if isinstance(checked, str):
        raise ZomeCallError(f"not a valid transfer: {checked}")
    action = ctx.create(entry)
    ctx.create_link(checked.transfer.old_device, action, TRANSFER_LINK)
    return action


@coordinator.function
def transfers_of(ctx: CallContext, payload: Any) -> list[bytes]:
    """The wire forms of the transfers of old key ``payload`` (its key bytes) this chain made."""
    try:
        agent = AgentPubKey(bytes(payload))
    except (TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"transfers_of takes an agent key: {exc}") from None
    found = []
    for link in ctx.get_links(agent, TRANSFER_LINK):
        entry = ctx.get_value(ActionHash(link.target), KeyTransferEntry)
        if entry is not None:
            found.append(entry.transfer)
    return found
