"""A membership on its way: what the manager's node means to sign (a :class:`Plan`) and, for a
member of another owner, the invitation that waits for that owner's signatures.

A membership needs two sets of signatures over one body: the community's manager keyset's and
the member's owner keyset's. For this owner's own devices (and itself) both are made at once on
this node. For another owner's device or person the manager signs, then the other owner's node
is asked over ``/ioe/keyset-sign/1`` and its human (or a rule it set: a join it asked for, a
lower role of a membership it holds) decides; that can take minutes, so the invitation runs in
the background and is kept here, listable, until it ends: ``member`` once committed,
``refused`` when the owner refused or never answered within the approval lifetime.

Pure data: :mod:`ioe.community.service` signs and commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ioe.hashing import ActionHash
from ioe.identity.authority import Keyset
from ioe.identity.document import Signatures
from ioe.zomes.community.entries import CommunityMembership

PENDING = "pending"
MEMBER = "member"
REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Plan:
    """A membership ready to be signed: its unsigned body and what committing it cites."""

    community_name: str
    unsigned: CommunityMembership
    charter_at: ActionHash
    """The action that founded the community."""
    member_joined: ActionHash
    """The member's ``AgentValidationPkg`` (its owner keyset is read from it)."""
    manager: Keyset
    """The community's manager keyset (the charter's)."""
    owner: Keyset
    """The member's owner keyset: whose signatures the membership needs besides the manager's."""

    @property
    def community(self) -> str:
        return self.unsigned.community.to_text()

    @property
    def what(self) -> str:
        """How a signer is told what it signs (the document itself is shown too)."""
        m = self.unsigned
        levels = ", ".join(str(a) for a in m.access) or "no access"
        return f"{m.kind} {m.member.short()} as {m.role} ({levels}) of {self.community_name!r}"

    def to_json(self) -> dict[str, Any]:
        m = self.unsigned
        return {
            "community": self.community,
            "agent": m.member.to_text(),
            "kind": str(m.kind),
            "role": str(m.role),
            "access": [str(a) for a in m.access],
        }


@dataclass(slots=True)
class Invitation:
    """A membership of another owner's member, signed by the manager, waiting for that owner."""

    id: str
    plan: Plan
    manager_signatures: Signatures
    started_us: int
    replaces: ActionHash | None = None
    """A membership to revoke when this one is committed (a raised role keeps the old one
    until the new one is signed)."""
    state: str = PENDING
    reason: str = ""
    membership: ActionHash | None = None

    @property
    def finished(self) -> bool:
        return self.state != PENDING

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "invitation": self.id,
            **self.plan.to_json(),
            "started_us": self.started_us,
        }
        if self.replaces is not None:
            out["replaces"] = self.replaces.to_text()
        if self.reason:
            out["reason"] = self.reason
        if self.membership is not None:
            out["membership"] = self.membership.to_text()
        return out
