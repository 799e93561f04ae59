"""Zome functions of the profile zome."""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.profile.entries import Profile
from ioe.zomes.profile.validation import PROFILE_LINK

coordinator = CoordinatorZome("profile")


@coordinator.function
def set_profile(ctx: CallContext, payload: Any) -> ActionHash:
    """Publish ``{"name": str, "zone": str}`` as this agent's profile (replacing an older one)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        raise ZomeCallError("set_profile takes {name: str, zone: str}")
    if not isinstance(payload.get("zone"), str):
        raise ZomeCallError("set_profile takes {name: str, zone: str}")
    profile = Profile(payload["name"], payload["zone"])
    for link in ctx.get_links(ctx.agent, PROFILE_LINK):
        ctx.delete_link(link.create_action)
    action = ctx.create(profile)
    ctx.create_link(ctx.agent, action, PROFILE_LINK)
    return action


@coordinator.function
def my_profile(ctx: CallContext, payload: Any = None) -> Profile | None:
    links = ctx.get_links(ctx.agent, PROFILE_LINK)
    if not links:
        return None
    return ctx.get_value(ActionHash(links[-1].target), Profile)
