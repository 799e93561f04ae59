"""Joining a community from another owner's node: the join request, what the manager's node
checks before it decides, and when an owner's node signs a membership without asking its human.

Pure: no I/O and no clock (times are arguments); :mod:`ioe.community.joining` runs it.

**The message.** ``/ioe/community-join/1`` carries one signed envelope (:mod:`ioe.envelope`) of
kind ``join_request`` (signature context ``ioe/community-join/join_request/v1``) whose body
``{from, id, community, member, role, access, time_us}`` is signed by the requesting owner's
agent (``from``). ``id`` is 16 random bytes the requester chose; re-sending the request (signed
again, with a fresh ``time_us``) asks how it is going, so the manager needs no route back.
``role`` is the role asked for (``""``: whatever the community's rules give) and ``access`` the
levels the owner allows its member to give. The answer is ``{"ok": {state, reason, role,
access, membership?}}`` — ``asked`` (the manager decides), ``inviting`` (signatures under way),
``member``, ``refused`` — or ``{"error": why}`` for a request that is refused as such.

**What is refused, keeping nothing** (:func:`open_join`, :func:`join_problem`): more than
:data:`MAX_JOIN_BYTES`; anything that does not decode as a join request; a signature that does
not verify; a time more than 5 minutes from the manager's clock (a replay, or a bad clock); an
id of another length; an unknown role or access level, or asking to manage; a community this
node does not manage; a member whose chain the network does not hold; and a requester who is
not the member's owner: for a device, the owner agent its enrollment certificate names; for a
person, the person itself.

**Signing without asking** (:func:`auto_approval`). The member's owner node signs a membership
its human did not see only when it asked for it: a join it sent for that very community and
member, the membership's access within what the join allowed (once); or a membership of a
community and member it already holds, with no more access (the manager lowered a role). A
membership the manager revoked stays such a bound for :data:`ROLE_CHANGE_GRACE_US` (a lowered
role revokes the old one first); one the owner or the member ended does not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from ioe.community.invitation import Invitation
from ioe.community.rules import Candidate, Decision
from ioe.crypto.keys import KeyPair
from ioe.encoding import Value, decode, encode
from ioe.engine.records import SignedAction
from ioe.envelope import Envelope, is_fresh
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.authority import Keyset
from ioe.identity.certificate import EnrollmentCertificate, enrollment_record
from ioe.identity.membership import OwnerMembership, is_certificate
from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import (
    MAX_MEMBERSHIP_BYTES,
    ROLE_ACCESS,
    Access,
    CommunityMembership,
    MemberKind,
    Role,
)

JOIN_PROTOCOL = "/ioe/community-join/1"
JOIN_KIND = "join_request"
MAX_JOIN_BYTES = 2048
"""A join request is about 300 bytes; anything much larger is refused before it is parsed."""
MAX_SKEW_US = 5 * 60_000_000
ID_BYTES = 16
MAX_REASON = 300
ROLE_CHANGE_GRACE_US = 10 * 60_000_000
"""How long a membership the manager revoked still bounds what is signed without asking."""
BODY_FIELDS = frozenset({"from", "id", "community", "member", "role", "access", "time_us"})

ASKED = "asked"
INVITING = "inviting"
MEMBER = "member"
REFUSED = "refused"
STATES = (ASKED, INVITING, MEMBER, REFUSED)


class JoinRefused(IoEError):
    """A join request (or an answer to one) was refused; the text says why."""


JOIN_ENVELOPE = Envelope(
    what="community join request",
    context="ioe/community-join/{kind}/v1",
    kinds=(JOIN_KIND,),
    max_bytes=MAX_JOIN_BYTES,
    one="join request",
    error=JoinRefused,
)


def public_state(state: str) -> str:
    """What an owner is told: ``asked`` and ``inviting`` are both ``pending``."""
    return state if state in (MEMBER, REFUSED) else "pending"


# ------------------------------------------------------------------------------ the message


@dataclass(frozen=True, slots=True)
class JoinAsk:
    """A verified join request: ``requester`` asks that ``member`` join ``community``."""

    request_id: bytes
    requester: AgentPubKey
    community: ExternalHash
    member: AgentPubKey
    role: Role | None
    allowed: tuple[Access, ...]
    time_us: int

    @property
    def id(self) -> str:
        return self.request_id.hex()


def join_message(ask: JoinAsk, keys: KeyPair) -> bytes:
    """``ask`` signed by ``keys`` (the requesting owner's agent, its ``requester``)."""
    if keys.agent != ask.requester:
        raise ValueError("a join request is signed by its requester")
    body: dict[str, Value] = {
        "id": ask.request_id,
        "community": bytes(ask.community),
        "member": bytes(ask.member),
        "role": "" if ask.role is None else ask.role.value,
        "access": [a.value for a in ask.allowed],
        "time_us": ask.time_us,
    }
    return JOIN_ENVELOPE.seal(keys, body, JOIN_KIND)


def _typed(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if type(value) is not kind:
        raise JoinRefused(f"the join request has no valid {name!r}")
    return value


def open_join(data: bytes, now_us: int) -> JoinAsk:
    """Decode and verify a join request (:class:`JoinRefused` naming what is wrong): within
    size, signed by the agent it names, fresh, well-formed."""
    opened = JOIN_ENVELOPE.open(data, expect=JOIN_KIND)
    body = opened.body
    if set(body) != BODY_FIELDS:
        raise JoinRefused("a join request is {" + ", ".join(sorted(BODY_FIELDS)) + "}")
    time_us = _typed(body, "time_us", int)
    if not is_fresh(time_us, now_us, MAX_SKEW_US):
        raise JoinRefused("the join request is stale or from the future (replayed?)")
    request_id = _typed(body, "id", bytes)
    if len(request_id) != ID_BYTES:
        raise JoinRefused(f"a join request's id is {ID_BYTES} bytes")
    try:
        community = ExternalHash(_typed(body, "community", bytes))
        member = AgentPubKey(_typed(body, "member", bytes))
    except EncodingError as exc:
        raise JoinRefused(f"malformed join request: {exc}") from None
    return JoinAsk(
        request_id,
        opened.signer,
        community,
        member,
        _role(_typed(body, "role", str)),
        _levels(_typed(body, "access", list)),
        time_us,
    )


def _role(text: str) -> Role | None:
    if not text:
        return None
    try:
        role = Role(text)
    except ValueError:
        raise JoinRefused(f"unknown role {text[:40]!r} (operator, member, observer)") from None
    if role is Role.MANAGER:
        raise JoinRefused("nobody joins a community as its manager")
    return role


def _levels(items: list[Any]) -> tuple[Access, ...]:
    if not all(type(item) is str for item in items):
        raise JoinRefused("a join request's access levels are words (see, control, trade)")
    if not 0 < len(items) <= len(Access) or len(set(items)) != len(items):
        raise JoinRefused("a join request allows 1 to 3 access levels, each once")
    try:
        return tuple(sorted(Access(item) for item in items))
    except ValueError:
        raise JoinRefused("unknown access level (see, control, trade)") from None


# ------------------------------------------------------------------------------ the answer


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    """How a join request stands, as the manager's node tells the requester."""

    state: str
    reason: str = ""
    role: str = ""
    access: tuple[str, ...] = ()
    membership: ActionHash | None = None

    def to_value(self) -> dict[str, Value]:
        out: dict[str, Value] = {
            "state": self.state,
            "reason": self.reason,
            "role": self.role,
            "access": list(self.access),
        }
        if self.membership is not None:
            out["membership"] = bytes(self.membership)
        return out


def read_answer(value: Any) -> JoinAnswer | None:
    """The manager's answer, or None when it is not one (a node that answers nonsense is
    treated as one that did not answer)."""
    if type(value) is not dict or value.get("state") not in STATES:
        return None
    reason, role, access = value.get("reason"), value.get("role"), value.get("access")
    if not (isinstance(reason, str) and isinstance(role, str) and isinstance(access, list)):
        return None
    if not all(isinstance(a, str) for a in access):
        return None
    raw = value.get("membership")
    try:
        membership = ActionHash(raw) if type(raw) is bytes else None
    except EncodingError:
        return None
    clean = "".join(c for c in reason if c.isprintable())[:MAX_REASON]
    return JoinAnswer(
        value["state"], clean, role[:20], tuple(a[:20] for a in access[:3]), membership
    )


# -------------------------------------------------------------------------- the manager's checks


@dataclass(frozen=True, slots=True)
class Joined:
    """What an agent joined the network as, read from its ``AgentValidationPkg``."""

    action: ActionHash
    kind: MemberKind
    keyset: Keyset
    """Its owner keyset: whose signatures its memberships need."""
    owner: AgentPubKey
    """Who answers for it: a device's owner agent (its certificate's), a person itself."""
    device_type: DeviceType | None = None
    zone: str | None = None


def joined_as(activity: list[SignedAction], agent: AgentPubKey) -> Joined | None:
    """Where and as what ``agent`` joined (its chain's start, ``activity``), or None."""
    found = enrollment_record(activity, agent)
    if found is None:
        return None
    signed, proof = found
    try:
        if is_certificate(proof):
            cert = EnrollmentCertificate.from_bytes(proof)
            return Joined(
                signed.hash, MemberKind.DEVICE, cert.keyset, cert.owner, cert.device_type, cert.zone
            )
        owner = OwnerMembership.from_bytes(proof)
        return Joined(signed.hash, MemberKind.PERSON, owner.keyset, agent)
    except EncodingError:
        return None


def join_problem(
    ask: JoinAsk, managed: Collection[ExternalHash], joined: Joined | None
) -> str | None:
    """Why the manager's node refuses ``ask`` as such, or None: the community is not one it
    manages, the member is unknown, or the requester does not answer for the member."""
    if ask.community not in managed:
        return f"no community {ask.community.to_text()} is managed by this node"
    if joined is None:
        return f"{ask.member.short()} is not a member of this network (yet)"
    if ask.requester != joined.owner:
        whose = "the owner agent of" if joined.kind is MemberKind.DEVICE else "the person"
        return (
            f"the join request is signed by {ask.requester.short()}, who is not {whose} "
            f"{ask.member.short()}"
        )
    return None


def candidate_for(joined: Joined, reputation: int) -> Candidate | None:
    """What the rules judge of a device of another owner; None for a person (rules are about
    devices: a person's join is the manager's to decide)."""
    if joined.kind is not MemberKind.DEVICE or joined.device_type is None:
        return None
    return Candidate(joined.device_type, joined.zone or "", reputation, mine=False)


def offered(decision: Decision, ask: JoinAsk) -> tuple[Role, tuple[Access, ...]] | str:
    """The role and access an ``invite`` decision gives ``ask``: the rule's role, or the role
    asked for when what it gives is within the rule's; either way only levels the owner
    allows. A reason instead when nothing would be left."""
    assert decision.role is not None
    role, levels = decision.role, frozenset(decision.access)
    allowed = frozenset(ask.allowed)
    if ask.role is not None and ROLE_ACCESS[ask.role] & allowed <= levels:
        role, levels = ask.role, ROLE_ACCESS[ask.role]
    given = levels & allowed
    if not given:
        return (
            f"the rules give a {role} {', '.join(sorted(levels))}; the owner allows only "
            f"{', '.join(sorted(allowed))}"
        )
    return role, tuple(sorted(given))


def accepted_terms(role: Role, allowed: Iterable[Access]) -> tuple[Role, tuple[Access, ...]] | str:
    """What a manager who accepts a join request with ``role`` gives: the role's levels the
    owner allows; a reason instead when there are none (or the role is manager)."""
    if role is Role.MANAGER:
        return "nobody joins a community as its manager"
    given = ROLE_ACCESS[role] & frozenset(allowed)
    if not given:
        return f"the owner allows nothing a {role} may be given"
    return role, tuple(sorted(given))


@dataclass(slots=True)
class JoinRequest:
    """A join request as the manager's node keeps it (it answers re-sent requests from it)."""

    ask: JoinAsk
    joined: Joined
    received_us: int
    state: str = ASKED
    reason: str = ""
    role: Role | None = None
    access: tuple[Access, ...] = ()
    invitation: Invitation | None = None
    membership: ActionHash | None = None

    @property
    def id(self) -> str:
        return self.ask.id

    def current(self) -> tuple[str, str]:
        """(state, reason), following the invitation once there is one."""
        if self.invitation is None:
            return self.state, self.reason
        inv = self.invitation
        return {"pending": INVITING, "member": MEMBER}.get(inv.state, REFUSED), inv.reason

    def answer(self) -> JoinAnswer:
        state, reason = self.current()
        membership = self.membership
        if self.invitation is not None:
            membership = self.invitation.membership
        return JoinAnswer(
            state,
            reason,
            "" if self.role is None else self.role.value,
            tuple(a.value for a in self.access),
            membership if state == MEMBER else None,
        )

    def to_json(self) -> dict[str, Any]:
        state, reason = self.current()
        out: dict[str, Any] = {
            "id": self.id,
            "type": "join_request",
            "state": state,
            "community": self.ask.community.to_text(),
            "agent": self.ask.member.to_text(),
            "kind": str(self.joined.kind),
            "requester": self.ask.requester.to_text(),
            "device_type": None
            if self.joined.device_type is None
            else str(self.joined.device_type),
            "zone": self.joined.zone,
            "asked_role": None if self.ask.role is None else str(self.ask.role),
            "allowed": [str(a) for a in self.ask.allowed],
            "received_us": self.received_us,
        }
        if self.role is not None:
            out["role"], out["access"] = str(self.role), [str(a) for a in self.access]
        if reason:
            out["reason"] = reason
        return out


# ------------------------------------------------------------------------------ the owner's side


@dataclass(slots=True)
class PendingJoin:
    """A join this owner's node asked for, as it follows it (and signs its membership)."""

    ask: JoinAsk
    kind: MemberKind
    community_name: str
    started_us: int
    state: str = ""
    """"" until the manager's node first answers, then the answer's state."""
    reason: str = ""
    role: str = ""
    access: tuple[str, ...] = ()
    membership: ActionHash | None = None
    approved: bool = False
    """A membership was signed for it without asking (once only)."""

    @property
    def id(self) -> str:
        return self.ask.id

    @property
    def open(self) -> bool:
        """Whether a membership may still be signed for it without asking."""
        return not self.approved and self.state not in (MEMBER, REFUSED)

    @property
    def settled(self) -> bool:
        """Whether the requester knows enough to answer its owner (not signatures under way)."""
        return self.state in (ASKED, MEMBER, REFUSED)

    def take(self, answer: JoinAnswer) -> None:
        self.state, self.reason = answer.state, answer.reason
        self.role, self.access, self.membership = answer.role, answer.access, answer.membership

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "state": public_state(self.state),
            "community": self.ask.community.to_text(),
            "name": self.community_name,
            "agent": self.ask.member.to_text(),
            "kind": str(self.kind),
            "allowed": [str(a) for a in self.ask.allowed],
            "started_us": self.started_us,
        }
        if self.state in (ASKED, INVITING):
            out["waiting_for"] = "manager" if self.state == ASKED else "signatures"
        elif not self.state:
            out["waiting_for"] = "answer"
        if self.ask.role is not None:
            out["asked_role"] = str(self.ask.role)
        if self.role:
            out["role"], out["access"] = self.role, list(self.access)
        if self.reason:
            out["reason"] = self.reason
        if self.membership is not None:
            out["membership"] = self.membership.to_text()
        return out


@dataclass(frozen=True, slots=True)
class Held:
    """A membership of this owner's member as the network holds it: live, or revoked by the
    community's manager at ``since_us``."""

    community: ExternalHash
    member: AgentPubKey
    role: Role
    access: frozenset[Access]
    live: bool
    since_us: int

    def bounds(self, membership: CommunityMembership, now_us: int) -> bool:
        """Whether ``membership`` asks no more than this one gave, for the same member."""
        same = (membership.community, membership.member) == (self.community, self.member)
        recent = self.live or now_us - self.since_us <= ROLE_CHANGE_GRACE_US
        return same and recent and set(membership.access) <= self.access

    def to_json(self) -> dict[str, Any]:
        return {
            "community": self.community.to_text(),
            "agent": self.member.to_text(),
            "role": str(self.role),
            "access": sorted(str(a) for a in self.access),
            "live": self.live,
            "since_us": self.since_us,
        }


def held_of(
    membership: CommunityMembership,
    committed: tuple[AgentPubKey, int],
    revocations: Iterable[tuple[AgentPubKey, int]],
) -> Held | None:
    """The :class:`Held` a membership makes, from who committed it when (the manager's agent)
    and who revoked it when; None when anyone else (the owner, the member) ended it."""
    by, at = committed
    ended = list(revocations)
    if any(author != by for author, _ in ended):
        return None
    since = max((when for _, when in ended), default=at)
    return Held(
        membership.community,
        membership.member,
        membership.role,
        frozenset(membership.access),
        live=not ended,
        since_us=since,
    )


def membership_in(document: bytes) -> CommunityMembership | None:
    """The membership whose body ``document`` is (what a signing request asks to sign), or
    None when it is not exactly one."""
    try:
        value = decode(document, max_size=MAX_MEMBERSHIP_BYTES)
        if type(value) is not dict or {"manager_signatures", "owner_signatures"} & set(value):
            return None
        full = encode({**value, "manager_signatures": [], "owner_signatures": []})
        membership = CommunityMembership.from_bytes(full)
    except (EncodingError, ValueError):
        return None
    return membership if membership.message() == document else None


def auto_approval(
    membership: CommunityMembership,
    joins: Iterable[PendingJoin],
    held: Iterable[Held],
    now_us: int,
) -> PendingJoin | Held | None:
    """What lets this owner's node sign ``membership`` without asking its human (see the
    module docstring), or None: ask the human."""
    for join in joins:
        ask = join.ask
        if (
            join.open
            and (ask.community, ask.member) == (membership.community, membership.member)
            and set(membership.access) <= set(ask.allowed)
        ):
            return join
    for item in held:
        if item.bounds(membership, now_us):
            return item
    return None
