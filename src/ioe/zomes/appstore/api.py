"""Zome functions of the app store zome.

A developer's node signs a manifest with the developer's agent key and calls :func:`publish`;
a community manager's node signs an installation with the manager keyset and calls
:func:`install`, then :func:`record_payment` for each subscription period it pays and
:func:`uninstall` to end it. Each refuses what validation would refuse, before anything is
written, with the same reason.
"""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.identity import wire
from ioe.zomes.appstore.entries import (
    INSTALLED_LINK,
    PAID_LINK,
    RELEASE_LINK,
    STORE_LINK,
    UNINSTALLED_LINK,
    AppInstallation,
    AppListing,
    AppManifest,
    AppUninstall,
    Installation,
    SubscriptionPayment,
    app_anchor,
    checked_manifest,
    installation_problem,
    store_anchor,
)
from ioe.zomes.community.entries import checked_charter

coordinator = CoordinatorZome("appstore")


def _bytes(payload: Any, key: str, function: str) -> bytes:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), bytes):
        raise ZomeCallError(f"{function} takes {{{key}: bytes, ...}}")
    value: bytes = payload[key]
    return value


def _action(payload: dict[str, Any], key: str) -> ActionHash:
    value = payload.get(key)
    if not isinstance(value, ActionHash):
        raise ZomeCallError(f"{key} is an action hash")
    return value


@coordinator.function
def publish(ctx: CallContext, payload: Any) -> ActionHash:
    """List ``{"manifest": bytes}`` (signed by this agent, its developer) in the store."""
    manifest = checked_manifest(_bytes(payload, "manifest", "publish"))
    if isinstance(manifest, str):
        raise ZomeCallError(manifest)
    if manifest.developer != ctx.agent:
        raise ZomeCallError("a manifest is published by the developer that signed it")
    action = ctx.create(AppListing(payload["manifest"]))
    ctx.create_link(store_anchor(), action, STORE_LINK)
    ctx.create_link(app_anchor(manifest.app), action, RELEASE_LINK)
    return action


@coordinator.function
def published(ctx: CallContext, payload: Any = None) -> list[tuple[ActionHash, AppManifest]]:
    """The manifests this agent listed, oldest first."""
    out = []
    for record in ctx.query(AppListing):
        entry = ctx.cell.entry_value(record)
        assert isinstance(entry, AppListing)
        manifest = checked_manifest(entry.manifest)
        if isinstance(manifest, AppManifest):
            out.append((record.action_hash, manifest))
    return out


@coordinator.function
def install(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"installation": bytes, "charter": bytes, "listing_at": action}`` and link it
    from the community's id. The manifest is read from ``listing_at`` (fetched first)."""
    data = _bytes(payload, "installation", "install")
    charter_bytes = _bytes(payload, "charter", "install")
    listing_at = _action(payload, "listing_at")
    try:
        installation = Installation.from_bytes(data)
    except EncodingError as exc:
        raise ZomeCallError(f"malformed installation: {exc}") from None
    charter = checked_charter(charter_bytes)
    if isinstance(charter, str):
        raise ZomeCallError(charter)
    record = ctx.get(listing_at)
    listing = None if record is None else ctx.cell.entry_value(record)
    if not isinstance(listing, AppListing):
        raise ZomeCallError(f"{listing_at.short()} is not an app listing")
    manifest = checked_manifest(listing.manifest)
    if isinstance(manifest, str):
        raise ZomeCallError(manifest)
    problem = installation_problem(installation, charter, manifest)
    if problem:
        raise ZomeCallError(problem)
    action = ctx.create(AppInstallation(data, charter_bytes, listing_at))
    ctx.create_link(installation.community, action, INSTALLED_LINK)
    return action


@coordinator.function
def installed(ctx: CallContext, payload: Any = None) -> list[tuple[ActionHash, Installation]]:
    """The installations this agent made, oldest first (ended ones included)."""
    out = []
    for record in ctx.query(AppInstallation):
        entry = ctx.cell.entry_value(record)
        assert isinstance(entry, AppInstallation)
        out.append((record.action_hash, Installation.from_bytes(entry.installation)))
    return out


@coordinator.function
def uninstall(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"installation_at": action, "reason": str}``: the installation ends now."""
    if not isinstance(payload, dict):
        raise ZomeCallError("uninstall takes {installation_at, reason?}")
    installation_at = _action(payload, "installation_at")
    reason = payload.get("reason", "")
    if not isinstance(reason, str) or wire.text_problem(reason, "a reason", allow_empty=True):
        raise ZomeCallError("an uninstall's reason is short printable text")
    action = ctx.create(AppUninstall(installation_at, reason))
    ctx.create_link(installation_at, action, UNINSTALLED_LINK)
    return action


@coordinator.function
def record_payment(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit ``{"installation_at", "transfer_at", "period"}``: the transfer at
    ``transfer_at`` pays period ``period`` of the installation's subscription."""
    if not isinstance(payload, dict) or type(payload.get("period")) is not int:
        raise ZomeCallError("record_payment takes {installation_at, transfer_at, period: int}")
    installation_at = _action(payload, "installation_at")
    paid = SubscriptionPayment(installation_at, _action(payload, "transfer_at"), payload["period"])
    action = ctx.create(paid)
    ctx.create_link(installation_at, action, PAID_LINK)
    return action
