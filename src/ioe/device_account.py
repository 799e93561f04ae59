"""An enrolled device's key material: its device seed, its index, and its owner's certificate.

An owner's data directory keeps the owner's root seed (:class:`ioe.crypto.derivation.OwnerAccount`).
An enrolled device's data directory keeps only what the owner provisioned to it
(``docs/identity.md``, "Enrolling a device"): device seed ``i`` derived from the owner's root seed,
the index ``i``, and the enrollment certificate of the device's agent 0. The device can derive its
own agents and nothing of its siblings or of the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ioe.crypto.derivation import SUBKEY_SIZE, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.errors import EncodingError, KeystoreError
from ioe.hashing import AgentPubKey
from ioe.identity.certificate import EnrollmentCertificate, certificate_problem

DEVICE_SEED_SECRET = "device_seed"
DEVICE_INDEX_SECRET = "device_index"
CERTIFICATE_SECRET = "certificate"


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    """Device seed ``index`` of an owner, with the certificate enrolling its agent 0."""

    index: int
    certificate: EnrollmentCertificate
    _seed: bytes = field(repr=False)

    @classmethod
    def of(cls, seed: bytes, index: int, certificate: EnrollmentCertificate) -> DeviceAccount:
        """Check that ``certificate`` is valid and names agent 0 of ``seed``."""
        if len(seed) != SUBKEY_SIZE or not 0 < index < 2**63:
            raise KeystoreError("a device seed is 32 bytes and its index is positive")
        problem = certificate_problem(certificate)
        if problem:
            raise KeystoreError(f"the enrollment certificate is not valid: {problem}")
        if certificate.device != device_agent_key(seed, 0).agent:
            raise KeystoreError("the enrollment certificate is for another key than this seed's")
        return cls(index, certificate, bytes(seed))

    @classmethod
    def from_secrets(cls, secrets: dict[str, bytes]) -> DeviceAccount:
        try:
            index = int.from_bytes(secrets[DEVICE_INDEX_SECRET], "big")
            cert = EnrollmentCertificate.from_bytes(secrets[CERTIFICATE_SECRET])
            return cls.of(secrets[DEVICE_SEED_SECRET], index, cert)
        except (KeyError, EncodingError) as exc:
            raise KeystoreError(f"the keystore holds no usable device account: {exc}") from exc

    def to_secrets(self) -> dict[str, bytes]:
        return {
            DEVICE_SEED_SECRET: self._seed,
            DEVICE_INDEX_SECRET: self.index.to_bytes(8, "big"),
            CERTIFICATE_SECRET: self.certificate.to_bytes(),
        }

    def device_seed(self, index: int) -> bytes:
        """This device's own seed; any other index is refused (a device holds only its own)."""
        if index != self.index:
            raise KeystoreError(f"this device holds device seed {self.index}, not {index}")
        return self._seed

    def agent_key(self) -> KeyPair:
        """The device's agent 0: the key its certificate enrolls."""
        return device_agent_key(self._seed, 0)

    @property
    def owner(self) -> AgentPubKey:
        """The owner agent named by the certificate."""
        return self.certificate.owner
