"""Entry types of the community zome: a community's charter, and what roles mean.

A **charter** founds a community: its name, zone, visibility (public: listed in the directory;
private: never published, only its members learn of it), an optional parent community (nesting),
and its **manager**, an owner keyset (M of N officers allowed), whose signatures make the charter.
The community's id is the charter's id: the hash of its body, so it can be named before anything
is on a chain and no signature can change it.

**Roles** give **access levels** on the member's devices: *see* (read telemetry), *control*
(device writes) and *trade* (act in markets on the device's behalf). A role bounds what a
membership may give (:data:`ROLE_ACCESS`).

A **membership** names the community, the member (a device's agent, or a person's owner agent),
its role and access, and carries two sets of signatures over the same body: the community's
manager keyset's and the member's owner keyset's (for a device, the keyset of its enrollment
certificate; for a person, the keyset of its owner membership). Either side may revoke it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ioe.crypto.keys import KeyPair
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.authority import Keyset, check_authorized, keyset_problem
from ioe.identity.certificate import DeviceVisibility
from ioe.identity.document import Document, Signatures, SignedDocument
from ioe.zones import zone_problem

CHARTER_CONTEXT = b"ioe/community/charter/v1"
CHARTER_VERSION = 1
MAX_CHARTER_BYTES = 32 * 1024
MAX_NAME = 80
COMMUNITY_ENTRY = "community"
PRIVATE_COMMUNITY_ENTRY = "private_community"
MEMBERSHIP_ENTRY = "community_membership"
PRIVATE_MEMBERSHIP_ENTRY = "private_community_membership"
REVOCATION_ENTRY = "community_membership_revocation"
MEMBERSHIP_CONTEXT = b"ioe/community/membership/v1"
MEMBERSHIP_VERSION = 1
MAX_MEMBERSHIP_BYTES = 8 * 1024
MEMBER_LINK = "community_member"
"""Link type: from a community's id to the action that committed a membership of it."""
MEMBER_OF_LINK = "member_of"
"""Link type: from a member's agent key to the action that committed its membership."""
REVOKED_LINK = "membership_revoked"
"""Link type: from a membership's action to the action that revoked it."""
ZONE_LINK = "community_zone"
"""Link type: from a zone anchor (:func:`zone_anchor`, one per prefix of a public community's
zone) to the action that committed its charter."""

Visibility = DeviceVisibility
"""``public`` or ``private``: the same words as a device's visibility."""


class Role(StrEnum):
    MANAGER = "manager"
    OPERATOR = "operator"
    MEMBER = "member"
    OBSERVER = "observer"


class Access(StrEnum):
    SEE = "see"
    CONTROL = "control"
    TRADE = "trade"


ROLE_ACCESS: dict[Role, frozenset[Access]] = {
    Role.MANAGER: frozenset(Access),
    Role.OPERATOR: frozenset({Access.SEE, Access.CONTROL}),
    Role.MEMBER: frozenset(Access),
    Role.OBSERVER: frozenset({Access.SEE}),
}
"""The most each role may be given. On a device, access is what the community may do with it
(read it, switch it, trade for it); on a person, what that person may do in the community."""


def zone_anchor(zone_prefix: str) -> ExternalHash:
    """Where public communities of ``zone_prefix`` and below are linked from ("" for all)."""
    return ExternalHash.of(b"ioe/community/zone/" + zone_prefix.encode())


def zone_prefixes(zone: str) -> list[str]:
    """``au/nsw/newtown`` → ``["", "au", "au/nsw", "au/nsw/newtown"]``: every anchor a community
    in that zone is found from."""
    segments = zone.split("/")
    return ["", *("/".join(segments[:n]) for n in range(1, len(segments) + 1))]


@dataclass(frozen=True, slots=True)
class CommunityCharter(SignedDocument):
    """A community, as its manager keyset signed it (see the module docstring)."""

    version: int
    name: str
    zone: str
    visibility: Visibility
    parent: ExternalHash | None
    manager: Keyset
    created_us: int
    signatures: Signatures = ()

    CONTEXT = CHARTER_CONTEXT
    MAX_BYTES = MAX_CHARTER_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> CommunityCharter:
        """Strict decoding; :class:`EncodingError` for anything malformed (signatures are
        checked by :func:`charter_problem`)."""
        charter = cls.decoded(data)
        wire.require(charter.version == CHARTER_VERSION, f"unknown version {charter.version}")
        problem = _fields_problem(charter)
        if problem:
            raise EncodingError(problem)
        return charter


def _fields_problem(charter: CommunityCharter) -> str | None:
    problem = wire.text_problem(charter.name, "a community's name")
    if problem:
        return problem
    if len(charter.name) > MAX_NAME:
        return f"a community's name is at most {MAX_NAME} characters"
    problem = zone_problem(charter.zone)
    if problem:
        return f"the community's zone: {problem}"
    if charter.created_us < 0:
        return "created_us is non-negative"
    return None


def charter_problem(charter: CommunityCharter) -> str | None:
    """Why ``charter`` is not a valid charter, or None: its fields, its manager keyset's chain,
    and signatures by M distinct signers of the keyset's current spec."""
    if charter.version != CHARTER_VERSION:
        return f"unknown charter version {charter.version}"
    problem = _fields_problem(charter) or keyset_problem(charter.manager)
    if problem:
        return problem
    problem = check_authorized(
        charter.manager.current, charter.message(), CHARTER_CONTEXT, charter.signatures
    )
    return f"charter not authorized by its manager keyset: {problem}" if problem else None


def checked_charter(data: bytes) -> CommunityCharter | str:
    """The charter of ``data`` if it decodes and verifies, else why not."""
    try:
        charter = CommunityCharter.from_bytes(data)
    except EncodingError as exc:
        return f"malformed charter: {exc}"
    return charter_problem(charter) or charter


@dataclass(frozen=True, slots=True)
class CommunityEntry:
    """A public community on its founder's chain: the charter's wire form, byte for byte."""

    charter: bytes


@dataclass(frozen=True, slots=True)
class PrivateCommunityEntry:
    """A private community: the same charter, kept on its founder's chain and never
    published (its members learn of it from their memberships)."""

    charter: bytes


class MemberKind(StrEnum):
    DEVICE = "device"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class CommunityMembership(Document):
    """A member of a community, as its manager and its owner signed it (module docstring)."""

    version: int
    community: ExternalHash
    member: AgentPubKey
    kind: MemberKind
    role: Role
    access: tuple[Access, ...]
    issued_us: int
    manager_signatures: Signatures = ()
    owner_signatures: Signatures = ()

    CONTEXT = MEMBERSHIP_CONTEXT
    MAX_BYTES = MAX_MEMBERSHIP_BYTES
    UNSIGNED = ("manager_signatures", "owner_signatures")

    @classmethod
    def from_bytes(cls, data: bytes) -> CommunityMembership:
        """Strict decoding; :class:`EncodingError` for anything malformed (signatures are
        checked by :func:`membership_problem`)."""
        membership = cls.decoded(data)
        problem = membership_fields_problem(membership)
        if problem:
            raise EncodingError(problem)
        return membership

    def signed_as_manager(self, *keys: KeyPair) -> CommunityMembership:
        return self.with_signatures("manager_signatures", keys)

    def signed_as_owner(self, *keys: KeyPair) -> CommunityMembership:
        return self.with_signatures("owner_signatures", keys)


def membership_fields_problem(membership: CommunityMembership) -> str | None:
    if membership.version != MEMBERSHIP_VERSION:
        return f"unknown membership version {membership.version}"
    if membership.issued_us < 0:
        return "issued_us is non-negative"
    if list(membership.access) != sorted(set(membership.access)):
        return "access levels are listed once each, in order"
    extra = set(membership.access) - ROLE_ACCESS[membership.role]
    if extra:
        return f"a {membership.role} may not be given {', '.join(sorted(extra))}"
    if membership.kind is MemberKind.DEVICE and membership.role is Role.MANAGER:
        return "a device cannot manage a community"
    return None


def membership_problem(
    membership: CommunityMembership, charter: CommunityCharter, owner: Keyset
) -> str | None:
    """Why ``membership`` is not a valid membership of ``charter``'s community for a member
    whose owner keyset is ``owner``, or None: both keysets signed its body."""
    problem = membership_fields_problem(membership)
    if problem:
        return problem
    if membership.community != charter.id:
        return "the membership names another community"
    body = membership.message()
    problem = check_authorized(
        charter.manager.current, body, MEMBERSHIP_CONTEXT, membership.manager_signatures
    )
    if problem:
        return f"not signed by the community's manager: {problem}"
    problem = check_authorized(owner.current, body, MEMBERSHIP_CONTEXT, membership.owner_signatures)
    return f"not signed by the member's owner: {problem}" if problem else None


@dataclass(frozen=True, slots=True)
class MembershipEntry:
    """A membership on the manager's chain: its wire form, the action that founded the
    community (``charter_at``) and the member's own ``AgentValidationPkg`` (``member_joined``:
    the certificate or owner membership its owner keyset is read from)."""

    membership: bytes
    charter_at: ActionHash
    member_joined: ActionHash


@dataclass(frozen=True, slots=True)
class PrivateMembershipEntry:
    """A membership of a private community: the same fields, never published."""

    membership: bytes
    charter_at: ActionHash
    member_joined: ActionHash


@dataclass(frozen=True, slots=True)
class MembershipRevocation:
    """Ends a membership (``membership_at``: the action that committed it). Written by the
    community's manager or by the member's owner; ``reason`` is free text."""

    membership_at: ActionHash
    reason: str
