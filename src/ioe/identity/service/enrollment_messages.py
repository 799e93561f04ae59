"""The messages of the enrollment protocol (``/ioe/enroll/1``), outside any DNA.

Every message is ``{"kind", "body", "sig"}`` (canonical CBOR) where ``body`` is the canonical
CBOR of a map naming its signer under ``"from"`` and ``sig`` is that agent's signature of
``body`` under the kind's context (``ioe/enroll/<kind>/v1``). The kinds:

* ``request`` (device → any peer, repeated until enrolled): ``{from: provisional key, peer,
  addrs, name, type, zone | null, nonce, time_us}``;
* ``challenge`` (owner → device): ``{from: owner agent, device, time_us}``; the device answers
  ``{"challenge": 32 random bytes}``, which it accepts once, within :data:`CHALLENGE_LIFETIME_US`;
* ``pair`` (owner → device): ``{from, device, challenge, owner_nonce, time_us, proof}`` where
  ``proof`` is :func:`pairing_proof` with role ``owner``: a BLAKE2b MAC keyed by the pairing code
  over both keys and both nonces (the code never travels). The device answers, when the code is
  right, with a ``paired`` message carrying its own proof (role ``device``), so each side knows
  the other holds the code;
* ``provision`` (owner → device, after ``pair``): ``{from, device, owner_nonce, sealed}`` where
  ``sealed`` is a :class:`nacl.public.SealedBox` to the provisional key (converted to Curve25519)
  of ``{seed, index, certificate}``; the device answers with an ``enrolled`` message signed by
  its new agent key.

Replies that are not messages are ``{"ok": value}`` or ``{"error": text}``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing

from ioe.crypto.keys import KeyPair
from ioe.encoding import Value, decode, encode
from ioe.envelope import Envelope, Opened, is_fresh
from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey
from ioe.identity.pairing import normalise_code

PROTOCOL = "/ioe/enroll/1"
KINDS = ("request", "challenge", "pair", "paired", "provision", "enrolled")
NONCE_BYTES = 32
MAX_MESSAGE_BYTES = 96 * 1024
MAX_SKEW_US = 5 * 60_000_000
"""A message dated further than this from the receiver's clock is refused (replays)."""
CHALLENGE_LIFETIME_US = 60_000_000
_PERSON = b"ioe-pair-v1"


class EnrollmentError(IoEError):
    """An enrollment message was refused; the text says why."""


Message = Opened
"""A verified message: its kind, its body and its signer."""


def protocol_envelope(
    name: str, path: str, kinds: tuple[str, ...], error: type[EnrollmentError]
) -> Envelope:
    """The envelope of a protocol following these rules: a kind per message, each kind signed
    under its own context ``ioe/<path>/<kind>/v1``, refusals raised as ``error``."""
    return Envelope(
        what=f"{name} message",
        one="{kind} message",
        context=f"ioe/{path}/{{kind}}/v1",
        kinds=kinds,
        max_bytes=MAX_MESSAGE_BYTES,
        error=error,
    )


ENVELOPE = protocol_envelope("enrollment", "enroll", KINDS, EnrollmentError)


def context(kind: str) -> bytes:
    return ENVELOPE.context_of(kind)


def sign_message(kind: str, body: dict[str, Value], keys: KeyPair) -> bytes:
    """``body`` (with ``from`` set to ``keys``) signed as a message of ``kind``."""
    return ENVELOPE.seal(keys, body, kind)


def open_message(data: bytes, *, expect: str | tuple[str, ...] | None = None) -> Message:
    """Decode and verify a message; :class:`EnrollmentError` for anything wrong with it."""
    return ENVELOPE.open(data, expect=expect)


def field(message: Message, name: str, kind: type | tuple[type, ...]) -> Any:
    """A typed field of ``message``'s body; :class:`EnrollmentError` if missing or mistyped."""
    value = message.body.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise EnrollmentError(f"the {message.kind} message has no valid {name!r}")
    return value


def agent_field(message: Message, name: str) -> AgentPubKey:
    try:
        return AgentPubKey(field(message, name, bytes))
    except (ValueError, EncodingError):
        raise EnrollmentError(
            f"the {message.kind} message's {name!r} is not an agent key"
        ) from None


def nonce_field(message: Message, name: str) -> bytes:
    value: bytes = field(message, name, bytes)
    if len(value) != NONCE_BYTES:
        raise EnrollmentError(f"the {message.kind} message's {name!r} is not {NONCE_BYTES} bytes")
    return value


def check_fresh(message: Message, now_us: int) -> None:
    """Refuse a message dated too far from ``now_us`` (an old one replayed, or a bad clock)."""
    if not is_fresh(field(message, "time_us", int), now_us, MAX_SKEW_US):
        raise EnrollmentError(f"the {message.kind} message is stale or from the future (replayed?)")


def pairing_proof(
    code: str,
    role: str,
    *,
    device: AgentPubKey,
    owner: AgentPubKey,
    challenge: bytes,
    owner_nonce: bytes,
) -> bytes:
    """BLAKE2b-256 keyed by the normalised pairing code over the role (``owner`` or
    ``device``), both keys and both nonces. Knowing it proves knowing the code."""
    if role not in ("owner", "device"):
        raise ValueError(f"unknown pairing role {role!r}")
    message = role.encode() + b"\x00" + bytes(device) + bytes(owner) + challenge + owner_nonce
    key = normalise_code(code).encode()
    return hashlib.blake2b(message, digest_size=32, key=key, person=_PERSON).digest()


def proof_matches(expected: bytes, given: object) -> bool:
    return type(given) is bytes and hmac.compare_digest(expected, given)


def seal_to(agent: AgentPubKey, payload: bytes) -> bytes:
    """``payload`` encrypted so only the holder of ``agent``'s private key can read it."""
    public = nacl.signing.VerifyKey(bytes(agent)).to_curve25519_public_key()
    return bytes(nacl.public.SealedBox(public).encrypt(payload))


def unseal(keys: KeyPair, sealed: bytes) -> bytes:
    private = nacl.signing.SigningKey(keys.seed()).to_curve25519_private_key()
    try:
        return bytes(nacl.public.SealedBox(private).decrypt(sealed))
    except nacl.exceptions.CryptoError:
        raise EnrollmentError("the provisioning was not sealed to this device") from None


def reply_ok(value: Value) -> bytes:
    return encode({"ok": value})


def reply_error(text: str) -> bytes:
    return encode({"error": text})


def read_reply(data: bytes) -> Value:
    """The ``ok`` value of a reply; :class:`EnrollmentError` with the other side's reason."""
    try:
        reply = decode(data, max_size=MAX_MESSAGE_BYTES)
    except EncodingError as exc:
        raise EnrollmentError(f"malformed enrollment reply: {exc}") from None
    if type(reply) is dict and set(reply) == {"error"} and isinstance(reply["error"], str):
        raise EnrollmentError(reply["error"])
    if type(reply) is not dict or set(reply) != {"ok"}:
        raise EnrollmentError("malformed enrollment reply")
    return reply["ok"]
