"""Entry types of the community zome: a community's charter, and what roles mean.

A **charter** founds a community: its name, zone, visibility (public: listed in the directory;
private: never published, only its members learn of it), an optional parent community (nesting),
and its **manager**, an owner keyset (M of N officers allowed), whose signatures make the charter.
The community's id is the charter's id: the hash of its body, so it can be named before anything
is on a chain and no signature can change it.

**Roles** give **access levels** on the member's devices: *see* (read telemetry), *control*
(device writes) and *trade* (act in markets on the device's behalf). A role bounds what a
membership may give (:data:`ROLE_ACCESS`); memberships themselves are the next step of this zome.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ioe.errors import EncodingError
from ioe.hashing import ExternalHash
from ioe.identity import wire
from ioe.identity.authority import Keyset, check_authorized, keyset_problem
from ioe.identity.certificate import DeviceVisibility
from ioe.identity.document import Signatures, SignedDocument
from ioe.zones import zone_problem

CHARTER_CONTEXT = b"ioe/community/charter/v1"
CHARTER_VERSION = 1
MAX_CHARTER_BYTES = 32 * 1024
MAX_NAME = 80
COMMUNITY_ENTRY = "community"
PRIVATE_COMMUNITY_ENTRY = "private_community"
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
    Role.MEMBER: frozenset({Access.SEE, Access.TRADE}),
    Role.OBSERVER: frozenset({Access.SEE}),
}
"""The most each role may be given."""


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
