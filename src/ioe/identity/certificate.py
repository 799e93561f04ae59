"""Enrollment certificates: an owner's signed statement that an agent key is its device.

The certificate is the membrane proof of every IoE DNA: :func:`membrane_check` is an
``IntegrityZome.membrane`` rule. It names the device's agent key, type, name, zone, visibility,
policy and the networks and neighbourhoods it may join, and carries:

* the owner's whole :class:`~ioe.identity.authority.Keyset`, so the keyset id and the spec in
  force are derived, not claimed;
* the **owner binding**: the owner's agent (agent 0 of device 0) signs the keyset id, linking
  that agent to the keyset (the keyset in turn signs the certificate naming the owner agent);
* signatures by M of the keyset's current spec over everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.encoding import Value
from ioe.engine.integrity import VALID, Invalid, Outcome
from ioe.engine.records import AgentValidationPkg, SignedAction
from ioe.engine.validation import GENESIS_LENGTH
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.authority import (
    Keyset,
    check_authorized,
    keyset_problem,
    require_signature_shapes,
)
from ioe.identity.document import Signatures, SignedDocument
from ioe.vocabulary import DeviceType
from ioe.zones import zone_problem

CERTIFICATE_CONTEXT = b"ioe/identity/enrollment/v1"
OWNER_BINDING_CONTEXT = b"ioe/identity/owner-binding/v1"
CERTIFICATE_VERSION = 1
MAX_CERTIFICATE_BYTES = 60 * 1024
"""Below the engine's 64 KiB membrane-proof limit."""
MAX_NETWORKS = 16
MAX_NEIGHBOURHOODS = 16
MAX_CONTROLLERS = 16
NETWORK_PROPERTY = "network"
"""DNA property naming the network, matched against a certificate's ``networks``."""
TRUSTED_KEYSETS_PROPERTY = "trusted_keysets"
"""Optional DNA property: list of keyset ids (32 bytes) allowed to enroll members."""
OWNER = "owner"
"""In a policy's ``remote_control``: the device's owner (its owner agent) may control it."""


class DeviceVisibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class Policy:
    """What a device may do and who may command it. Grid-safety signals are always obeyed."""

    may_trade: bool
    remote_control: tuple[AgentPubKey | str, ...]
    grid_safety: bool = True
    discoverable: bool = True
    reports: bool = True


FACTORY_DEFAULT_POLICY = Policy(may_trade=False, remote_control=(), grid_safety=True)
"""An unenrolled device: discoverable, reports, obeys grid safety; no trading, no controllers."""

ENROLLED_DEFAULT_POLICY = Policy(may_trade=True, remote_control=(OWNER,))
"""A freshly enrolled device: as the factory default, plus control by its owner, and trading
unless its owner says otherwise (``ioe owner enroll --no-trade``): an owner enrolls a plug to be
paid for what it saves, and a meter to pay it."""


def policy_problem(policy: Policy) -> str | None:
    """Why ``policy`` is not acceptable, or None."""
    if not policy.grid_safety:
        return "grid-safety signals cannot be switched off"
    if len(policy.remote_control) > MAX_CONTROLLERS:
        return f"at most {MAX_CONTROLLERS} remote controllers"
    if len(set(policy.remote_control)) != len(policy.remote_control):
        return "a remote controller is listed twice"
    for item in policy.remote_control:
        if isinstance(item, str) and item != OWNER:
            return f"remote controller {item[:40]!r} is neither an agent key nor {OWNER!r}"
    return None


def may_control(policy: Policy, caller: AgentPubKey, owner: AgentPubKey | None) -> bool:
    """Whether ``caller`` may remotely control a device with ``policy`` owned by ``owner``."""
    if caller in policy.remote_control:
        return True
    return owner is not None and caller == owner and OWNER in policy.remote_control


class OwnedDocument(SignedDocument):
    """A document carrying its owner's whole keyset and the owner binding (enrollment
    certificates and owner memberships), so the keyset id is derived, never claimed."""

    __slots__ = ()
    keyset: Keyset
    owner_binding: bytes

    @property
    def keyset_id(self) -> ExternalHash:
        return self.keyset.id

    version: int
    signatures: Signatures

    @classmethod
    def decoded_owned(cls, data: bytes, version: int, what: str) -> Self:
        """Strict decoding of the shape every owned document shares: its version, a 64-byte
        owner binding, and signature shapes its keyset allows (not the signatures' validity)."""
        doc = cls.decoded(data)
        wire.require(doc.version == version, f"unknown version {doc.version}")
        wire.require(len(doc.owner_binding) == SIGNATURE_SIZE, "owner binding is 64 bytes")
        require_signature_shapes(doc.signatures, doc.keyset, what)
        return doc


@dataclass(frozen=True, slots=True)
class EnrollmentCertificate(OwnedDocument):
    version: int
    keyset: Keyset
    device: AgentPubKey
    device_type: DeviceType
    name: str
    zone: str
    owner: AgentPubKey
    visibility: DeviceVisibility
    policy: Policy
    networks: tuple[str, ...]
    neighbourhoods: tuple[str, ...]
    issued_us: int
    serial: int
    owner_binding: bytes
    signatures: Signatures = ()

    CONTEXT = CERTIFICATE_CONTEXT
    MAX_BYTES = MAX_CERTIFICATE_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> EnrollmentCertificate:
        """Strict decoding; :class:`EncodingError` for anything malformed. Signatures are
        checked by :func:`certificate_problem`, not here."""
        cert = cls.decoded_owned(data, CERTIFICATE_VERSION, "certificate")
        problem = _fields_problem(cert)
        if problem:
            raise EncodingError(problem)
        return cert


def bind_owner(owner_agent: KeyPair, keyset: Keyset) -> bytes:
    """The owner binding: the owner's agent signs the keyset id."""
    return owner_agent.sign(OWNER_BINDING_CONTEXT, keyset.id)


def issue(
    *,
    keyset: Keyset,
    owner_agent: KeyPair,
    device: AgentPubKey,
    device_type: DeviceType,
    name: str,
    zone: str,
    networks: tuple[str, ...],
    issued_us: int,
    serial: int,
    neighbourhoods: tuple[str, ...] = (),
    visibility: DeviceVisibility = DeviceVisibility.PUBLIC,
    policy: Policy = ENROLLED_DEFAULT_POLICY,
) -> EnrollmentCertificate:
    """An unsigned certificate with the owner binding made; sign it with
    :meth:`EnrollmentCertificate.signed_by` (M authorization keys)."""
    cert = EnrollmentCertificate(
        CERTIFICATE_VERSION,
        keyset,
        device,
        device_type,
        name,
        zone,
        owner_agent.agent,
        visibility,
        policy,
        networks,
        neighbourhoods,
        issued_us,
        serial,
        bind_owner(owner_agent, keyset),
    )
    problem = _fields_problem(cert)
    if problem:
        raise ValueError(problem)
    return cert


def _fields_problem(cert: EnrollmentCertificate) -> str | None:
    problem = wire.text_problem(cert.name, "the device name") or zone_problem(cert.zone)
    if problem:
        return problem
    if not 0 < len(cert.networks) <= MAX_NETWORKS:
        return f"a certificate names 1 to {MAX_NETWORKS} networks"
    for network in cert.networks:
        problem = wire.text_problem(network, "a network name")
        if problem:
            return problem
    if len(cert.neighbourhoods) > MAX_NEIGHBOURHOODS:
        return f"a certificate names at most {MAX_NEIGHBOURHOODS} neighbourhoods"
    for zone in cert.neighbourhoods:
        problem = zone_problem(zone)
        if problem:
            return f"neighbourhood: {problem}"
    if cert.issued_us < 0 or cert.serial < 0:
        return "issued_us and serial are non-negative"
    return policy_problem(cert.policy)


def certificate_problem(cert: EnrollmentCertificate) -> str | None:
    """Why ``cert`` is not a valid enrollment certificate, or None: well-formed, a valid keyset
    chain, not self-signed (the device and the owner agent are not keyset keys and differ), the
    owner binding verifies, and M distinct signers of the current spec signed it."""
    if cert.version != CERTIFICATE_VERSION:
        return f"unknown certificate version {cert.version}"
    problem = _fields_problem(cert) or keyset_problem(cert.keyset)
    if problem:
        return problem
    signers = cert.keyset.all_signers()
    if cert.device in signers or cert.device == cert.owner:
        return "self-signed: the device cannot be its own owner or authority"
    if cert.owner in signers:
        return "the owner agent must not be one of its own authorization keys"
    if not verify(cert.owner, OWNER_BINDING_CONTEXT, cert.keyset_id, cert.owner_binding):
        return "the owner agent did not bind itself to this keyset"
    problem = check_authorized(
        cert.keyset.current, cert.message(), CERTIFICATE_CONTEXT, cert.signatures
    )
    return f"certificate not authorized: {problem}" if problem else None


def membrane_check(
    agent: AgentPubKey, proof: bytes | None, dna_properties: Mapping[str, Value]
) -> Outcome:
    """Membrane rule of IoE DNAs: ``proof`` must be a valid enrollment certificate of
    ``agent`` naming this network (DNA property ``network``) and, when the DNA lists
    ``trusted_keysets``, issued by one of them."""
    if proof is None:
        return Invalid("no enrollment certificate: the device is not enrolled")
    try:
        cert = EnrollmentCertificate.from_bytes(proof)
    except EncodingError as exc:
        return Invalid(f"malformed enrollment certificate: {exc}")
    if cert.device != agent:
        return Invalid("the enrollment certificate is for another agent")
    problem = certificate_problem(cert)
    if problem:
        return Invalid(problem)
    network = dna_properties.get(NETWORK_PROPERTY)
    if not isinstance(network, str):
        return Invalid(f"this DNA has no {NETWORK_PROPERTY!r} property to check certificates by")
    if network not in cert.networks:
        return Invalid(f"the certificate does not admit this device to network {network!r}")
    trusted = dna_properties.get(TRUSTED_KEYSETS_PROPERTY)
    if trusted is not None and (
        not isinstance(trusted, list | tuple) or bytes(cert.keyset_id) not in trusted
    ):
        return Invalid("the certificate's keyset is not trusted by this network")
    return VALID


def enrollment_record(
    activity: Sequence[SignedAction], agent: AgentPubKey
) -> tuple[SignedAction, bytes] | None:
    """``agent``'s ``AgentValidationPkg`` at the start of its chain (``activity``, in order) and
    the membrane proof it joined with; None when that record is missing or carries no proof.
    Only genesis records are looked at: the package is written there and nowhere else."""
    for signed in activity[:GENESIS_LENGTH]:
        action = signed.action
        if isinstance(action, AgentValidationPkg):
            if action.author != agent or action.membrane_proof is None:
                return None
            return signed, action.membrane_proof
    return None


def enrolled_certificate(
    activity: Sequence[SignedAction], agent: AgentPubKey
) -> EnrollmentCertificate | None:
    """The enrollment certificate ``agent`` joined with (:func:`enrollment_record`), when it
    is a valid certificate of that very agent; else None (an owner's own agent, an unenrolled
    or a forged device)."""
    found = enrollment_record(activity, agent)
    if found is None:
        return None
    try:
        cert = EnrollmentCertificate.from_bytes(found[1])
    except EncodingError:
        return None
    if cert.device != agent or certificate_problem(cert) is not None:
        return None
    return cert
