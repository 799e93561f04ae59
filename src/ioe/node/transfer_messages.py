"""The messages of the transfer protocol (``/ioe/transfer/1``), outside any DNA.

They follow the enrollment protocol's rules (:mod:`ioe.node.enrollment_messages`): each message
is ``{"kind", "body", "sig"}`` (canonical CBOR), ``body`` is the canonical CBOR of a map naming
its signer under ``"from"`` and dated ``time_us`` (refused further than 5 minutes from the
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

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey
from ioe.node.enrollment_messages import MAX_MESSAGE_BYTES, EnrollmentError, Message

PROTOCOL = "/ioe/transfer/1"
KINDS = ("offer", "countersign", "provision", "adopted")


class TransferError(EnrollmentError):
    """A transfer message or step was refused; the text says why."""


def context(kind: str) -> bytes:
    return f"ioe/transfer/{kind}/v1".encode()


def sign_message(kind: str, body: dict[str, Value], keys: KeyPair) -> bytes:
    """``body`` (with ``from`` set to ``keys``) signed as a transfer message of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown transfer message kind {kind!r}")
    raw = encode({**body, "from": bytes(keys.agent)})
    return encode({"kind": kind, "body": raw, "sig": keys.sign(context(kind), raw)})


def open_message(data: bytes, *, expect: str | tuple[str, ...]) -> Message:
    """Decode and verify a transfer message; :class:`TransferError` for anything wrong."""
    try:
        outer = decode(data, max_size=MAX_MESSAGE_BYTES)
        if type(outer) is not dict or set(outer) != {"kind", "body", "sig"}:
            raise EncodingError("not a transfer message")
        kind, raw, sig = outer["kind"], outer["body"], outer["sig"]
        if kind not in KINDS or type(raw) is not bytes or type(sig) is not bytes:
            raise EncodingError("not a transfer message")
        body = decode(raw, max_size=MAX_MESSAGE_BYTES)
        if type(body) is not dict or type(body.get("from")) is not bytes:
            raise EncodingError("a transfer message names its signer")
        signer = AgentPubKey(body["from"])
    except (EncodingError, ValueError) as exc:
        raise TransferError(f"malformed transfer message: {exc}") from None
    wanted = (expect,) if isinstance(expect, str) else expect
    if kind not in wanted:
        raise TransferError(f"expected a {' or '.join(wanted)} message, got {kind}")
    if not verify(signer, context(kind), raw, sig):
        raise TransferError(f"the {kind} message's signature does not verify (forged)")
    return Message(kind, body, signer)
