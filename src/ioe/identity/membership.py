"""Owner membership, and the core DNA's membrane rule: no certificate, no membership.

Devices join the core network with their :class:`~ioe.identity.certificate.EnrollmentCertificate`.
An owner's own agent (agent 0 of device 0) has no certificate: nobody above it enrolls it. It
joins with an :class:`OwnerMembership` instead: its keyset (the whole chain), the owner binding
(the owner agent's signature of the keyset id, as certificates carry) and signatures by M of the
keyset's current spec over the rest. The binding and the keyset's signatures link owner agent ↔
keyset both ways, exactly as a certificate does for the owner it names.

:func:`core_membrane` is the membrane rule (an ``IntegrityZome.membrane``): the proof is the bytes
of one document or the other. The two are told apart by their fields: both are canonical CBOR
maps decoded with their exact field set, and only a certificate has a ``device`` field, so one
map is never both. Certificates keep the very bytes they have always had (chains written before
this rule, and rules that read a device's certificate from its ``AgentValidationPkg``, are
unaffected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import Value, decode
from ioe.engine.integrity import VALID, Invalid, Outcome
from ioe.engine.records import SignedAction
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey
from ioe.identity import wire
from ioe.identity.authority import (
    Keyset,
    check_authorized,
    keyset_problem,
)
from ioe.identity.certificate import (
    MAX_CERTIFICATE_BYTES,
    OWNER_BINDING_CONTEXT,
    TRUSTED_KEYSETS_PROPERTY,
    EnrollmentCertificate,
    OwnedDocument,
    bind_owner,
    enrollment_record,
    membrane_check,
)
from ioe.identity.document import Signatures

OWNER_MEMBERSHIP_CONTEXT = b"ioe/identity/owner-membership/v1"
OWNER_MEMBERSHIP_VERSION = 1
MAX_OWNER_MEMBERSHIP_BYTES = MAX_CERTIFICATE_BYTES
"""Room for a full keyset chain, and below the engine's 64 KiB membrane-proof limit."""
CERTIFICATE_FIELD = "device"
"""The field only an enrollment certificate's map has: how a proof's kind is recognised."""
NO_PROOF = "no membrane proof: an agent joins with an enrollment certificate or an owner membership"


@dataclass(frozen=True, slots=True)
class OwnerMembership(OwnedDocument):
    """A keyset's statement that ``owner`` is its owner agent (the owner's membrane proof)."""

    version: int
    keyset: Keyset
    owner: AgentPubKey
    owner_binding: bytes
    issued_us: int
    signatures: Signatures = ()

    CONTEXT = OWNER_MEMBERSHIP_CONTEXT
    MAX_BYTES = MAX_OWNER_MEMBERSHIP_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> OwnerMembership:
        """Strict decoding; :class:`EncodingError` for anything malformed. Signatures are
        checked by :func:`owner_membership_problem`, not here."""
        doc = cls.decoded_owned(data, OWNER_MEMBERSHIP_VERSION, "membership")
        wire.require(doc.issued_us >= 0, "issued_us is non-negative")
        return doc


def owner_membership(keyset: Keyset, owner_agent: KeyPair, issued_us: int) -> OwnerMembership:
    """An unsigned owner membership with the owner binding made; sign it with
    :meth:`OwnerMembership.signed_by` (M authorization keys of ``keyset``)."""
    if issued_us < 0:
        raise ValueError("issued_us is non-negative")
    return OwnerMembership(
        OWNER_MEMBERSHIP_VERSION,
        keyset,
        owner_agent.agent,
        bind_owner(owner_agent, keyset),
        issued_us,
    )


def owner_membership_problem(doc: OwnerMembership) -> str | None:
    """Why ``doc`` is not a valid owner membership, or None: a valid keyset chain, the owner
    agent is none of the keyset's keys (not self-signed), the owner binding verifies, and M
    distinct signers of the current spec signed the body."""
    if doc.version != OWNER_MEMBERSHIP_VERSION:
        return f"unknown owner membership version {doc.version}"
    if doc.issued_us < 0:
        return "issued_us is non-negative"
    problem = keyset_problem(doc.keyset)
    if problem:
        return problem
    if doc.owner in doc.keyset.all_signers():
        return "self-signed: the owner agent must not be one of its own keyset's keys"
    if not verify(doc.owner, OWNER_BINDING_CONTEXT, doc.keyset_id, doc.owner_binding):
        return "the owner agent did not bind itself to this keyset"
    problem = check_authorized(
        doc.keyset.current, doc.message(), OWNER_MEMBERSHIP_CONTEXT, doc.signatures
    )
    return f"owner membership not authorized: {problem}" if problem else None


def is_certificate(proof: bytes) -> bool:
    """Whether ``proof`` is shaped as an enrollment certificate (a map with a ``device``
    field) rather than an owner membership. Anything undecodable is neither (False)."""
    if len(proof) > MAX_CERTIFICATE_BYTES:
        return False
    try:
        value = decode(proof)
    except EncodingError:
        return False
    return isinstance(value, dict) and CERTIFICATE_FIELD in value


def core_membrane(
    agent: AgentPubKey, proof: bytes | None, dna_properties: Mapping[str, Value]
) -> Outcome:
    """Membrane rule of the core DNA: ``proof`` is an enrollment certificate of ``agent``
    (:func:`~ioe.identity.certificate.membrane_check`) or an owner membership naming ``agent``.

    An owner membership names no networks (an owner belongs to every network of its keyset), so
    the ``network`` property is checked for certificates only; a DNA listing
    ``trusted_keysets`` admits only owners of those keysets, as it does devices."""
    if proof is None:
        return Invalid(NO_PROOF)
    if is_certificate(proof):
        return membrane_check(agent, proof, dna_properties)
    try:
        doc = OwnerMembership.from_bytes(proof)
    except EncodingError as exc:
        return Invalid(f"malformed owner membership: {exc}")
    if doc.owner != agent:
        return Invalid("the owner membership is for another agent")
    problem = owner_membership_problem(doc)
    if problem:
        return Invalid(problem)
    trusted = dna_properties.get(TRUSTED_KEYSETS_PROPERTY)
    if trusted is not None and (
        not isinstance(trusted, list | tuple) or bytes(doc.keyset_id) not in trusted
    ):
        return Invalid("the owner's keyset is not trusted by this network")
    return VALID


NO_TRADE = "its enrollment does not allow trading (its owner enrolled it with --no-trade)"
"""Why a device whose certificate's policy says ``may_trade=False`` takes no part in the
currency."""


def trade_problem(
    agent: AgentPubKey, proof: bytes | None, dna_properties: Mapping[str, Value]
) -> str | None:
    """Why ``agent``, which joined with membrane ``proof``, may not trade, pay or be paid, or
    None. An owner agent (an owner membership) may; a device may when its certificate's
    policy says ``may_trade``; an agent the core membrane would not admit (unenrolled,
    provisional, forged) never does."""
    outcome = core_membrane(agent, proof, dna_properties)
    if isinstance(outcome, Invalid):
        return f"it is not enrolled ({outcome.reason}): an unenrolled device never trades"
    # admitted, so a proof shaped as a certificate decodes as one
    cert = EnrollmentCertificate.from_bytes(proof) if proof and is_certificate(proof) else None
    return NO_TRADE if cert is not None and not cert.policy.may_trade else None


def chain_trade_problem(
    activity: Sequence[SignedAction], agent: AgentPubKey, dna_properties: Mapping[str, Value]
) -> str | None:
    """:func:`trade_problem` for the proof ``agent``'s chain starts with (``activity``, in
    order from genesis): the membership it joined with, not what it may claim later."""
    found = enrollment_record(activity, agent)
    return trade_problem(agent, None if found is None else found[1], dna_properties)
