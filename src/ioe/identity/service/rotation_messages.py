"""The messages of key rotation (``/ioe/rotate/1``), outside any DNA.

They follow the enrollment and transfer protocols' rules
(:mod:`ioe.identity.service.enrollment_messages`): each message is ``{"kind", "body", "sig"}``
(canonical CBOR), ``body`` is the canonical CBOR of a map naming its signer under ``"from"`` and
dated ``time_us`` (refused further than 5 minutes from the receiver's clock), and ``sig`` is the
signer's signature of ``body`` under the kind's own context ``ioe/rotate/<kind>/v1`` (so no
enrollment or transfer message passes for a rotation message, nor the reverse). The kinds:

* ``rotate`` (owner agent → the device's node): ``{from, device: the device's current agent key,
  certificate: the new certificate, revocation: the old key's revocation, time_us}``. Nothing
  in it is secret (the device already holds its seed), so it travels in clear; the owner's
  signature is what the device trusts;
* ``rotated`` (the device's new agent → the owner): ``{from: its new agent key, device: the
  old key, time_us}``, the answer once the device stored its new account.

Replies that are not messages are ``{"ok": value}`` or ``{"error": text}``.
"""

from __future__ import annotations

from ioe.crypto.keys import KeyPair
from ioe.encoding import Value
from ioe.identity.service.enrollment_messages import EnrollmentError, protocol_envelope

PROTOCOL = "/ioe/rotate/1"
KINDS = ("rotate", "rotated")


class RotationError(EnrollmentError):
    """A rotation message or step was refused; the text says why."""


ENVELOPE = protocol_envelope("rotation", "rotate", KINDS, RotationError)
context = ENVELOPE.context_of
open_message = ENVELOPE.open
"""Decode and verify a rotation message; :class:`RotationError` for anything wrong."""


def sign_message(kind: str, body: dict[str, Value], keys: KeyPair) -> bytes:
    """``body`` (with ``from`` set to ``keys``) signed as a rotation message of ``kind``."""
    return ENVELOPE.seal(keys, body, kind)
