"""The zone directory: the members of a DNA's network as their enrollment certificates describe
them (agent, name, device type, zone, owner), filtered by zone and by visibility.

A device's certificate is its membrane proof: it travels in every agent info the device signs
(and starts its chain, in its ``AgentValidationPkg``), so each node can list the members it knows
without asking anyone. Members whose proof is not a certificate are owners (they join with an
owner membership, or, on networks without the membrane rule, with no proof): they are listed as
``owner`` entries under the name and zone of their profile (``ioe profile set``) when the caller
found one, and a zone filter matches an owner by its profile's zone; an owner without a profile
is listed only when no zone is asked for.

**Visibility.** A device whose certificate says ``private`` is listed only by its owner's node
(a node one of whose agents is the certificate's owner agent) and by the device's own node; any
other node leaves it out. This is a courtesy of honest nodes, not secrecy: the certificate still
travels in the device's agent infos, which every member receives for routing, so a member that
decodes them can read it (see docs/identity.md).

Pure: no I/O; the caller passes the agent infos, who is looking, and who is present.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ioe.engine.dht import AgentInfo
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey
from ioe.identity.certificate import (
    DeviceVisibility,
    EnrollmentCertificate,
    certificate_problem,
)
from ioe.zones import parse_zone

OWNER_KIND = "owner"
DEVICE_KIND = "device"


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    agent: AgentPubKey
    kind: str  # DEVICE_KIND or OWNER_KIND
    owner: AgentPubKey
    name: str | None = None
    device_type: str | None = None
    zone: str | None = None
    visibility: str = DeviceVisibility.PUBLIC.value
    present: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent.to_text(),
            "kind": self.kind,
            "name": self.name,
            "type": self.device_type if self.kind == DEVICE_KIND else OWNER_KIND,
            "zone": self.zone,
            "owner": self.owner.to_text(),
            "visibility": self.visibility,
            "present": self.present,
        }


def entry_for(info: AgentInfo) -> DirectoryEntry | None:
    """What ``info``'s membrane proof says about its agent. None for a departure, and for a
    proof that decodes as a certificate but is not a valid one for this agent (never listed
    under a name it could not have been given)."""
    if info.departed:
        return None
    proof = info.membrane_proof
    if proof is None:
        return DirectoryEntry(info.agent, OWNER_KIND, info.agent)
    try:
        cert = EnrollmentCertificate.from_bytes(proof)
    except EncodingError:
        return DirectoryEntry(info.agent, OWNER_KIND, info.agent)  # an owner membership
    if cert.device != info.agent or certificate_problem(cert) is not None:
        return None
    return DirectoryEntry(
        info.agent,
        DEVICE_KIND,
        cert.owner,
        name=cert.name,
        device_type=cert.device_type.value,
        zone=cert.zone,
        visibility=cert.visibility.value,
    )


def in_zone(zone: str, prefix: str) -> bool:
    """Whether ``zone`` is ``prefix`` or inside it, segment by segment (``au/nsw`` holds
    ``au/nsw/newtown`` but not ``au/nswx``). ``ValueError`` if ``prefix`` is not a zone."""
    wanted = parse_zone(prefix)
    try:
        have = parse_zone(zone)
    except ValueError:
        return False
    return have[: len(wanted)] == wanted


def visible_to(entry: DirectoryEntry, viewers: Collection[AgentPubKey]) -> bool:
    """Whether a node whose agents are ``viewers`` lists ``entry``."""
    if entry.visibility != DeviceVisibility.PRIVATE.value:
        return True
    return entry.owner in viewers or entry.agent in viewers


def with_profile(
    entry: DirectoryEntry, profiles: Mapping[AgentPubKey, tuple[str, str]]
) -> DirectoryEntry:
    """An owner's entry with the name and zone of its profile, when it has one."""
    found = profiles.get(entry.agent) if entry.kind == OWNER_KIND else None
    if found is None:
        return entry
    name, zone = found
    return DirectoryEntry(entry.agent, entry.kind, entry.owner, name, None, zone, entry.visibility)


def directory(
    infos: Iterable[AgentInfo],
    viewers: Collection[AgentPubKey],
    *,
    zone: str | None = None,
    present: Callable[[AgentPubKey], bool] = lambda _: True,
    profiles: Mapping[AgentPubKey, tuple[str, str]] | None = None,
) -> list[DirectoryEntry]:
    """The directory as the node whose agents are ``viewers`` shows it: devices it may list,
    then owners (named by their ``profiles``: agent → (name, zone)); with ``zone``, only the
    members in it (an owner by its profile's zone). Sorted by zone, name, key."""
    if zone is not None:
        parse_zone(zone)  # a bad filter is the caller's error, not an empty answer
    entries = []
    for info in infos:
        entry = entry_for(info)
        if entry is None or not visible_to(entry, viewers):
            continue
        entry = with_profile(entry, profiles or {})
        if zone is not None and (entry.zone is None or not in_zone(entry.zone, zone)):
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.kind == OWNER_KIND, e.zone or "", e.name or "", e.agent))
    return [
        DirectoryEntry(
            e.agent, e.kind, e.owner, e.name, e.device_type, e.zone, e.visibility, present(e.agent)
        )
        for e in entries
    ]
