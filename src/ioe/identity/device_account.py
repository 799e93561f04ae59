"""An enrolled device's key material: its device seed, its index, and its owner's certificate.

An owner's data directory keeps the owner's root seed (:class:`ioe.crypto.derivation.OwnerAccount`).
An enrolled device's data directory keeps only what the owner provisioned to it
(``docs/identity.md``, "Enrolling a device"): device seed ``i`` derived from the owner's root seed,
the index ``i``, the agent index ``j`` it runs as (0 until a key rotation moves it on) and the
enrollment certificate of that agent. The device can derive its own agents and nothing of its
siblings or of the root.
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
DEVICE_AGENT_SECRET = "device_agent"
"""The agent index (absent in keystores written before rotation: agent 0)."""
CERTIFICATE_SECRET = "certificate"


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    """Device seed ``index`` of an owner, with the certificate enrolling its agent ``agent``."""

    index: int
    certificate: EnrollmentCertificate
    _seed: bytes = field(repr=False)
    agent: int = 0

    @classmethod
    def of(
        cls, seed: bytes, index: int, certificate: EnrollmentCertificate, agent: int = 0
    ) -> DeviceAccount:
        """Check that ``certificate`` is valid and names agent ``agent`` of ``seed``."""
        if len(seed) != SUBKEY_SIZE or not 0 < index < 2**63:
            raise KeystoreError("a device seed is 32 bytes and its index is positive")
        if type(agent) is not int or not 0 <= agent < 2**63:
            raise KeystoreError("an agent index is a non-negative integer")
        problem = certificate_problem(certificate)
        if problem:
            raise KeystoreError(f"the enrollment certificate is not valid: {problem}")
        if certificate.device != device_agent_key(seed, agent).agent:
            raise KeystoreError("the enrollment certificate is for another key than this seed's")
        return cls(index, certificate, bytes(seed), agent)

    @classmethod
    def from_secrets(cls, secrets: dict[str, bytes]) -> DeviceAccount:
        try:
            index = int.from_bytes(secrets[DEVICE_INDEX_SECRET], "big")
            cert = EnrollmentCertificate.from_bytes(secrets[CERTIFICATE_SECRET])
            agent = int.from_bytes(secrets.get(DEVICE_AGENT_SECRET, b""), "big")
            return cls.of(secrets[DEVICE_SEED_SECRET], index, cert, agent)
        except (KeyError, EncodingError) as exc:
            raise KeystoreError(f"the keystore holds no usable device account: {exc}") from exc

    def to_secrets(self) -> dict[str, bytes]:
        return {
            DEVICE_SEED_SECRET: self._seed,
            DEVICE_INDEX_SECRET: self.index.to_bytes(8, "big"),
            DEVICE_AGENT_SECRET: self.agent.to_bytes(8, "big"),
            CERTIFICATE_SECRET: self.certificate.to_bytes(),
        }

    def rotated(self, certificate: EnrollmentCertificate) -> DeviceAccount:
        """The same device seed on its next agent (a key rotation), with ``certificate`` (which
        must name that agent)."""
        return DeviceAccount.of(self._seed, self.index, certificate, self.agent + 1)

    def device_seed(self, index: int) -> bytes:
        """This device's own seed; any other index is refused (a device holds only its own)."""
        if index != self.index:
            raise KeystoreError(f"this device holds device seed {self.index}, not {index}")
        return self._seed

    def agent_key(self) -> KeyPair:
        """The device's current agent: the key its certificate enrolls."""
        return device_agent_key(self._seed, self.agent)

    @property
    def owner(self) -> AgentPubKey:
        """The owner agent named by the certificate."""
        return self.certificate.owner
