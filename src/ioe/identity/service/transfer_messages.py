"""The messages of the transfer protocol (``/ioe/transfer/1``), outside any DNA.

They follow the enrollment protocol's rules (:mod:`ioe.identity.service.enrollment_messages`): each
message is ``{"kind", "body", "sig"}`` (canonical CBOR), ``body`` is the canonical CBOR of a map
naming its signer under ``"from"`` and dated ``time_us`` (refused further than 5 minutes from the
receiver's clock), and ``sig`` is the signer's signature of ``body`` under the kind's own context
``ioe/transfer/<kind>/v1`` (so no enrollment message can pass for a transfer message, nor the
reverse). The kinds:

* ``offer`` (old owner agent → new owner's node): ``{from, to: new owner agent, device: the
  device's current agent key, certificate: its current certificate, time_us}``;
* ``countersign`` (new owner agent → old owner's node): ``{from, transfer, new_certificate,
  time_us}`` where ``transfer`` carries the new owner's signatures; the answer is the transfer
  with the old owner's signatures added;
* ``provision`` (new owner agent → the device's node): ``{from, device, sealed, time_us}`` where
  ``sealed`` is a :class:`nacl.public.SealedBox` to the device's current agent key of ``{seed,
  index, certificate, transfer, network}``; the device answers with an ``adopted`` message
  ``{from: its new agent key, device: the old key, time_us}``.

Replies that are not messages are ``{"ok": value}`` or ``{"error": text}``.
"""

from __future__ import annotations

from ioe.crypto.keys import KeyPair
from ioe.encoding import Value
from ioe.identity.service.enrollment_messages import EnrollmentError, protocol_envelope

PROTOCOL = "/ioe/transfer/1"
KINDS = ("offer", "countersign", "provision", "adopted")


class TransferError(EnrollmentError):
    """A transfer message or step was refused; the text says why."""


ENVELOPE = protocol_envelope("transfer", "transfer", KINDS, TransferError)
context = ENVELOPE.context_of
open_message = ENVELOPE.open
"""Decode and verify a transfer message; :class:`TransferError` for anything wrong."""


def sign_message(kind: str, body: dict[str, Value], keys: KeyPair) -> bytes:
    """``body`` (with ``from`` set to ``keys``) signed as a transfer message of ``kind``."""
    return ENVELOPE.seal(keys, body, kind)
