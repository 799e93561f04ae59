"""Revoking an enrolled device's key from the owner's node, and listing known revocations.

POST /v1/owner/revoke          {"agent", "last_valid_seq"?, "all"?, "reason"?, "replacement"?}
                               → the revocation (see :func:`revocation_json`) and its "action"
GET  /v1/revocations/{agent}   → [revocation] known here or found on the network

The owner's node finds the device among ``enrolled_devices``, fetches the device's chain from the
network (its ``AgentValidationPkg`` carries the certificate the revocation cites, and its latest
action is the default cutoff), signs a :class:`KeyRevocation` with the owner's authorization key
and commits it through the ``ownership`` zome. Enforcement is the DHT's
(:mod:`ioe.dht.revocations`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ioe.crypto.derivation import OwnerAccount
from ioe.dht.service import DnaNetwork
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import EnrollmentCertificate, enrollment_record
from ioe.identity.revocation import NOTHING_VALID, REVOCATION_CONTEXT, KeyRevocation
from ioe.identity.service.enrollment import DEVICES_SETTING
from ioe.identity.service.host import IDENTITY_HOST
from ioe.identity.service.keyset_signing import SigningError, sign_with_keyset
from ioe.zomes.ownership.entries import REVOCATION_LINK
from ioe.zomes.ownership.validation import OWNERSHIP_ZOME

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost


REVOKE_TIMEOUT_S = 50.0
"""How long a revocation waits for officers' approvals (below `ioe key revoke`'s 60 s wait)."""


class RevocationError(IoEError):
    """A revocation the owner asked for cannot be made (the message says why)."""


def revocation_json(revocation: KeyRevocation) -> dict[str, Any]:
    return {
        "id": revocation.id.to_text(),
        "revoked": revocation.revoked.to_text(),
        "keyset": revocation.keyset.to_text(),
        "last_valid_seq": revocation.last_valid_seq,
        "head": revocation.head.to_text() if revocation.head is not None else None,
        "reason": revocation.reason,
        "replacement": (
            revocation.replacement.to_text() if revocation.replacement is not None else None
        ),
        "issued_us": revocation.issued_us,
    }


def _agent(text: str, what: str = "agent") -> AgentPubKey:
    try:
        return AgentPubKey.from_text(text)
    except (EncodingError, ValueError) as exc:
        raise RevocationError(f"not an {what} key: {exc}") from None


async def revoke_device(
    node: IdentityHost,
    agent_text: str,
    *,
    last_valid_seq: int | None = None,
    everything: bool = False,
    reason: str = "",
    replacement: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Revoke the key of a device this owner enrolled: its actions after ``last_valid_seq``
    (default: the latest one known; ``everything``: all of them) are void on every node."""
    account = node.conductor.account
    if not isinstance(account, OwnerAccount):
        raise RevocationError("only an owner's node can revoke its devices' keys")
    agent = _agent(agent_text, "agent")
    devices = node.conductor.db.get_setting(DEVICES_SETTING) or []
    if not isinstance(devices, list) or not any(
        isinstance(d, dict) and d.get("agent") == agent.to_text() for d in devices
    ):
        raise RevocationError(f"{agent_text} is not a device this owner enrolled")
    cell = node.conductor.owner_cell
    dht = node.dht_for(cell)
    activity = await dht.get_agent_activity(agent)
    found = enrollment_record(activity, agent)
    if found is None:
        raise RevocationError(
            f"the chain of {agent.to_text()} was not found on the network (has it ever joined?)"
        )
    pkg, proof = found
    try:
        certificate = EnrollmentCertificate.from_bytes(proof)
    except EncodingError as exc:
        raise RevocationError(f"the device's membrane proof is not a certificate: {exc}") from None
    if certificate.device != agent or certificate.owner != cell.agent:
        raise RevocationError("the device joined with a certificate of another owner")
    head = None
    if everything:
        last_valid_seq = NOTHING_VALID
    elif last_valid_seq is None:
        latest = max(activity, key=lambda s: s.action.seq)
        last_valid_seq, head = latest.action.seq, latest.hash
    try:
        unsigned = KeyRevocation.new(
            certificate.keyset,
            agent,
            last_valid_seq=last_valid_seq,
            issued_us=node.conductor.clock(),
            reason=reason,
            head=head,
            replacement=_agent(replacement, "replacement") if replacement else None,
        )
        # M of the certificate's keyset sign (its officers, when it is an enterprise's).
        signatures = await sign_with_keyset(
            node,
            REVOCATION_CONTEXT,
            unsigned.message(),
            keyset=certificate.keyset,
            what=f"revoke {agent.to_text()}" + (f": {reason}" if reason else ""),
            timeout_s=REVOKE_TIMEOUT_S if timeout_s is None else timeout_s,
        )
        revocation = replace(unsigned, signatures=signatures)
        revocation = KeyRevocation.from_bytes(revocation.to_bytes())  # the shape rules
    except EncodingError as exc:
        raise RevocationError(f"bad revocation: {exc}") from None
    except SigningError as exc:
        raise RevocationError(f"the revocation is not signed: {exc}") from None
    payload = {
        "revocation": revocation.to_bytes(),
        "certificate": proof,
        "enrolled_at": bytes(pkg.hash),
    }
    action = node.call(cell, OWNERSHIP_ZOME, "revoke", payload)
    assert isinstance(action, ActionHash)
    dht.revocations.learn(revocation)
    _mark_revoked(node, agent, revocation)
    return {**revocation_json(revocation), "action": action.to_text()}


def _mark_revoked(node: IdentityHost, agent: AgentPubKey, revocation: KeyRevocation) -> None:
    """Note the revocation in ``enrolled_devices`` (``ioe owner devices`` shows it)."""
    db = node.conductor.db
    devices = db.get_setting(DEVICES_SETTING) or []
    marked = [
        {**d, "revoked": revocation_json(revocation)}
        if isinstance(d, dict) and d.get("agent") == agent.to_text()
        else d
        for d in (devices if isinstance(devices, list) else [])
    ]
    db.put_setting(DEVICES_SETTING, marked)


async def known_revocations(dht: DnaNetwork, agent: AgentPubKey) -> list[KeyRevocation]:
    """The revocations of ``agent`` known here, after asking the network for its links."""
    for link in await dht.get_links(agent, REVOCATION_LINK):
        if not isinstance(link.target, ActionHash):
            continue
        record = await dht.get_record(link.target)
        if record is not None:
            dht.revocations.consider(record, dht.host)
    return dht.revocations.of(agent)


# ---------------------------------------------------------------------------------- routes


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/owner/revoke", revoke_route)
    app.router.add_get("/v1/revocations/{agent}", revocations_route)


def _node(request: web.Request) -> IdentityHost:
    return request.app[IDENTITY_HOST]


async def revoke_route(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("agent"), str)
        or type(body.get("last_valid_seq", None)) not in (int, type(None))
        or not isinstance(body.get("reason", ""), str)
        or not isinstance(body.get("replacement"), str | None)
    ):
        return web.json_response(
            {"error": "revoke takes {agent, last_valid_seq?, all?, reason?, replacement?}"},
            status=400,
        )
    try:
        result = await revoke_device(
            _node(request),
            body["agent"],
            last_valid_seq=body.get("last_valid_seq"),
            everything=bool(body.get("all")),
            reason=body.get("reason", ""),
            replacement=body.get("replacement"),
            timeout_s=_timeout(body.get("timeout")),
        )
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)


def _timeout(value: object) -> float | None:
    """An optional ``timeout`` (seconds) for the officers' approvals."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= 3600 else None


async def revocations_route(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        agent = _agent(request.match_info["agent"])
    except RevocationError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    found = await known_revocations(node.dht_for(node.conductor.owner_cell), agent)
    return web.json_response([revocation_json(r) for r in found])
