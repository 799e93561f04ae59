"""Access is enforced, not displayed: a device's memberships become capability grants.

A device that is a member of a community keeps, on its own chain, one *assigned* grant per
community and access level it gave: *see* opens ``device.describe`` and ``device.read``,
*control* opens ``device.write`` — each to exactly the community's members (and its founder)
who hold that same level themselves. Nothing else confers control. When a membership ends or
changes, the grants follow at the device's next look (:data:`POLL_S`): stale ones are revoked,
new ones made.

An assigned grant admits only its named agents, whose calls are signed; its secret
(:func:`community_secret`) is derived from the community and the device, so every member can
present it without anyone handing it out — it names the grant, the assignee list guards it.

:func:`desired_grants` is the pure rule; :class:`CommunityAccess` applies it on a device node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ioe.community.grant_secret import community_secret
from ioe.community.service import live_memberships
from ioe.engine.capability import CapAccess, CapGrant, secret_hash
from ioe.errors import IoEError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.service.host import IdentityHost
from ioe.zomes.community.entries import (
    MEMBER_LINK,
    MEMBER_OF_LINK,
    Access,
    CommunityMembership,
)

log = logging.getLogger(__name__)

POLL_S = 2.0
TAG_PREFIX = "community "
FUNCTIONS: Mapping[Access, tuple[str, ...]] = {
    Access.SEE: ("device.describe", "device.read"),
    Access.CONTROL: ("device.write",),
}
"""What each access level opens on a member device (trade acts in markets, not on the device)."""
MAX_MEMBERS_READ = 256


@dataclass(frozen=True, slots=True)
class Wanted:
    """One grant a device should hold."""

    tag: str
    functions: tuple[str, ...]
    assignees: tuple[AgentPubKey, ...]
    secret: bytes

    def matches(self, grant: CapGrant) -> bool:
        return (
            grant.tag == self.tag
            and grant.access is CapAccess.ASSIGNED
            and grant.functions == self.functions
            and set(grant.assignees) == set(self.assignees)
            and grant.secret_hash == secret_hash(self.secret)
        )


def desired_grants(
    device: AgentPubKey,
    own: Iterable[CommunityMembership],
    members: Mapping[ExternalHash, Iterable[CommunityMembership]],
    founders: Mapping[ExternalHash, AgentPubKey],
) -> dict[str, Wanted]:
    """The grants ``device`` should hold, by tag: for each of its live memberships ``own`` and
    each level it gave that opens device functions, one grant to the community's live
    ``members`` holding that level (itself excepted) and its founder."""
    wanted: dict[str, Wanted] = {}
    for membership in own:
        community = membership.community
        for level in membership.access:
            functions = FUNCTIONS.get(level)
            if functions is None:
                continue
            holders = {
                m.member
                for m in members.get(community, ())
                if level in m.access and m.member != device
            }
            if community in founders:
                holders.add(founders[community])
            if not holders:
                continue
            tag = f"{TAG_PREFIX}{community.to_text()[:40]} {level}"
            wanted[tag] = Wanted(
                tag, functions, tuple(sorted(holders)), community_secret(community, device)
            )
    return wanted


class CommunityAccess:
    """Keeps a device node's grants in step with its memberships (module docstring)."""

    def __init__(self, host: IdentityHost, poll_s: float = POLL_S) -> None:
        self.host = host
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="community access")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except (IoEError, OSError) as exc:
                log.info("community access not brought up to date: %s", exc)
            await asyncio.sleep(self.poll_s)

    async def reconcile(self) -> None:
        """Look at this device's memberships once and revoke or make grants to match."""
        cell = self.host.core_cell()
        dht = self.host.dht_for(cell)
        own = [
            m
            for _, m in await live_memberships(self.host, cell.agent, MEMBER_OF_LINK)
            if m.member == cell.agent
        ]
        members: dict[ExternalHash, list[CommunityMembership]] = {}
        founders: dict[ExternalHash, AgentPubKey] = {}
        for membership in own:
            community = membership.community
            live = await live_memberships(self.host, community, MEMBER_LINK)
            members[community] = [m for _, m in live]
            for action, _ in live[:1]:  # the manager's record: its author founded the community
                record = await dht.get_record(action)
                if record is not None:
                    founders[community] = record.action.author
        wanted = desired_grants(cell.agent, own, members, founders)
        grants = self.host.call(cell, "capability", "list_grants", None)
        assert isinstance(grants, dict)
        held: dict[str, tuple[ActionHash, CapGrant]] = {}
        for action, grant in grants.items():
            if not grant.tag.startswith(TAG_PREFIX):
                continue
            want = wanted.get(grant.tag)
            if want is None or not want.matches(grant) or grant.tag in held:
                self.host.call(cell, "capability", "revoke", action)
                log.info("revoked %s", grant.tag)
            else:
                held[grant.tag] = (action, grant)
        for tag, want in wanted.items():
            if tag not in held:
                self.host.call(
                    cell,
                    "capability",
                    "grant",
                    {
                        "tag": want.tag,
                        "access": "assigned",
                        "functions": list(want.functions),
                        "assignees": list(want.assignees),
                        "secret": want.secret,
                    },
                )
                log.info("granted %s to %d member(s)", tag, len(want.assignees))
