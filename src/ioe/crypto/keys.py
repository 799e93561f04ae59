"""Ed25519 key pairs and signatures with domain separation.

Every signature in the project covers ``context + message``, where ``context`` is a short constant
naming what is being signed (``b"ioe/action/v1"``, …) followed by a zero byte. A signature made for
one purpose can therefore never be replayed as another.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ioe.errors import BadSignature, CryptoError
from ioe.hashing import AgentPubKey

SEED_SIZE = 32
SIGNATURE_SIZE = 64


def _framed(context: bytes, message: bytes) -> bytes:
    if b"\x00" in context:
        raise CryptoError("signature context must not contain a zero byte")
    return context + b"\x00" + message


class KeyPair:
    """An Ed25519 signing key made from a 32-byte seed. The seed never leaves this object."""

    __slots__ = ("_signing", "agent")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise CryptoError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        self._signing = nacl.signing.SigningKey(bytes(seed))
        self.agent = AgentPubKey(bytes(self._signing.verify_key))

    def sign(self, context: bytes, message: bytes) -> bytes:
        """A 64-byte detached signature of ``message`` under ``context``."""
        return self._signing.sign(_framed(context, message)).signature

    def seed(self) -> bytes:
        """The secret seed, for the keystore only."""
        return bytes(self._signing)

    def __repr__(self) -> str:
        return f"KeyPair({self.agent.to_text()})"


def verify(agent: AgentPubKey, context: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``agent``'s signature of ``message`` under ``context``."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + _framed(context, message), agent)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def require_valid(agent: AgentPubKey, context: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`BadSignature` unless the signature verifies."""
    if not verify(agent, context, message, signature):
        raise BadSignature(f"bad signature by {agent.short()}")
