"""Joins between owners: both ends of ``/ioe/community-join/1`` (:mod:`ioe.community.join` has
the message and every rule; this module does the I/O).

**The manager's node** answers join requests for the communities founded on it. A request that
is refused as such (see :mod:`ioe.community.join`) is answered with the reason and nothing is
kept. Otherwise the community's rules judge the device (``mine`` is false: it is another
owner's): ``invite`` starts an invitation (the manager signs, the owner's node is asked for its
signatures), ``refuse`` answers with the rule's reason, ``ask`` (and any person, and a
community without rules) keeps the request for the manager (alert ``community_join_request``;
``ioe community requests``, ``accept``, ``refuse``). Requests live in memory for the approval
lifetime; the requester re-sends the same request to learn how it ends.

**The member's owner's node** sends the join, follows it until it ends, and signs the
membership that comes back without asking its human when :func:`~ioe.community.join.
auto_approval` says so (the hook :attr:`KeysetSigning.auto_approve
<ioe.identity.service.keyset_signing.KeysetSigning.auto_approve>`). It also lists the
membership approvals its human has to decide, and keeps the memberships its members hold (read
from the network every few seconds) so a lowered role is signed at once.

**Finding the manager's node**: the charter names the manager keyset; the nodes whose owner
membership lists one of its signers are its officers' (as for keyset signing,
:func:`~ioe.identity.service.keyset_signing.officer_peers`). Each is asked; the one that founded
the community answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from typing import TYPE_CHECKING, Any

from ioe.community.errors import CommunityError
from ioe.community.invitation import Invitation
from ioe.community.join import (
    ASKED,
    ID_BYTES,
    INVITING,
    JOIN_PROTOCOL,
    MAX_REASON,
    MEMBER,
    REFUSED,
    Held,
    JoinAnswer,
    JoinAsk,
    JoinRefused,
    JoinRequest,
    PendingJoin,
    accepted_terms,
    auto_approval,
    candidate_for,
    held_of,
    join_message,
    join_problem,
    joined_as,
    membership_in,
    offered,
    open_join,
    read_answer,
)
from ioe.community.rules import Action, Decision, Rule, RuleError, decide, parse_rules
from ioe.crypto.derivation import OwnerAccount
from ioe.encoding import decode, encode
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.authority import Keyset
from ioe.identity.service.enrollment import DEVICES_SETTING
from ioe.identity.service.host import IdentityHost
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import (
    APPROVAL_LIFETIME_US,
    DOCUMENT_KINDS,
    SigningRequest,
    officer_peers,
)
from ioe.net.interface import NetworkError, PeerId
from ioe.zomes.community.entries import (
    MEMBER_OF_LINK,
    MEMBERSHIP_CONTEXT,
    REVOKED_LINK,
    ROLE_ACCESS,
    Access,
    CommunityMembership,
    MemberKind,
    MembershipEntry,
    Role,
)

if TYPE_CHECKING:
    from ioe.community.service import CommunityService, Listed, Member

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0
"""How long one manager node has to answer (it may fetch the member's chain first)."""
JOIN_WAIT_S = 20.0
"""How long ``join`` waits by default for the signatures of an invitation the rules made."""
WAIT_STEP_S = 0.25
FOLLOW_POLL_S = 1.0
"""How often a join under way is asked about again (while the manager has to decide: 5x)."""
MAX_FOLLOW_ROUNDS = int(APPROVAL_LIFETIME_US / 1_000_000 / FOLLOW_POLL_S)
MAX_JOIN_REQUESTS = 64
"""Join requests a manager's node keeps at once (the newest are refused beyond it)."""
MAX_JOINS = 64
"""Joins an owner's node follows at once."""
MAX_REPLY_BYTES = 4096
MAX_HELD_PER_MEMBER = 64
"""Memberships read per member when the held ones are refreshed."""
MEMBERSHIP_KIND = DOCUMENT_KINDS[MEMBERSHIP_CONTEXT]


class JoinDesk:
    """Join requests and membership approvals of one owner's node (module docstring)."""

    def __init__(self, communities: CommunityService) -> None:
        self.communities = communities
        self.requests: dict[str, JoinRequest] = {}
        """Join requests received as a manager, by id."""
        self.joins: dict[str, PendingJoin] = {}
        """Joins this owner asked for, by id."""
        self.held: list[Held] = []
        """Memberships this owner's members hold (or held until the manager revoked them)."""

    @property
    def host(self) -> IdentityHost:
        return self.communities.host

    def start(self) -> None:
        self.host.network.set_handler(JOIN_PROTOCOL, self._handle)
        self.host.keyset_signing.auto_approve = self.auto_approve

    def _now(self) -> int:
        return self.host.conductor.clock()

    def _expire(self) -> None:
        now = self._now()
        for key in [
            k for k, r in self.requests.items() if now - r.received_us > APPROVAL_LIFETIME_US
        ]:
            del self.requests[key]
        for key in [k for k, j in self.joins.items() if now - j.started_us > APPROVAL_LIFETIME_US]:
            del self.joins[key]

    # ------------------------------------------------------------------------------ manager side

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            return encode({"ok": (await self.receive(data)).to_value()})
        except JoinRefused as exc:
            log.info("join request from %s refused: %s", peer, exc)
            return encode({"error": str(exc)})

    async def receive(self, data: bytes) -> JoinAnswer:
        """A join request arrived: answer how it stands (deciding it when it is new);
        :class:`JoinRefused` for one refused as such, which leaves nothing behind."""
        ask = open_join(data, self._now())
        self._expire()
        known = self.requests.get(ask.id)
        if known is not None:
            if (known.ask.requester, known.ask.community, known.ask.member) != (
                ask.requester, ask.community, ask.member,
            ):  # fmt: skip
                raise JoinRefused("this request id was used for another join")
            return known.answer()
        founded = {listed.charter.id: listed for listed in self.communities.founded()}
        joined = None
        if ask.community in founded:  # no network look-up for a community not managed here
            dht = self.host.dht_for(self.host.core_cell())
            joined = joined_as(await dht.get_agent_activity(ask.member), ask.member)
        problem = join_problem(ask, founded, joined)
        if problem is not None:
            raise JoinRefused(problem)
        assert joined is not None
        listed = founded[ask.community]
        current = await self._live_membership(listed, ask.member)
        if current is not None:
            m = current.membership
            return JoinAnswer(
                MEMBER, "already a member", str(m.role), tuple(str(a) for a in m.access),
                current.action,
            )  # fmt: skip
        if len(self.requests) >= MAX_JOIN_REQUESTS:
            raise JoinRefused("too many join requests waiting here; try again later")
        request = JoinRequest(ask, joined, self._now())
        self.requests[request.id] = request
        self._decide(listed, request)
        return request.answer()

    async def _live_membership(self, listed: Listed, member: AgentPubKey) -> Member | None:
        try:
            return await self.communities.membership_of(
                listed.charter.id.to_text(), member.to_text()
            )
        except CommunityError:
            return None

    def _rules(self, community: str) -> list[Rule]:
        try:
            return parse_rules(self.communities.rules_text(community))
        except (RuleError, CommunityError) as exc:  # kept rules were checked; be safe anyway
            log.warning("the rules of %s are not usable: %s", community, exc)
            return []

    def _decide(self, listed: Listed, request: JoinRequest) -> None:
        """Judge a new request by the community's rules (see the module docstring)."""
        score = self.host.reputation.score_of(request.ask.member)
        candidate = candidate_for(request.joined, score)
        rules = self._rules(listed.charter.id.to_text())
        decision = decide(rules, candidate) if candidate is not None else Decision(Action.ASK)
        if decision.action is Action.REFUSE:
            request.state, request.reason = REFUSED, decision.refusal()
        elif decision.action is Action.INVITE:
            terms = offered(decision, request.ask)
            if isinstance(terms, str):
                request.state, request.reason = REFUSED, terms
            else:
                self._invite(request, *terms)
        else:
            self.communities.alert({**request.to_json(), "type": "community_join_request"})

    def _invite(self, request: JoinRequest, role: Role, access: tuple[Access, ...]) -> None:
        request.state, request.role, request.access = INVITING, role, access
        self.communities.spawn(self._invite_now(request), f"join {request.id}")

    async def _invite_now(self, request: JoinRequest) -> None:
        assert request.role is not None
        try:
            made = await self.communities.add_member(
                request.ask.community.to_text(),
                request.ask.member.to_text(),
                role=request.role.value,
                access=[a.value for a in request.access],
            )
        except CommunityError as exc:
            request.state, request.reason = REFUSED, str(exc)
            return
        if isinstance(made, Invitation):
            request.invitation = made
        else:  # the manager's own member, who asked over the network all the same
            request.state, request.membership = MEMBER, made.action

    # ------------------------------------------------------------------------------ deciding

    def listing(self) -> dict[str, Any]:
        """What waits for someone: join requests (as a manager), invitations of other owners'
        members, membership approvals (as a member's owner), joins asked, memberships held."""
        self._expire()
        approvals = [
            a
            for a in self.host.keyset_signing.pending()
            if a["document"].get("kind") == MEMBERSHIP_KIND
        ]
        return {
            "join_requests": [r.to_json() for r in self.requests.values()],
            "invitations": self.communities.listed_invitations(),
            "approvals": approvals,
            "joins": [j.to_json() for j in self.joins.values()],
            "memberships": [h.to_json() for h in self.held],
        }

    def accept(self, request_id: str, role: str | None = None) -> dict[str, Any]:
        """Accept a join request (invite with ``role``, default the role asked for, else
        member) or sign a membership approval."""
        request = self._open_request(request_id)
        if request is None:
            if role:
                raise CommunityError("--role is for join requests; an approval signs as asked")
            return self._decide_approval(request_id, True)
        try:
            chosen = Role(role) if role else (request.ask.role or Role.MEMBER)
        except ValueError:
            raise CommunityError(f"unknown role {role!r}") from None
        terms = accepted_terms(chosen, request.ask.allowed)
        if isinstance(terms, str):
            raise CommunityError(terms)
        self._invite(request, *terms)
        return request.to_json()

    def refuse(self, request_id: str, reason: str = "") -> dict[str, Any]:
        """Refuse a join request (the requester is told ``reason``) or a membership approval."""
        request = self._open_request(request_id)
        if request is None:
            return self._decide_approval(request_id, False)
        clean = "".join(c for c in reason if c.isprintable())[:MAX_REASON]
        request.state, request.reason = REFUSED, clean or "refused by the community's manager"
        return request.to_json()

    def _open_request(self, request_id: str) -> JoinRequest | None:
        """The join request ``request_id`` if it is one (it must still wait for a decision)."""
        self._expire()
        request = self.requests.get(request_id.strip().lower())
        if request is not None and request.current()[0] != ASKED:
            raise CommunityError(f"join request {request.id} was already {request.current()[0]}")
        return request

    def _decide_approval(self, approval_id: str, approve: bool) -> dict[str, Any]:
        signing = self.host.keyset_signing
        approval = signing.approvals.get(approval_id.strip().lower())
        if approval is None or approval.request.context != MEMBERSHIP_CONTEXT:
            raise CommunityError(
                f"no join request or membership approval {approval_id[:40]!r} "
                "(see ioe community requests)"
            )
        try:
            return signing.decide(approval.id, approve)
        except IoEError as exc:
            raise CommunityError(str(exc)) from None

    # ------------------------------------------------------------------------------ owner side

    def _account(self) -> OwnerAccount:
        account = self.host.conductor.account
        if not isinstance(account, OwnerAccount):
            raise CommunityError("an owner's node asks to join, not a device's")
        return account

    def _own_member(self, device: str | None) -> tuple[AgentPubKey, MemberKind]:
        if device is None:
            return self._account().agent_key().agent, MemberKind.PERSON
        enrolled = self.host.conductor.db.get_setting(DEVICES_SETTING) or []
        if not any(isinstance(d, dict) and d.get("agent") == device for d in enrolled):
            raise CommunityError(f"{device[:60]!r} is not a device this owner enrolled")
        return AgentPubKey.from_text(device), MemberKind.DEVICE

    async def join(
        self,
        community: str,
        *,
        device: str | None = None,
        role: str | None = None,
        allow: list[str] | None = None,
        timeout_s: float = JOIN_WAIT_S,
    ) -> dict[str, Any]:
        """Ask the community's manager that ``device`` (default: this owner, as a person) join
        it, allowing ``allow`` (default: all ``role`` may be given); wait up to ``timeout_s``
        while signatures are under way. ``CommunityError`` for what is wrong here (an unknown
        community or device, a manager that cannot be reached); a refusal is an answer."""
        account = self._account()
        member, kind = self._own_member(device)
        asked = _asked_role(role)
        allowed = _allowed(allow, asked)
        listed = await self.communities.charter(community)
        if listed.charter.manager.id == node_keyset(self.host.conductor).id:
            raise CommunityError("this owner manages that community: use ioe community invite")
        self._expire()
        if len(self.joins) >= MAX_JOINS:
            raise CommunityError("too many joins under way; try again later")
        now = self._now()
        ask = JoinAsk(
            secrets.token_bytes(ID_BYTES), account.agent_key().agent, listed.charter.id, member,
            asked, allowed, now,
        )  # fmt: skip
        pending = PendingJoin(ask, kind, listed.charter.name, now)
        self.joins[pending.id] = pending  # before asking: the membership may come back at once
        result = await self._ask(pending, listed.charter.manager)
        if not isinstance(result, JoinAnswer):
            del self.joins[pending.id]
            if result is None:
                raise CommunityError("no node of the community's manager answered (running?)")
            pending.take(JoinAnswer(REFUSED, result))
            return pending.to_json()
        pending.take(result)
        if pending.state in (ASKED, INVITING):
            self.communities.spawn(
                self._follow(pending, listed.charter.manager), f"following join {pending.id}"
            )
        await self._settled(pending, timeout_s)
        return pending.to_json()

    async def _settled(self, pending: PendingJoin, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        while not pending.settled and loop.time() < deadline:
            await asyncio.sleep(WAIT_STEP_S)

    async def _follow(self, pending: PendingJoin, manager: Keyset) -> None:
        """Ask again until the join ends (member or refused) or its lifetime is over."""
        for _ in range(MAX_FOLLOW_ROUNDS):
            await asyncio.sleep(FOLLOW_POLL_S * (5 if pending.state == ASKED else 1))
            if self._now() - pending.started_us > APPROVAL_LIFETIME_US:
                return
            result = await self._ask(pending, manager)
            if isinstance(result, JoinAnswer):
                pending.take(result)
            elif isinstance(result, str):
                pending.take(JoinAnswer(REFUSED, result))
            if pending.state in (MEMBER, REFUSED):
                return

    async def _ask(self, pending: PendingJoin, manager: Keyset) -> JoinAnswer | str | None:
        """Send (again) the join request to the manager's nodes: the first answer, else the
        first refusal's reason, else None (nobody reached)."""
        keys = self._account().agent_key()
        data = join_message(dataclasses.replace(pending.ask, time_us=self._now()), keys)
        refusals: list[str] = []
        for peer in manager_peers(self.host, manager):
            try:
                raw = await self.host.network.request(
                    peer, JOIN_PROTOCOL, data, timeout=ASK_TIMEOUT_S
                )
                reply = decode(raw, max_size=MAX_REPLY_BYTES)
            except (NetworkError, EncodingError) as exc:
                log.info("manager node %s not reached: %s", peer, exc)
                continue
            answer = read_answer(reply.get("ok")) if type(reply) is dict else None
            if answer is not None:
                return answer
            if type(reply) is dict and isinstance(reply.get("error"), str):
                refusals.append("".join(c for c in reply["error"] if c.isprintable())[:MAX_REASON])
        # an officer's node that did not found the community says so; the founder's refusal
        # (any other reason) is the one worth telling
        named = [r for r in refusals if "is managed by this node" not in r]
        return next(iter(named or refusals), None)

    def auto_approve(self, request: SigningRequest) -> bool:
        """The hook :class:`~ioe.identity.service.keyset_signing.KeysetSigning` asks before it
        lists a signing request for the human: sign a membership of this owner's member at once
        when this node asked for it (:func:`~ioe.community.join.auto_approval`)."""
        if request.context != MEMBERSHIP_CONTEXT:
            return False
        if request.keyset != node_keyset(self.host.conductor).id:
            return False  # the manager's side of a membership is never signed unasked
        membership = membership_in(request.document)
        if membership is None:
            return False
        self._expire()
        found = auto_approval(membership, self.joins.values(), self.held, self._now())
        if isinstance(found, PendingJoin):
            found.approved = True
        if found is not None:
            log.info("membership of %s signed without asking: %s", membership.member, found)
        return found is not None

    async def refresh_held(self) -> None:
        """Read the memberships this owner and its devices hold, from the network."""
        if not isinstance(self.host.conductor.account, OwnerAccount):
            return
        enrolled = self.host.conductor.db.get_setting(DEVICES_SETTING) or []
        agents = [self._account().agent_key().agent]
        for device in enrolled:
            if isinstance(device, dict) and isinstance(device.get("agent"), str):
                try:
                    agents.append(AgentPubKey.from_text(device["agent"]))
                except (EncodingError, ValueError):
                    continue
        held: list[Held] = []
        for agent in agents:
            held.extend(await self._held_by(agent))
        self.held = held

    async def _held_by(self, agent: AgentPubKey) -> list[Held]:
        cell = self.host.core_cell()
        dht = self.host.dht_for(cell)
        found = []
        for link in (await dht.get_links(agent, MEMBER_OF_LINK))[:MAX_HELD_PER_MEMBER]:
            if not isinstance(link.target, ActionHash):
                continue
            record = await dht.get_record(link.target)
            entry = None if record is None else cell.entry_value(record)
            if not isinstance(entry, MembershipEntry):
                continue
            try:
                membership = CommunityMembership.from_bytes(entry.membership)
            except EncodingError:
                continue
            if membership.member != agent:
                continue
            ended = await dht.get_links(link.target, REVOKED_LINK)
            item = held_of(
                membership, (link.author, link.timestamp), [(r.author, r.timestamp) for r in ended]
            )
            if item is not None:
                found.append(item)
        return found

    def forget_held(self, community: ExternalHash, member: AgentPubKey) -> None:
        """This owner (or the member) ended that membership: it bounds nothing any more."""
        self.held = [h for h in self.held if (h.community, h.member) != (community, member)]


def manager_peers(host: IdentityHost, manager: Keyset) -> list[PeerId]:
    """The nodes of the manager keyset's officers (other than this one)."""
    found: list[PeerId] = []
    for signer in manager.current.signers:
        for peer in officer_peers(host, signer):
            if peer not in found:
                found.append(peer)
    return found


def _asked_role(role: str | None) -> Role | None:
    if not role:
        return None
    try:
        chosen = Role(role)
    except ValueError:
        raise CommunityError(f"unknown role {role!r} (operator, member, observer)") from None
    if chosen is Role.MANAGER:
        raise CommunityError("nobody joins a community as its manager")
    return chosen


def _allowed(allow: list[str] | None, asked: Role | None) -> tuple[Access, ...]:
    """The levels the owner allows its member to give (default: all the asked role may be
    given, all of them when no role is asked)."""
    if not allow:
        return tuple(sorted(ROLE_ACCESS[asked or Role.MEMBER]))
    try:
        return tuple(sorted({Access(level.strip()) for level in allow}))
    except ValueError:
        raise CommunityError("--allow takes see, control and trade") from None
