"""Signing a document with this owner's keyset: the one place where that happens.

:func:`sign_with_keyset` returns signatures of a document body by M distinct signers of a keyset
(:func:`~ioe.identity.authority.check_authorized` decides). A single owner's keyset is its own
authorization key, so it signs at once, locally. An enterprise keyset
(:mod:`ioe.identity.service.keyset`) needs its officers: the portfolio node signs with its own
authorization key when it is one of the signers (its human asked for the document), then asks every
other officer's node over ``/ioe/keyset-sign/1`` and waits (bounded) until M valid signatures are
in.

**Finding an officer's node.** Officers run ``ioe node run`` on their own owner accounts, so each
is a member of the core network whose agent info carries its owner membership, and that
membership carries the officer's keyset: its authorization key. The portfolio node asks the
peers of the members whose membership lists a missing signer; nothing else has to be configured.

**Decision: a request/response protocol outside any DNA**, like ``/ioe/enroll/1``, rather than a
remote zome call: a signing request writes nothing to any chain (the signature is a detached
Ed25519 signature of a body under a document context), and a remote call would need capability
grants between officers for no gain. Each message is ``{kind, body, sig}``; the ``sign_request``
body ``{from, id, context, document, keyset, signers, required, what, time_us}`` is signed by the
portfolio's owner agent under ``ioe/keyset-sign/sign_request/v1`` and refused when dated more
than 5 minutes from the officer's clock. The officer's node lists it as pending (``GET
/v1/owner/approvals``, signal ``approval_pending``) with a summary it reads from the document
itself (not from the requester's words), and signs only when its human approves (``ioe owner
approve ID``); the portfolio node re-sends the same request every :data:`POLL_S` seconds and
the answer carries the signature once given (**fetch**, so the officer needs no route back).
A refusal is signed by the officer's authorization key (over the request id, under
``ioe/keyset-sign/refused/v1``), so nobody else can refuse in its name.

**Signing without asking.** Another service of the node may set
:attr:`KeysetSigning.auto_approve`: a rule asked once, when a request first arrives, whether this
node's human already agreed to exactly that document (the community service: a membership of a
join this owner asked for). It judges the document itself, never the requester's words; when it
says yes the request is signed at once and signalled as ``approval_given``, else it waits for
the human as any other.

**Never trust the officer's word**: a signature counts only if it verifies for that body and
that context and its signer is a signer of the spec (:func:`valid_signers`); a node that answers
with anything else is not asked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ioe.crypto.derivation import OwnerAccount
from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.envelope import Envelope, is_fresh
from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity.authority import (
    KEYSET_CHANGE_CONTEXT,
    Keyset,
    check_authorized,
    valid_signers,
)
from ioe.identity.certificate import CERTIFICATE_CONTEXT
from ioe.identity.document import Signature, Signatures, sign
from ioe.identity.membership import OWNER_MEMBERSHIP_CONTEXT, OwnerMembership, is_certificate
from ioe.identity.revocation import REVOCATION_CONTEXT
from ioe.identity.service.keyset import node_keyset
from ioe.identity.transfer import TRANSFER_CONTEXT
from ioe.net.interface import NetworkError, PeerId

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost

from ioe.zomes.appstore.entries import INSTALLATION_CONTEXT
from ioe.zomes.community.entries import CHARTER_CONTEXT, MEMBERSHIP_CONTEXT

log = logging.getLogger(__name__)

PROTOCOL = "/ioe/keyset-sign/1"
REQUEST_KIND = "sign_request"
REFUSED_CONTEXT = b"ioe/keyset-sign/refused/v1"
DEFAULT_TIMEOUT_S = 120.0
POLL_S = 1.0
ASK_TIMEOUT_S = 5.0
MAX_SKEW_US = 5 * 60_000_000
APPROVAL_LIFETIME_US = 30 * 60_000_000
"""A request not approved within this time is forgotten by the officer's node."""
MAX_APPROVALS = 64
MAX_MESSAGE_BYTES = 96 * 1024
ID_BYTES = 16
MAX_WHAT = 256

DOCUMENT_KINDS: Mapping[bytes, str] = {
    CERTIFICATE_CONTEXT: "enrollment certificate",
    REVOCATION_CONTEXT: "key revocation",
    TRANSFER_CONTEXT: "transfer certificate",
    OWNER_MEMBERSHIP_CONTEXT: "owner membership",
    KEYSET_CHANGE_CONTEXT: "keyset change",
    CHARTER_CONTEXT: "community charter",
    MEMBERSHIP_CONTEXT: "community membership",
    INSTALLATION_CONTEXT: "app installation",
}
"""The only contexts an officer's node signs under: an authorization key signs nothing else."""

_SUMMARY_TEXT = ("name", "device_type", "zone", "visibility", "reason", "role")
_SUMMARY_INT = ("serial", "last_valid_seq", "issued_us", "seq")
_SUMMARY_AGENT = (
    "device", "owner", "revoked", "replacement", "old_device", "new_device", "member",
)  # fmt: skip
_SUMMARY_HASH = ("community",)
"""Fields naming a document by its id (a membership's community)."""
_SUMMARY_RENAMED = {"kind": "member_kind"}
"""Text fields shown under another name (``kind`` is the summary's own: the document's kind)."""
_SUMMARY_LIST = ("access",)
"""Lists of short words (a membership's access levels)."""


class SigningError(IoEError):
    """Not enough signatures of the keyset could be collected (the message says why)."""


class RequestRefused(IoEError):
    """A signing request (or an answer to one) was refused; the text says why."""


ENVELOPE = Envelope(
    what="signing request",
    context="ioe/keyset-sign/{kind}/v1",
    kinds=(REQUEST_KIND,),
    max_bytes=MAX_MESSAGE_BYTES,
    error=RequestRefused,
)


# ------------------------------------------------------------------------------ the messages


@dataclass(frozen=True, slots=True)
class SigningRequest:
    """A verified request to sign ``document`` under ``context`` for keyset ``keyset``."""

    request_id: bytes
    requester: AgentPubKey
    context: bytes
    document: bytes
    keyset: ExternalHash
    signers: tuple[AgentPubKey, ...]
    required: int
    what: str
    time_us: int


def request_message(request: SigningRequest, keys: KeyPair) -> bytes:
    """``request`` signed by ``keys`` (the portfolio's owner agent, its ``requester``)."""
    body: dict[str, Value] = {
        "id": request.request_id,
        "context": request.context,
        "document": request.document,
        "keyset": bytes(request.keyset),
        "signers": [bytes(s) for s in request.signers],
        "required": request.required,
        "what": request.what,
        "time_us": request.time_us,
    }
    return ENVELOPE.seal(keys, body, REQUEST_KIND)


def _typed(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if type(value) is not kind:
        raise RequestRefused(f"the signing request has no valid {name!r}")
    return value


def open_request(data: bytes, now_us: int) -> SigningRequest:
    """Decode and verify a signing request (:class:`RequestRefused` for anything wrong):
    signed by the agent it names, fresh, for a known document kind, well-formed."""
    opened = ENVELOPE.open(data)
    body, requester = opened.body, opened.signer
    time_us = _typed(body, "time_us", int)
    if not is_fresh(time_us, now_us, MAX_SKEW_US):
        raise RequestRefused("the signing request is stale or from the future (replayed?)")
    request_id = _typed(body, "id", bytes)
    context = _typed(body, "context", bytes)
    document = _typed(body, "document", bytes)
    what = _typed(body, "what", str)
    required = _typed(body, "required", int)
    raw_signers = _typed(body, "signers", list)
    if len(request_id) != ID_BYTES:
        raise RequestRefused(f"a signing request id is {ID_BYTES} bytes")
    if context not in DOCUMENT_KINDS:
        raise RequestRefused("this node signs only identity documents (unknown context)")
    if len(what) > MAX_WHAT or not what.isprintable():
        raise RequestRefused("the request's description is too long or has control characters")
    if not 0 < len(raw_signers) <= 16 or not all(type(s) is bytes for s in raw_signers):
        raise RequestRefused("the signing request lists 1 to 16 signers")
    try:
        signers = tuple(AgentPubKey(s) for s in raw_signers)
        keyset = ExternalHash(_typed(body, "keyset", bytes))
    except (EncodingError, ValueError) as exc:
        raise RequestRefused(f"malformed signing request: {exc}") from None
    if not 0 < required <= len(signers):
        raise RequestRefused("the signing request's required count is out of range")
    return SigningRequest(
        request_id, requester, context, document, keyset, signers, required, what, time_us
    )


def summary(context: bytes, document: bytes) -> dict[str, Any]:
    """What the officer is asked to sign, read from the document body itself: its kind, id and
    the fields a human checks (name, type, zone, device, revoked key, reason, ...)."""
    out: dict[str, Any] = {
        "kind": DOCUMENT_KINDS.get(context, "unknown"),
        "document_id": ExternalHash.of(document).to_text(),
    }
    try:
        value = decode(document, max_size=MAX_MESSAGE_BYTES)
    except EncodingError:
        out["readable"] = False
        return out
    if type(value) is not dict:
        out["readable"] = False
        return out
    for name in _SUMMARY_TEXT:
        if isinstance(value.get(name), str):
            out[name] = value[name][:MAX_WHAT]
    for name in _SUMMARY_INT:
        if type(value.get(name)) is int:
            out[name] = value[name]
    for name in _SUMMARY_AGENT:
        item = value.get(name)
        if type(item) is bytes:
            with contextlib.suppress(EncodingError, ValueError):
                out[name] = AgentPubKey(item).to_text()
    for name in _SUMMARY_HASH:
        item = value.get(name)
        if type(item) is bytes:
            with contextlib.suppress(EncodingError, ValueError):
                out[name] = ExternalHash(item).to_text()
    for name, shown in _SUMMARY_RENAMED.items():
        if isinstance(value.get(name), str):
            out[shown] = value[name][:MAX_WHAT]
    for name in _SUMMARY_LIST:
        items = value.get(name)
        if type(items) is list and all(isinstance(i, str) for i in items):
            out[name] = [i[:MAX_WHAT] for i in items[:16]]
    return out


def refusal_proof(keys: KeyPair, request_id: bytes) -> bytes:
    return keys.sign(REFUSED_CONTEXT, request_id)


# ------------------------------------------------------------------------------ officer side


@dataclass(slots=True)
class Approval:
    """A signing request as the officer's node keeps it until its human decides."""

    request: SigningRequest
    peer: PeerId
    received_us: int
    state: str = "pending"  # pending | approved | refused
    signature: bytes | None = None
    refusal: bytes | None = None

    @property
    def id(self) -> str:
        return self.request.request_id.hex()

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "id": self.id,
            "state": self.state,
            "what": r.what,
            "requester": r.requester.to_text(),
            "keyset": r.keyset.to_text(),
            "required": r.required,
            "signers": [s.to_text() for s in r.signers],
            "document": summary(r.context, r.document),
            "received_us": self.received_us,
        }

    def answer(self) -> dict[str, Value]:
        if self.state == "approved" and self.signature is not None:
            return {"state": "approved", "signature": self.signature}
        if self.state == "refused" and self.refusal is not None:
            return {"state": "refused", "proof": self.refusal}
        return {"state": "pending"}


@dataclass(slots=True)
class KeysetSigning:
    """Both sides of ``/ioe/keyset-sign/1`` on an owner's node: the officer's pending approvals
    (answered on the protocol), and the node's own requests (:func:`sign_with_keyset`)."""

    node: IdentityHost
    approvals: dict[str, Approval] = field(default_factory=dict)
    auto_approve: Callable[[SigningRequest], bool] | None = None
    """Asked once per new request whether it is signed without asking the human (see the
    module docstring); None: every request waits for the human."""

    @property
    def account(self) -> OwnerAccount | None:
        account = self.node.conductor.account
        return account if isinstance(account, OwnerAccount) else None

    def start(self) -> None:
        if self.account is not None:  # devices hold no authorization key
            self.node.network.set_handler(PROTOCOL, self._handle)

    def _now(self) -> int:
        return self.node.conductor.clock()

    def _expire(self) -> None:
        now = self._now()
        for key in [
            k for k, a in self.approvals.items() if now - a.received_us > APPROVAL_LIFETIME_US
        ]:
            del self.approvals[key]

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            return encode({"ok": self.receive(peer, data)})
        except RequestRefused as exc:
            return encode({"error": str(exc)})

    def receive(self, peer: PeerId, data: bytes) -> dict[str, Value]:
        """A signing request arrived: list it as pending (once), answer its state."""
        account = self.account
        if account is None:
            raise RequestRefused("this node holds no authorization key")
        request = open_request(data, self._now())
        if account.authorization_key().agent not in request.signers:
            raise RequestRefused("this node's authorization key is not one of the signers asked")
        self._expire()
        known = self.approvals.get(request.request_id.hex())
        if known is not None:
            same = (known.request.requester, known.request.context, known.request.document)
            if same != (request.requester, request.context, request.document):
                raise RequestRefused("this request id was used for another document")
            return known.answer()
        if len(self.approvals) >= MAX_APPROVALS:
            raise RequestRefused("too many signing requests waiting here; try again later")
        approval = Approval(request, peer, self._now())
        self.approvals[approval.id] = approval
        if self.auto_approve is not None and self.auto_approve(request):
            self.decide(approval.id, True)
            self.node.signals.publish({"type": "approval_given", **approval.to_json()})
        else:
            self.node.signals.publish({"type": "approval_pending", **approval.to_json()})
        return approval.answer()

    def pending(self) -> list[dict[str, Any]]:
        self._expire()
        return [a.to_json() for a in self.approvals.values()]

    def decide(self, approval_id: str, approve: bool) -> dict[str, Any]:
        """The human's answer: sign the document with this node's authorization key (under the
        document's own context), or refuse it. A decision is final."""
        account = self.account
        if account is None:
            raise RequestRefused("this node holds no authorization key")
        self._expire()
        approval = self.approvals.get(approval_id.strip().lower())
        if approval is None:
            raise RequestRefused(f"no signing request {approval_id!r} (see `ioe owner approvals`)")
        if approval.state != "pending":
            raise RequestRefused(f"request {approval.id} was already {approval.state}")
        keys = account.authorization_key()
        if approve:
            r = approval.request
            approval.signature = keys.sign(r.context, r.document)
            approval.state = "approved"
        else:
            approval.refusal = refusal_proof(keys, approval.request.request_id)
            approval.state = "refused"
        return approval.to_json()


# ------------------------------------------------------------------------------ requester side


def officer_peers(node: IdentityHost, signer: AgentPubKey) -> list[PeerId]:
    """The peers of the members whose owner membership lists ``signer`` as an authorization
    key (the officer's own node), other than this node."""
    found: list[PeerId] = []
    for dht in node.dnas.values():
        for info in dht.members().values():
            proof = info.membrane_proof
            if proof is None or info.peer_id == node.network.peer_id or is_certificate(proof):
                continue
            try:
                doc = OwnerMembership.from_bytes(proof)
            except EncodingError:
                continue
            if signer in doc.keyset.current.signers and PeerId(info.peer_id) not in found:
                found.append(PeerId(info.peer_id))
    return found


@dataclass(slots=True)
class _Collection:
    keyset: Keyset
    context: bytes
    document: bytes
    got: dict[AgentPubKey, Signature] = field(default_factory=dict)
    refused: set[AgentPubKey] = field(default_factory=set)
    forged: set[AgentPubKey] = field(default_factory=set)
    unreachable: set[AgentPubKey] = field(default_factory=set)
    request_id: bytes = b""

    @property
    def signatures(self) -> Signatures:
        return tuple(self.got.values())

    def authorized(self) -> bool:
        spec = self.keyset.current
        return check_authorized(spec, self.document, self.context, self.signatures) is None

    def waiting(self) -> list[AgentPubKey]:
        done = set(self.got) | self.refused | self.forged
        return [s for s in self.keyset.current.signers if s not in done]

    def take(self, signer: AgentPubKey, answer: Value) -> None:
        """Judge one officer's answer: only a signature that verifies counts."""
        if type(answer) is not dict:
            return
        if answer.get("state") == "approved":
            raw = answer.get("signature")
            ok = isinstance(raw, bytes) and len(raw) == SIGNATURE_SIZE
            candidate = Signature(signer, raw) if ok and isinstance(raw, bytes) else None
            spec = self.keyset.current
            if candidate is not None and valid_signers(
                spec, self.document, self.context, (candidate,)
            ):
                self.got[signer] = candidate
            else:
                log.warning("the node of %s answered with an invalid signature", signer.to_text())
                self.forged.add(signer)
        elif answer.get("state") == "refused":
            proof = answer.get("proof")
            if type(proof) is bytes and verify(signer, REFUSED_CONTEXT, self.request_id, proof):
                self.refused.add(signer)

    def progress(self) -> str:
        spec = self.keyset.current
        text = f"{len(self.got)} of {spec.sigs_required} required signatures"
        waiting = self.waiting()
        if waiting:
            text += "; waiting for approvals from " + ", ".join(s.to_text() for s in waiting)
        if self.refused:
            text += "; refused by " + ", ".join(s.to_text() for s in sorted(self.refused))
        if self.forged:
            text += "; invalid signatures (not counted) from " + ", ".join(
                s.to_text() for s in sorted(self.forged)
            )
        unreachable = [s for s in waiting if s in self.unreachable]
        if unreachable:
            text += "; no node found for " + ", ".join(s.to_text() for s in unreachable)
        return text


async def sign_with_keyset(
    node: IdentityHost,
    context: bytes,
    body: bytes,
    *,
    keyset: Keyset | None = None,
    what: str = "",
    timeout_s: float | None = None,
) -> Signatures:
    """Signatures of ``body`` under ``context`` by M distinct signers of ``keyset`` (default:
    the node's keyset, :func:`ioe.identity.service.keyset.node_keyset`).

    This node's authorization key signs when it is one of the signers; the other officers'
    nodes are asked and re-asked until M valid signatures are in, or :class:`SigningError`
    ("1 of 2 required signatures; waiting for approvals from ...") after ``timeout_s`` (default
    :data:`DEFAULT_TIMEOUT_S`), or as soon as refusals make M unreachable."""
    account = node.conductor.account
    if not isinstance(account, OwnerAccount):
        raise SigningError("only an owner's node signs with a keyset")
    keyset = keyset if keyset is not None else node_keyset(node.conductor)
    spec = keyset.current
    collection = _Collection(keyset, context, body)
    authz = account.authorization_key()
    if authz.agent in spec.signers:
        collection.got[authz.agent] = sign(authz, context, body)
    if collection.authorized():
        return collection.signatures
    if context not in DOCUMENT_KINDS:
        raise SigningError("only identity documents are signed by several officers")
    collection.request_id = secrets.token_bytes(ID_BYTES)
    what = "".join(c for c in what if c.isprintable())[:MAX_WHAT]
    loop = asyncio.get_running_loop()
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else max(0.0, timeout_s)
    deadline = loop.time() + timeout_s
    node.signals.publish(
        {
            "type": "approval_requested",
            "id": collection.request_id.hex(),
            "what": what,
            "required": spec.sigs_required,
            "waiting": [s.to_text() for s in collection.waiting()],
        }
    )
    for _round in range(int(timeout_s / POLL_S) + 2):  # bounded, and by the deadline
        await _ask_round(node, collection, what)
        if collection.authorized():
            return collection.signatures
        possible = len(collection.got) + len(collection.waiting())
        if possible < spec.sigs_required:
            raise SigningError(f"cannot be authorized: {collection.progress()}")
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.sleep(min(POLL_S, remaining))
    raise SigningError(collection.progress())


async def _ask_round(node: IdentityHost, collection: _Collection, what: str) -> None:
    """Ask every officer not yet answered, all at once."""
    account = node.conductor.account
    assert isinstance(account, OwnerAccount)
    spec = collection.keyset.current
    request = SigningRequest(
        collection.request_id,
        account.agent_key().agent,
        collection.context,
        collection.document,
        collection.keyset.id,
        spec.signers,
        spec.sigs_required,
        what,
        node.conductor.clock(),
    )
    data = request_message(request, account.agent_key())

    async def ask(signer: AgentPubKey) -> None:
        peers = officer_peers(node, signer)
        if not peers:
            collection.unreachable.add(signer)
            return
        collection.unreachable.discard(signer)
        for peer in peers:
            try:
                raw = await node.network.request(peer, PROTOCOL, data, timeout=ASK_TIMEOUT_S)
                reply = decode(raw, max_size=MAX_MESSAGE_BYTES)
            except (NetworkError, EncodingError) as exc:
                log.info("officer node %s not reached: %s", peer, exc)
                continue
            if type(reply) is dict and "ok" in reply:
                collection.take(signer, reply["ok"])
                if signer in collection.got or signer in collection.refused:
                    return
            elif type(reply) is dict:
                log.info("officer node %s refused the request: %s", peer, reply.get("error"))

    await asyncio.gather(*(ask(s) for s in collection.waiting()))
