"""The messages of key rotation (``/ioe/rotate/1``), outside any DNA.

They follow the enrollment and transfer protocols' rules (:mod:`ioe.node.enrollment_messages`):
each message is ``{"kind", "body", "sig"}`` (canonical CBOR), ``body`` is the canonical CBOR of a
map naming its signer under ``"from"`` and dated ``time_us`` (refused further than 5 minutes from
the receiver's clock), and ``sig`` is the signer's signature of ``body`` under the kind's own
context ``ioe/rotate/<kind>/v1`` (so no enrollment or transfer message passes for a rotation
message, nor the reverse). The kinds:

* ``rotate`` (owner agent → the device's node): ``{from, device: the device's current agent key,
  certificate: the new certificate, revocation: the old key's revocation, time_us}``. Nothing
  in it is secret (the device already holds its seed), so it travels in clear; the owner's
  signature is what the device trusts;
* ``rotated`` (the device's new agent → the owner): ``{from: its new agent key, device: the
  old key, time_us}``, the answer once the device stored its new account.

Replies that are not messages are ``{"ok": value}`` or ``{"error": text}``.
"""

from __future__ import annotations

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey
from ioe.node.enrollment_messages import MAX_MESSAGE_BYTES, EnrollmentError, Message

PROTOCOL = "/ioe/rotate/1"
KINDS = ("rotate", "rotated")


class RotationError(EnrollmentError):
    """A rotation message or step was refused; the text says why."""


def context(kind: str) -> bytes:
    return f"ioe/rotate/{kind}/v1".encode()


def sign_message(kind: str, body: dict[str, Value], keys: KeyPair) -> bytes:
    """``body`` (with ``from`` set to ``keys``) signed as a rotation message of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown rotation message kind {kind!r}")
    raw = encode({**body, "from": bytes(keys.agent)})
    return encode({"kind": kind, "body": raw, "sig": keys.sign(context(kind), raw)})


def open_message(data: bytes, *, expect: str) -> Message:
    """Decode and verify a rotation message of kind ``expect``; :class:`RotationError` for
    anything wrong (malformed, another kind, a signature that does not verify)."""
    try:
        outer = decode(data, max_size=MAX_MESSAGE_BYTES)
        if type(outer) is not dict or set(outer) != {"kind", "body", "sig"}:
            raise EncodingError("not a rotation message")
        kind, raw, sig = outer["kind"], outer["body"], outer["sig"]
        if kind not in KINDS or type(raw) is not bytes or type(sig) is not bytes:
            raise EncodingError("not a rotation message")
        body = decode(raw, max_size=MAX_MESSAGE_BYTES)
        if type(body) is not dict or type(body.get("from")) is not bytes:
            raise EncodingError("a rotation message names its signer")
        signer = AgentPubKey(body["from"])
    except (EncodingError, ValueError) as exc:
        raise RotationError(f"malformed rotation message: {exc}") from None
    if kind != expect:
        raise RotationError(f"expected a {expect} message, got {kind}")
    if not verify(signer, context(kind), raw, sig):
        raise RotationError(f"the {kind} message's signature does not verify (forged)")
    return Message(kind, body, signer)
