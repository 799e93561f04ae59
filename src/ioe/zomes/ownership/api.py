"""Zome functions of the ownership zome."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
C_co = TypeVar("C_co", covariant=True)
E = TypeVar("E")


class _Checks(Protocol[C_co]):
    def checked(self) -> C_co | str: ...


def _publish(
    ctx: CallContext,
    function: str,
    make: Callable[[], _Checks[C_co]],
    what: str,
    linked: Callable[[C_co], tuple[AgentPubKey, str]],
) -> ActionHash:
    """Commit the entry ``make`` builds from the payload, once its documents verify, and link
    it from the key it is about (``linked``: that key and the link type)."""
    try:
        entry = make()
    except (KeyError, TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"{function}: bad payload: {exc}") from None
    checked = entry.checked()
    if isinstance(checked, str):
        raise ZomeCallError(f"not a valid {what}: {checked}")
    base, link_type = linked(checked)
    action = ctx.create(entry)
    ctx.create_link(base, action, link_type)
    return action


def _wire_forms(
    ctx: CallContext,
    function: str,
    payload: Any,
    link: tuple[str, type[E]],
    read: Callable[[E], bytes],
) -> list[bytes]:
    """The wire forms of the entries this chain linked from agent ``payload`` (key bytes) with
    ``link`` (its type, and the entry class it points at)."""
    try:
        agent = AgentPubKey(bytes(payload))
    except (TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"{function} takes an agent key: {exc}") from None
    link_type, cls = link
    found = []
    for item in ctx.get_links(agent, link_type):
        entry = ctx.get_value(ActionHash(item.target), cls)
        if entry is not None:
            found.append(read(entry))
    return found


@coordinator.function
def revoke(ctx: CallContext, payload: Any) -> ActionHash:
    """Publish ``{"revocation", "certificate", "enrolled_at", "keyset_changes"?}`` (wire bytes;
    ``enrolled_at`` the revoked key's ``AgentValidationPkg`` action hash, as bytes) and link it
    from the revoked key. Validation refuses it unless this agent owns the revoked device."""
    if not isinstance(payload, dict):
        raise ZomeCallError("revoke takes {revocation, certificate, enrolled_at, keyset_changes?}")
    return _publish(
        ctx,
        "revoke",
        lambda: KeyRevocationEntry(
            bytes(payload["revocation"]),
            bytes(payload["certificate"]),
            ActionHash(bytes(payload["enrolled_at"])),
            tuple(bytes(c) for c in payload.get("keyset_changes") or ()),
        ),
        "revocation",
        lambda checked: (checked.revocation.revoked, REVOCATION_LINK),
    )


@coordinator.function
def revocations_of(ctx: CallContext, payload: Any) -> list[bytes]:
    """The wire forms of the revocations of agent ``payload`` (its key bytes) this chain made.
    (Revocations by anyone, from the network: the node's ``/v1/revocations/{agent}``.)"""
    link = (REVOCATION_LINK, KeyRevocationEntry)
    return _wire_forms(ctx, "revocations_of", payload, link, lambda e: e.revocation)


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
    return _publish(
        ctx,
        "record_transfer",
        lambda: KeyTransferEntry(
            bytes(payload["transfer"]),
            bytes(payload["old_certificate"]),
            bytes(payload["new_certificate"]),
            ActionHash(bytes(payload["old_enrolled_at"])),
            tuple(bytes(c) for c in payload.get("old_keyset_changes") or ()),
        ),
        "transfer",
        lambda checked: (checked.transfer.old_device, TRANSFER_LINK),
    )


@coordinator.function
def transfers_of(ctx: CallContext, payload: Any) -> list[bytes]:
    """The wire forms of the transfers of old key ``payload`` (its key bytes) this chain made."""
    link = (TRANSFER_LINK, KeyTransferEntry)
    return _wire_forms(ctx, "transfers_of", payload, link, lambda e: e.transfer)
