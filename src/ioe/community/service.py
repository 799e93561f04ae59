"""Communities on a node: found one (its charter signed by this owner's keyset), show the ones
founded here, list the public communities of a zone as the network knows them, and make, change
and end memberships.

A membership of this owner's own device (or itself) is signed and committed at once. One of
another owner's member is signed by the manager here, then waits for that owner's signatures in
the background (an :class:`~ioe.community.invitation.Invitation`, alerts
``community_invitation_accepted`` / ``community_invitation_refused``); joins asked by other
owners arrive through :class:`~ioe.community.joining.JoinDesk`.

The service reaches its node through :class:`~ioe.identity.service.host.IdentityHost` (a charter
is signed as identity documents are, by M officers of an enterprise keyset where there are
several), and never imports the node.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ioe.community.errors import CommunityError
from ioe.community.invitation import MEMBER, REFUSED, Invitation, Plan
from ioe.community.join import joined_as
from ioe.community.joining import JoinDesk
from ioe.community.rules import Action, Candidate, RuleError, decide, parse_rules
from ioe.crypto.derivation import OwnerAccount
from ioe.encoding import Value
from ioe.errors import IoEError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.authority import Keyset
from ioe.identity.document import Signatures
from ioe.identity.service.directory import entry_for, in_zone
from ioe.identity.service.enrollment import DEVICES_SETTING
from ioe.identity.service.host import IdentityHost
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import (
    APPROVAL_LIFETIME_US,
    SigningError,
    sign_with_keyset,
)
from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import (
    CHARTER_CONTEXT,
    CHARTER_VERSION,
    MAX_NAME,
    MEMBER_LINK,
    MEMBERSHIP_CONTEXT,
    MEMBERSHIP_VERSION,
    REVOKED_LINK,
    ROLE_ACCESS,
    ZONE_LINK,
    Access,
    CommunityCharter,
    CommunityEntry,
    CommunityMembership,
    MemberKind,
    MembershipEntry,
    Role,
    Visibility,
    checked_charter,
    zone_anchor,
)
from ioe.zones import zone_problem

log = logging.getLogger(__name__)

COMMUNITY_ZOME = "community"
RULES_SETTING = "community.rules"
"""Each founded community's rule file (text, by community id), as ``ioe community rules`` set it."""
DECIDED_SETTING = "community.rules.decided"
"""What the rules decided for each (community, device), so a refusal is not reconsidered."""
RULES_POLL_S = 5.0
MAX_ALERTS = 200
"""Alerts kept for ``GET /v1/communities/alerts`` (the newest; each also goes out as a signal)."""
MAX_LISTED = 500
"""A directory lists at most this many communities (a zone's anchor may hold more)."""
MAX_MEMBERS = 2_000
"""A community's member list is read up to this many memberships."""
MAX_INVITATIONS = 256
"""Invitations kept at once (waiting ones, and finished ones until the approval lifetime)."""
INVITATION_TIMEOUT_S = APPROVAL_LIFETIME_US / 1_000_000
"""How long an invitation waits for the other owner: as long as its node keeps the request."""

# CommunityError is defined in ioe.community.errors (the join desk raises it too) and kept here.
__all__ = [
    "CommunityError",
    "CommunityService",
    "Listed",
    "Member",
    "access_for",
    "live_memberships",
]


@dataclass(frozen=True, slots=True)
class Listed:
    """A community as the directory shows it."""

    action: ActionHash
    charter: CommunityCharter
    members: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.charter.id.to_text(),
            "name": self.charter.name,
            "zone": self.charter.zone,
            "visibility": str(self.charter.visibility),
            "parent": None if self.charter.parent is None else self.charter.parent.to_text(),
            "manager_keyset": self.charter.manager.id.to_text(),
            "members": self.members,
            "created_us": self.charter.created_us,
            "action": self.action.to_text(),
        }


class CommunityService:
    """The node's communities (see the module docstring)."""

    def __init__(self, host: IdentityHost) -> None:
        self.host = host
        self._task: asyncio.Task[None] | None = None
        self.alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_ALERTS)
        self._members: dict[str, set[AgentPubKey]] = {}
        """Live members of the communities founded here, by community id (refreshed with the
        rules, every :data:`RULES_POLL_S`)."""
        self.invitations: dict[str, Invitation] = {}
        """Memberships of other owners' members waiting for (or given, or refused) their
        signatures, by invitation id."""
        self._background: set[asyncio.Task[None]] = set()
        self.joins = JoinDesk(self)
        """Joins: asked of this node as a manager, and asked by this owner of others."""

    def start(self) -> None:
        """Apply the communities' rules to this owner's devices as they turn up, and answer
        join requests (an owner's node only: a device neither manages nor joins by itself)."""
        if isinstance(self.host.conductor.account, OwnerAccount):
            self._task = asyncio.create_task(self._keep_applying(), name="community rules")
            self.joins.start()

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background until it ends or the node closes."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def now(self) -> int:
        return self.host.conductor.clock()

    # ------------------------------------------------------------------------------ rules

    def rules_text(self, community: str) -> str:
        self.show(community)
        stored = self.host.conductor.db.get_setting(RULES_SETTING)
        found = stored.get(community) if isinstance(stored, dict) else None
        return found if isinstance(found, str) else '{"rules": []}'

    def set_rules(self, community: str, text: str) -> int:
        """Keep ``text`` as the community's rules (checked first: :class:`RuleError`);
        returns how many rules it holds."""
        self.show(community)
        rules = parse_rules(text)
        stored = self.host.conductor.db.get_setting(RULES_SETTING)
        kept: dict[str, Value] = dict(stored) if isinstance(stored, dict) else {}
        kept[community] = text
        self.host.conductor.db.put_setting(RULES_SETTING, kept)
        return len(rules)

    async def _keep_applying(self) -> None:
        while True:
            try:
                await self.apply_rules()
                await self.refresh_members()
            except (IoEError, RuleError) as exc:
                log.info("community rules not applied: %s", exc)
            try:
                await self.joins.refresh_held()
            except IoEError as exc:
                log.info("memberships held not refreshed: %s", exc)
            await asyncio.sleep(RULES_POLL_S)

    # ------------------------------------------------------------------------------ alerts

    async def refresh_members(self) -> None:
        """Note who the live members of each community founded here are (for alerts)."""
        for listed in self.founded():
            community = listed.charter.id.to_text()
            self._members[community] = {m.membership.member for m in await self.members(community)}

    def alert(self, alert: dict[str, Any]) -> None:
        """Tell the owner: kept for ``GET /v1/community-alerts`` and sent as a signal."""
        alert = {**alert, "at_us": self.host.conductor.clock()}
        self.alerts.append(alert)
        self.host.signals.publish(alert)

    def presence(self, agent: AgentPubKey, present: bool) -> None:
        """A member of the network came or went: tell the manager when it is a member of one
        of its communities (``community_member_presence``), or a device that turned up in the
        zone of one (``community_arrival``)."""
        if not isinstance(self.host.conductor.account, OwnerAccount):
            return
        for community, members in self._members.items():
            if agent in members:
                self.alert(
                    {
                        "type": "community_member_presence",
                        "community": community,
                        "agent": agent.to_text(),
                        "present": present,
                    }
                )
        if not present:
            return
        info = self.host.dht_for(self.host.core_cell()).members().get(agent)
        entry = None if info is None else entry_for(info)
        if entry is None or entry.zone is None or entry.device_type is None:
            return
        for listed in self.founded():
            community = listed.charter.id.to_text()
            if agent in self._members.get(community, set()):
                continue
            if in_zone(entry.zone, listed.charter.zone):
                self.alert(
                    {
                        "type": "community_arrival",
                        "community": community,
                        "agent": agent.to_text(),
                        "zone": entry.zone,
                        "device_type": entry.device_type,
                        "name": entry.name,
                    }
                )

    async def apply_rules(self) -> list[tuple[str, str, str]]:
        """Decide, by each community's rules, on this owner's enrolled devices not yet decided:
        invite them, or note the refusal (``ask`` leaves them for the manager). Returns
        (community, device, action) for what was done now."""
        db = self.host.conductor.db
        stored = db.get_setting(RULES_SETTING)
        if not isinstance(stored, dict) or not stored:
            return []
        devices = [d for d in db.get_setting(DEVICES_SETTING) or [] if isinstance(d, dict)]
        decided_raw = db.get_setting(DECIDED_SETTING)
        decided: dict[str, Value] = dict(decided_raw) if isinstance(decided_raw, dict) else {}
        done = []
        for community, text in stored.items():
            if not isinstance(text, str):
                continue
            rules = parse_rules(text)
            for device in devices:
                key = f"{community} {device.get('agent')}"
                if key in decided:
                    continue
                candidate = Candidate(
                    DeviceType(str(device.get("type"))),
                    str(device.get("zone") or ""),
                    self.host.reputation.score_of(AgentPubKey.from_text(str(device["agent"]))),
                    mine=True,
                )
                decision = decide(rules, candidate)
                if decision.action is Action.ASK:
                    continue
                if decision.action is Action.INVITE:
                    assert decision.role is not None
                    try:
                        await self.add_member(
                            str(community),
                            str(device["agent"]),
                            role=decision.role.value,
                            access=[a.value for a in decision.access],
                        )
                    except CommunityError as exc:  # its chain is not on the network yet
                        log.info("rule invite of %s waits: %s", device["agent"], exc)
                        continue
                decided[key] = decision.action.value
                db.put_setting(DECIDED_SETTING, decided)
                done.append((str(community), str(device["agent"]), decision.action.value))
        return done

    async def create(
        self,
        name: str,
        zone: str,
        *,
        private: bool = False,
        parent: str | None = None,
        timeout_s: float | None = None,
    ) -> Listed:
        """Found a community managed by this owner's keyset. ``CommunityError`` for a bad name,
        zone or parent, or a node that is not an owner's."""
        conductor = self.host.conductor
        if not isinstance(conductor.account, OwnerAccount):
            raise CommunityError("a community is founded on an owner's node, not a device's")
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise CommunityError(f"a community's name is 1 to {MAX_NAME} printable characters")
        problem = zone_problem(zone)
        if problem:
            raise CommunityError(f"--zone: {problem}")
        try:
            parent_id = ExternalHash.from_text(parent) if parent else None
        except ValueError as exc:
            raise CommunityError(f"--parent is a community id: {exc}") from None
        keyset = node_keyset(conductor)
        unsigned = CommunityCharter(
            version=CHARTER_VERSION,
            name=name,
            zone=zone,
            visibility=Visibility.PRIVATE if private else Visibility.PUBLIC,
            parent=parent_id,
            manager=keyset,
            created_us=conductor.clock(),
        )
        signatures = await sign_with_keyset(
            self.host,
            CHARTER_CONTEXT,
            unsigned.message(),
            keyset=keyset,
            what=f"community {name!r} in {zone}",
            timeout_s=timeout_s,
        )
        charter = CommunityCharter(**{**_fields(unsigned), "signatures": signatures})
        cell = self.host.core_cell()
        action = self.host.call(cell, COMMUNITY_ZOME, "found", {"charter": charter.to_bytes()})
        assert isinstance(action, ActionHash)
        return Listed(action, charter, members=1)

    def founded(self) -> list[Listed]:
        """The communities founded on this node, public and private."""
        found = self.host.call(self.host.core_cell(), COMMUNITY_ZOME, "founded", None)
        assert isinstance(found, list)
        return [Listed(action, charter, members=1) for action, charter in found]

    def show(self, community: str) -> Listed:
        for listed in self.founded():
            if listed.charter.id.to_text() == community:
                return listed
        raise CommunityError(f"no community {community[:60]!r} was founded on this node")

    async def add_member(
        self,
        community: str,
        member: str,
        *,
        role: str = "member",
        access: list[str] | None = None,
        timeout_s: float | None = None,
    ) -> Member | Invitation:
        """Make ``member`` (a device's agent or an owner agent) a member of a community founded
        here, signed by the manager keyset and by the member's owner keyset. This owner's own
        devices (and itself) join at once (a :class:`Member`); another owner's member is
        invited: the manager signs now, that owner's node is asked in the background and the
        membership is committed once it signs (a pending :class:`Invitation`)."""
        plan = await self.plan(community, member, role, access)
        return await self._sign(plan, timeout_s=timeout_s)

    async def plan(self, community: str, member: str, role: str, access: list[str] | None) -> Plan:
        """The membership to sign: ``CommunityError`` for a community not founded here, a bad
        key, role or access, or a member whose chain the network does not hold yet."""
        own = self.show(community)
        try:
            agent = AgentPubKey.from_text(member)
            chosen = Role(role)
        except ValueError as exc:
            raise CommunityError(f"not a member key or role: {exc}") from None
        dht = self.host.dht_for(self.host.core_cell())
        joined = joined_as(await dht.get_agent_activity(agent), agent)
        if joined is None:
            raise CommunityError(f"{agent.short()} is not a member of this network (yet)")
        if joined.kind is MemberKind.DEVICE and chosen is Role.MANAGER:
            raise CommunityError("a device cannot manage a community")
        unsigned = CommunityMembership(
            MEMBERSHIP_VERSION,
            own.charter.id,
            agent,
            joined.kind,
            chosen,
            access_for(chosen, access),
            self.now(),
        )
        return Plan(
            own.charter.name, unsigned, own.action, joined.action, own.charter.manager,
            joined.keyset,
        )  # fmt: skip

    async def _sign(
        self, plan: Plan, *, replaces: ActionHash | None = None, timeout_s: float | None = None
    ) -> Member | Invitation:
        """The manager's signatures now; the owner's now too when this node holds them, else
        an invitation that collects them. ``replaces`` is revoked as the new one is committed."""
        manager = await self._signatures(plan, plan.manager, timeout_s)
        if plan.owner.id != node_keyset(self.host.conductor).id:
            return self._invite(plan, manager, replaces)
        owners = await self._signatures(plan, plan.owner, timeout_s)
        return self._commit(plan, manager, owners, replaces)

    async def _signatures(self, plan: Plan, keyset: Keyset, timeout_s: float | None) -> Signatures:
        try:
            return await sign_with_keyset(
                self.host, MEMBERSHIP_CONTEXT, plan.unsigned.message(), keyset=keyset,
                what=plan.what, timeout_s=timeout_s,
            )  # fmt: skip
        except SigningError as exc:
            raise CommunityError(f"the membership is not signed: {exc}") from None

    def _commit(
        self,
        plan: Plan,
        manager: Signatures,
        owners: Signatures,
        replaces: ActionHash | None = None,
    ) -> Member:
        """Commit the signed membership (after revoking the one it replaces)."""
        signed = CommunityMembership(
            **{**_fields(plan.unsigned), "manager_signatures": manager, "owner_signatures": owners}
        )
        if replaces is not None:
            self._revoke(replaces, f"replaced: now a {signed.role}")
        payload = {
            "membership": signed.to_bytes(),
            "charter_at": plan.charter_at,
            "member_joined": plan.member_joined,
        }
        action = self.host.call(self.host.core_cell(), COMMUNITY_ZOME, "add_member", payload)
        assert isinstance(action, ActionHash)
        return Member(action, signed)

    def _revoke(self, membership: ActionHash, reason: str) -> ActionHash:
        payload = {"membership_at": membership, "reason": reason}
        action = self.host.call(self.host.core_cell(), COMMUNITY_ZOME, "revoke_member", payload)
        assert isinstance(action, ActionHash)
        return action

    # ------------------------------------------------------------------------------ invitations

    def _invite(self, plan: Plan, manager: Signatures, replaces: ActionHash | None) -> Invitation:
        self._expire_invitations()
        if len(self.invitations) >= MAX_INVITATIONS:
            raise CommunityError("too many invitations waiting for their owners; try later")
        invitation = Invitation(secrets.token_hex(8), plan, manager, self.now(), replaces)
        self.invitations[invitation.id] = invitation
        self.spawn(self._collect(invitation), f"invitation {invitation.id}")
        return invitation

    async def _collect(self, invitation: Invitation) -> None:
        """Wait (bounded by the approval lifetime) for the member's owner to sign, then
        commit; the manager is told either way."""
        plan = invitation.plan
        try:
            owners = await self._signatures(plan, plan.owner, INVITATION_TIMEOUT_S)
            member = self._commit(plan, invitation.manager_signatures, owners, invitation.replaces)
        except IoEError as exc:
            invitation.state, invitation.reason = REFUSED, str(exc)
            self.alert({"type": "community_invitation_refused", **invitation.to_json()})
            return
        invitation.state, invitation.membership = MEMBER, member.action
        self.alert({"type": "community_invitation_accepted", **invitation.to_json()})

    def _expire_invitations(self) -> None:
        now = self.now()
        for key in [
            k
            for k, i in self.invitations.items()
            if i.finished and now - i.started_us > APPROVAL_LIFETIME_US
        ]:
            del self.invitations[key]

    def listed_invitations(self) -> list[dict[str, Any]]:
        self._expire_invitations()
        return [i.to_json() for i in self.invitations.values()]

    # ------------------------------------------------------------------------------ roles

    async def change_role(
        self,
        community: str,
        member: str,
        role: str,
        access: list[str] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Member | Invitation:
        """Give a member a new membership with ``role``. Lowering (no access it did not have)
        revokes the old membership at once, then signs and commits the new one (another
        owner's node signs that without asking: it is within what it already gave). Raising
        collects the signatures first and revokes the old one only as the new is committed."""
        current = await self.membership_of(community, member)
        plan = await self.plan(community, member, role, access)
        old, new = current.membership, plan.unsigned
        if (old.role, old.access) == (new.role, new.access):
            raise CommunityError(f"{member[:60]} is already a {new.role} with that access")
        if set(new.access) <= set(old.access):
            self._revoke(current.action, f"role lowered to {new.role}")
            return await self._sign(plan, timeout_s=timeout_s)
        return await self._sign(plan, replaces=current.action, timeout_s=timeout_s)

    async def membership_of(self, community: str, member: str) -> Member:
        for found in await self.members(community):
            if found.membership.member.to_text() == member:
                return found
        raise CommunityError(f"{member[:60]!r} is no member of {community[:60]!r}")

    async def members(self, community: str) -> list[Member]:
        """The live memberships of a community, as the network holds them."""
        try:
            community_id = ExternalHash.from_text(community)
        except ValueError as exc:
            raise CommunityError(f"not a community id: {exc}") from None
        live = await live_memberships(self.host, community_id, MEMBER_LINK)
        found = [Member(action, membership) for action, membership in live]
        return sorted(found, key=lambda m: (m.membership.role, m.membership.member))

    async def remove_member(self, community: str, member: str, reason: str = "") -> ActionHash:
        """End ``member``'s membership (as the community's manager, or as the member's owner:
        then this node no longer signs a lower role of it without asking)."""
        found = await self.membership_of(community, member)
        self.joins.forget_held(found.membership.community, found.membership.member)
        return self._revoke(found.action, reason)

    async def charter(self, community: str) -> Listed:
        """A community by id: founded here, or public (its charter from the directory)."""
        for listed in self.founded():
            if listed.charter.id.to_text() == community:
                return listed
        for action, charter in await self._public(""):
            if charter.id.to_text() == community:
                return Listed(action, charter, members=1)
        raise CommunityError(f"no community {community[:60]!r} is known on the network")

    async def directory(self, zone: str = "") -> list[Listed]:
        """The public communities in ``zone`` and below ("" for all), as the network knows
        them; this node's own private ones are listed too (it is their manager)."""
        if zone:
            problem = zone_problem(zone)
            if problem:
                raise CommunityError(f"--zone: {problem}")
        listed: dict[ExternalHash, Listed] = {}
        for action, charter in await self._public(zone):
            members = await self.members(charter.id.to_text())
            listed[charter.id] = Listed(action, charter, members=1 + len(members))
        for own in self.founded():
            in_zone = own.charter.zone == zone or own.charter.zone.startswith(zone + "/")
            if own.charter.visibility is Visibility.PRIVATE and (not zone or in_zone):
                listed.setdefault(own.charter.id, own)
        return sorted(listed.values(), key=lambda item: (item.charter.zone, item.charter.name))

    async def _public(self, zone: str) -> list[tuple[ActionHash, CommunityCharter]]:
        """The valid public charters linked from ``zone``'s anchor, each once."""
        dht = self.host.dht_for(self.host.core_cell())
        links = await dht.get_links(zone_anchor(zone), ZONE_LINK)
        found: dict[ExternalHash, tuple[ActionHash, CommunityCharter]] = {}
        for link in links[:MAX_LISTED]:
            if not isinstance(link.target, ActionHash):
                continue
            record = await dht.get_record(link.target)
            if record is None or record.entry is None:
                continue
            entry = self.host.core_cell().entry_value(record)
            if not isinstance(entry, CommunityEntry):
                continue
            charter = checked_charter(entry.charter)
            if isinstance(charter, CommunityCharter) and charter.id not in found:
                found[charter.id] = (link.target, charter)
        return list(found.values())


def _fields(document: Any) -> dict[str, Any]:
    return {name: getattr(document, name) for name in type(document).__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Member:
    """A live membership as the network holds it."""

    action: ActionHash
    membership: CommunityMembership

    def to_json(self) -> dict[str, Any]:
        m = self.membership
        return {
            "agent": m.member.to_text(),
            "kind": str(m.kind),
            "role": str(m.role),
            "access": [str(a) for a in m.access],
            "since_us": m.issued_us,
            "membership": self.action.to_text(),
        }


async def live_memberships(
    host: IdentityHost, base: ExternalHash | AgentPubKey, link: str
) -> list[tuple[ActionHash, CommunityMembership]]:
    """The unrevoked memberships linked from ``base`` (a community's id with
    ``community_member``, a member's key with ``member_of``), as the network holds them."""
    cell = host.core_cell()
    dht = host.dht_for(cell)
    found = []
    for item in (await dht.get_links(base, link))[:MAX_MEMBERS]:
        if not isinstance(item.target, ActionHash):
            continue
        record = await dht.get_record(item.target)
        entry = None if record is None else cell.entry_value(record)
        if not isinstance(entry, MembershipEntry):
            continue
        if await dht.get_links(item.target, REVOKED_LINK):
            continue
        found.append((item.target, CommunityMembership.from_bytes(entry.membership)))
    return found


def access_for(role: Role, access: list[str] | None) -> tuple[Access, ...]:
    """The access levels asked for (default: all the role allows), checked against the role."""
    wanted = set(ROLE_ACCESS[role]) if access is None else set()
    for name in access or ():
        try:
            wanted.add(Access(name))
        except ValueError:
            raise CommunityError(f"unknown access level {name!r} (see, control, trade)") from None
    extra = wanted - ROLE_ACCESS[role]
    if extra:
        raise CommunityError(f"a {role} may not be given {', '.join(sorted(extra))}")
    return tuple(sorted(wanted))
