"""Communities on a node: found one (its charter signed by this owner's keyset), show the ones
founded here, and list the public communities of a zone as the network knows them.

The service reaches its node through :class:`~ioe.identity.service.host.IdentityHost` (a charter
is signed as identity documents are, by M officers of an enterprise keyset where there are
several), and never imports the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ioe.crypto.derivation import OwnerAccount
from ioe.errors import IoEError
from ioe.hashing import ActionHash, ExternalHash
from ioe.identity.service.host import IdentityHost
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import sign_with_keyset
from ioe.zomes.community.entries import (
    CHARTER_CONTEXT,
    CHARTER_VERSION,
    MAX_NAME,
    ZONE_LINK,
    CommunityCharter,
    CommunityEntry,
    Visibility,
    checked_charter,
    zone_anchor,
)
from ioe.zones import zone_problem

COMMUNITY_ZOME = "community"
MAX_LISTED = 500
"""A directory lists at most this many communities (a zone's anchor may hold more)."""


class CommunityError(IoEError):
    """A community could not be founded or found; the message says why."""


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

    async def directory(self, zone: str = "") -> list[Listed]:
        """The public communities in ``zone`` and below ("" for all), as the network knows
        them; this node's own private ones are listed too (it is their manager)."""
        if zone:
            problem = zone_problem(zone)
            if problem:
                raise CommunityError(f"--zone: {problem}")
        dht = self.host.dht_for(self.host.core_cell())
        links = await dht.get_links(zone_anchor(zone), ZONE_LINK)
        listed: dict[ExternalHash, Listed] = {}
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
            if isinstance(charter, CommunityCharter):
                listed.setdefault(charter.id, Listed(link.target, charter, members=1))
        for own in self.founded():
            in_zone = own.charter.zone == zone or own.charter.zone.startswith(zone + "/")
            if own.charter.visibility is Visibility.PRIVATE and (not zone or in_zone):
                listed.setdefault(own.charter.id, own)
        return sorted(listed.values(), key=lambda item: (item.charter.zone, item.charter.name))


def _fields(charter: CommunityCharter) -> dict[str, Any]:
    return {name: getattr(charter, name) for name in CommunityCharter.__dataclass_fields__}
