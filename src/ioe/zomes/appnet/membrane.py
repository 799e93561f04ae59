"""The membrane of an app network: only members of the enrolled community (and its manager)
join, each under an app key of its own.

An app network is the DNA an installed app runs in (``ioe.dnas.app_dna``): its properties name
the community, the installation and the core network. An agent joins it with an
:class:`AppMembership` as membrane proof, a self-contained document every node checks without
looking anything up:

- ``app_agent``: the key the member uses in this app. It is derived from the member's device
  seed for this installation (``ioe.conductor.app_agent_index``), so it is not the device key
  and can be dropped (the app uninstalled, the member removed) without touching the device key;
- ``member``: the member's key in the core network, with ``member_proof``, the membrane proof it
  joined the core network with (a device's enrollment certificate, a person's owner membership),
  which names its owner keyset;
- ``charter`` and ``membership``: the community's charter and the member's membership, signed
  by the manager keyset and the member's owner keyset (``membership`` is empty for the
  community's manager, an owner agent of the charter's manager keyset);
- one signature by ``member`` over the rest, under :data:`APP_MEMBERSHIP_CONTEXT`: the member
  binds this app key to itself.

What a pure rule cannot see is a revocation made later: a removed member's own node stops its
app cells, and every node running the app drops agents whose membership it finds revoked
(``ioe.appstore.runner``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import Value
from ioe.engine.integrity import VALID, Invalid, Outcome, Valid
from ioe.engine.zome import IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity.authority import Keyset
from ioe.identity.certificate import (
    NETWORK_PROPERTY,
    TRUSTED_KEYSETS_PROPERTY,
    EnrollmentCertificate,
)
from ioe.identity.document import Document, Signatures, sign
from ioe.identity.membership import OwnerMembership, core_membrane, is_certificate
from ioe.zomes.community.entries import (
    CommunityCharter,
    CommunityMembership,
    checked_charter,
    membership_problem,
)

APP_MEMBERSHIP_CONTEXT = b"ioe/app/membership/v1"
APP_MEMBERSHIP_VERSION = 1
MAX_APP_MEMBERSHIP_BYTES = 64 * 1024
COMMUNITY_PROPERTY = "community"
INSTALLATION_PROPERTY = "installation"
APP_PROPERTY = "app"


@dataclass(frozen=True, slots=True)
class AppMembership(Document):
    """An app key's membrane proof (see the module docstring)."""

    version: int
    app_agent: AgentPubKey
    member: AgentPubKey
    installation: ExternalHash
    charter: bytes
    membership: bytes
    member_proof: bytes
    signatures: Signatures = ()

    CONTEXT = APP_MEMBERSHIP_CONTEXT
    MAX_BYTES = MAX_APP_MEMBERSHIP_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> AppMembership:
        return cls.decoded(data)


def app_membership(
    member_keys: KeyPair,
    app_agent: AgentPubKey,
    installation: ExternalHash,
    *,
    charter: bytes,
    membership: bytes,
    member_proof: bytes,
) -> AppMembership:
    """The membrane proof of ``app_agent``, signed by the member's core key."""
    unsigned = AppMembership(
        APP_MEMBERSHIP_VERSION,
        app_agent,
        member_keys.agent,
        installation,
        charter,
        membership,
        member_proof,
    )
    signature = sign(member_keys, APP_MEMBERSHIP_CONTEXT, unsigned.message())
    return AppMembership(
        APP_MEMBERSHIP_VERSION,
        app_agent,
        member_keys.agent,
        installation,
        charter,
        membership,
        member_proof,
        (signature,),
    )


def owner_keyset_of_proof(proof: bytes) -> tuple[Keyset, bool]:
    """The owner keyset a core membrane proof names, and whether it is a person's (an owner
    membership) rather than a device's (:class:`EncodingError` if it is neither)."""
    if is_certificate(proof):
        return EnrollmentCertificate.from_bytes(proof).keyset, False
    return OwnerMembership.from_bytes(proof).keyset, True


def app_membrane(
    agent: AgentPubKey, proof: bytes | None, properties: Mapping[str, Value]
) -> Outcome:
    """Membrane rule of an app network (see the module docstring)."""
    if proof is None:
        return Invalid("an app network admits members of its community only (no proof given)")
    try:
        doc = AppMembership.from_bytes(proof)
    except EncodingError as exc:
        return Invalid(f"malformed app membership: {exc}")
    problem = _problem(agent, doc, properties)
    return Invalid(problem) if problem else VALID


def _problem(agent: AgentPubKey, doc: AppMembership, properties: Mapping[str, Value]) -> str | None:
    if doc.version != APP_MEMBERSHIP_VERSION:
        return f"unknown app membership version {doc.version}"
    if doc.app_agent != agent:
        return "the app membership is for another app key"
    if bytes(doc.installation) != properties.get(INSTALLATION_PROPERTY):
        return "the app membership is for another installation"
    signed = [s for s in doc.signatures if s.signer == doc.member]
    if len(doc.signatures) != 1 or not signed:
        return "an app membership is signed by its member"
    if not verify(doc.member, APP_MEMBERSHIP_CONTEXT, doc.message(), signed[0].signature):
        return "the member's signature does not match the app membership"
    charter = checked_charter(doc.charter)
    if isinstance(charter, str):
        return charter
    if bytes(charter.id) != properties.get(COMMUNITY_PROPERTY):
        return "the charter is not this app network's community"
    core_properties = {
        key: properties[key]
        for key in (NETWORK_PROPERTY, TRUSTED_KEYSETS_PROPERTY)
        if key in properties
    }
    outcome = core_membrane(doc.member, doc.member_proof, core_properties)
    if not isinstance(outcome, Valid):
        reason = outcome.reason if isinstance(outcome, Invalid) else "unresolved"
        return f"the member is not a member of the core network: {reason}"
    try:
        owner, person = owner_keyset_of_proof(doc.member_proof)
    except EncodingError as exc:
        return f"the member's proof does not decode: {exc}"
    if not doc.membership:
        if person and owner.id == charter.manager.id:
            return None
        return "without a membership, only the community's manager joins"
    return _membership_problem(doc, charter, owner)


def _membership_problem(doc: AppMembership, charter: CommunityCharter, owner: Keyset) -> str | None:
    try:
        membership = CommunityMembership.from_bytes(doc.membership)
    except EncodingError as exc:
        return f"malformed community membership: {exc}"
    if membership.member != doc.member:
        return "the community membership is another member's"
    problem = membership_problem(membership, charter, owner)
    return f"not a member of the community: {problem}" if problem else None


integrity = IntegrityZome(name="app_membrane", version="1", membrane=app_membrane)
"""The zome every app DNA starts with: no entries, only the membrane rule."""
