"""Capability grants: who, other than a cell's own agent, may call which of its zome functions.

A grant is a private entry on the granting agent's own chain (it never leaves the device):

``unrestricted``
    anyone may call the functions named;
``transferable``
    anyone presenting the grant's secret may (the secret can be passed on);
``assigned``
    only the named agents, and only with the secret.

A grant keeps only a hash of its secret (:func:`secret_hash`): the node shows the secret once,
when the grant is made, and nothing it stores (the database, its write-ahead log) gives it back.

Revoking a grant deletes its entry; every call is checked against the chain's live grants at the
moment of the call, so a revoked grant stops working at once. Calls from the cell's own agent are
always allowed. Functions are named ``zome.function``, ``zome.*`` or ``*``; the ``capability``
zome itself (creating and revoking grants) is never reachable through a wildcard, only by name.

The checks here are pure: they read the chain through the cell's store, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, Outcome
from ioe.engine.ports import ChainQuery
from ioe.engine.records import ActionType, Delete, Update, Visibility
from ioe.engine.zome import CoordinatorZome, EntryDef, IntegrityZome
from ioe.errors import Unauthorized, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey

if TYPE_CHECKING:
    from ioe.engine.cell import CallContext, Cell

CAPABILITY_ZOME = "capability"
SECRET_BYTES = 32
SECRET_HASH_BYTES = 32
MAX_TAG = 64
MAX_FUNCTIONS = 64
MAX_ASSIGNEES = 256
_FUNCTION = re.compile(r"(\*|[a-z_][a-z0-9_]{0,63}\.(\*|[a-z_][a-z0-9_]{0,63}))\Z")


class CapAccess(IntEnum):
    UNRESTRICTED = 0
    TRANSFERABLE = 1
    ASSIGNED = 2


def secret_hash(secret: bytes) -> bytes:
    """What a grant keeps of its secret: a hash, so the secret itself is never stored (a
    database or write-ahead log read by someone else gives no secret to call with)."""
    return hashlib.blake2b(secret, digest_size=32, person=b"ioe-cap-secret").digest()


@dataclass(frozen=True, slots=True)
class CapGrant:
    tag: str
    access: CapAccess
    functions: tuple[str, ...]
    secret_hash: bytes | None = None
    """The hash of the secret a caller must show (:func:`secret_hash`); never the secret."""
    assignees: tuple[AgentPubKey, ...] = ()

    def covers(self, zome: str, function: str) -> bool:
        for name in self.functions:
            if name == f"{zome}.{function}":
                return True
            if zome != CAPABILITY_ZOME and name in ("*", f"{zome}.*"):
                return True
        return False

    def allows(self, caller: AgentPubKey, secret: bytes | None) -> bool:
        if self.access is CapAccess.UNRESTRICTED:
            return True
        if secret is None or self.secret_hash is None:
            return False
        if not hmac.compare_digest(self.secret_hash, secret_hash(secret)):
            return False
        return self.access is CapAccess.TRANSFERABLE or caller in self.assignees


def grant_problem(grant: CapGrant) -> str | None:
    """Why ``grant`` is malformed, or None."""
    if not 0 < len(grant.tag) <= MAX_TAG:
        return f"a grant's tag has 1 to {MAX_TAG} characters"
    if not 0 < len(grant.functions) <= MAX_FUNCTIONS:
        return f"a grant names 1 to {MAX_FUNCTIONS} functions"
    for name in grant.functions:
        if not _FUNCTION.match(name):
            return f"{name[:80]!r} is not zome.function, zome.* or *"
    if grant.access is CapAccess.UNRESTRICTED:
        if grant.secret_hash is not None or grant.assignees:
            return "an unrestricted grant has no secret and no assignees"
        return None
    if grant.secret_hash is None or len(grant.secret_hash) != SECRET_HASH_BYTES:
        return (
            f"a {grant.access.name.lower()} grant keeps its secret's {SECRET_HASH_BYTES}-byte hash"
        )
    if grant.access is CapAccess.TRANSFERABLE and grant.assignees:
        return "a transferable grant names no assignees"
    if grant.access is CapAccess.ASSIGNED:
        if not 0 < len(grant.assignees) <= MAX_ASSIGNEES:
            return f"an assigned grant names 1 to {MAX_ASSIGNEES} agents"
        if len(set(grant.assignees)) != len(grant.assignees):
            return "an assigned grant names each agent once"
    return None


# ------------------------------------------------------------------------------------ checking


def live_grants(cell: Cell) -> dict[ActionHash, CapGrant]:
    """The grants on ``cell``'s chain that have not been revoked (deleted)."""
    try:
        entry_type, _ = cell.dna.entry_type_for(CapGrant)
    except ZomeCallError:
        return {}  # a DNA without the capability zome grants nothing
    created = cell.store.query(ChainQuery(action_type=ActionType.CREATE, entry_type=entry_type))
    deleted = {
        r.action.deletes_action
        for r in cell.store.query(ChainQuery(action_type=ActionType.DELETE, include_entries=False))
        if isinstance(r.action, Delete)
    }
    grants = {}
    for record in created:
        if record.action_hash in deleted or record.entry is None:
            continue
        value = cell.entry_value(record)
        if isinstance(value, CapGrant):
            grants[record.action_hash] = value
    return grants


def authorize_call(
    cell: Cell, caller: AgentPubKey, zome: str, function: str, secret: bytes | None
) -> ActionHash:
    """The live grant that lets ``caller`` call ``zome.function`` on ``cell``; raises
    :class:`Unauthorized` (saying why) when there is none."""
    covering = [(h, g) for h, g in live_grants(cell).items() if g.covers(zome, function)]
    for action_hash, grant in covering:
        if grant.allows(caller, secret):
            return action_hash
    who = caller.to_text()
    if not covering:
        raise Unauthorized(f"no capability grant lets other agents call {zome}.{function}")
    if secret is None:
        raise Unauthorized(f"{zome}.{function} needs a capability secret; {who} gave none")
    raise Unauthorized(f"no live grant for {zome}.{function} matches the secret and agent {who}")


# ---------------------------------------------------------------------------------- the zomes


def validate(op: Op, host: IntegrityHost) -> Outcome:
    if isinstance(op.app_entry, CapGrant):
        if isinstance(op.action, Update):
            return Invalid("a grant is not updated; revoke it and grant anew")
        problem = grant_problem(op.app_entry)
        if problem:
            return Invalid(problem)
    return VALID


integrity = IntegrityZome(
    name=CAPABILITY_ZOME,
    version="2",
    entry_defs=(EntryDef("cap_grant", CapGrant, Visibility.PRIVATE),),
    validate=validate,
)

coordinator = CoordinatorZome(CAPABILITY_ZOME)


def _grant_from_payload(payload: Any) -> CapGrant:
    if not isinstance(payload, dict):
        raise ZomeCallError("grant takes {tag, access, functions, secret?, assignees?}")
    access_name = payload.get("access")
    try:
        access = CapAccess[str(access_name).upper()]
    except KeyError:
        raise ZomeCallError(
            f"access must be unrestricted, transferable or assigned, not {access_name!r}"
        ) from None
    functions = payload.get("functions")
    if not isinstance(functions, list | tuple) or not all(isinstance(f, str) for f in functions):
        raise ZomeCallError("functions must be a list of zome.function names")
    secret = payload.get("secret")
    needs_secret = access is not CapAccess.UNRESTRICTED
    if (secret is not None or needs_secret) and (
        not isinstance(secret, bytes) or len(secret) != SECRET_BYTES
    ):
        raise ZomeCallError(f"a {access.name.lower()} grant has a secret of {SECRET_BYTES} bytes")
    assignees = []
    for agent in payload.get("assignees") or ():
        assignees.append(agent if isinstance(agent, AgentPubKey) else AgentPubKey.from_text(agent))
    grant = CapGrant(
        str(payload.get("tag", "")),
        access,
        tuple(functions),
        None if secret is None else secret_hash(secret),
        tuple(assignees),
    )
    problem = grant_problem(grant)
    if problem:
        raise ZomeCallError(problem)
    return grant


@coordinator.function
def grant(ctx: CallContext, payload: Any) -> ActionHash:
    """Create a grant; the caller supplies the secret (random, from the node) when one is due."""
    return ctx.create(_grant_from_payload(payload))


@coordinator.function
def revoke(ctx: CallContext, payload: Any) -> ActionHash:
    """Revoke the grant created by action ``payload`` (an ActionHash)."""
    target = payload if isinstance(payload, ActionHash) else None
    if target is None:
        raise ZomeCallError("revoke takes the grant's action hash")
    if target not in live_grants(ctx.cell):
        raise ZomeCallError(f"{target.to_text()} is not a live grant on this chain")
    return ctx.delete(target)


@coordinator.function
def list_grants(ctx: CallContext, payload: Any = None) -> dict[ActionHash, CapGrant]:
    return live_grants(ctx.cell)
