"""Signed envelopes: how nodes send each other a body signed by the agent it names.

Every protocol that runs outside a DNA (enrollment, transfer, rotation, keyset signing, remote
calls and remote signals) sends the same thing, so it is built and checked here once. The *body*
is the canonical CBOR of a map that names its signer under ``"from"``; the envelope carries it
with that agent's signature of it (:mod:`ioe.crypto.keys`, so under a context)::

    {"kind": kind, "body": body, "sig": sig}   one context per kind: ``ioe/enroll/<kind>/v1``
    {"call": body, "sig": sig}                 one context for the protocol: ``ioe/zome-call/v1``

A protocol is an :class:`Envelope`: its contexts, its kinds, the field its body travels in and
the most bytes it accepts. Nothing here does I/O or reads a clock: :func:`is_fresh` and
:func:`is_live` take the time as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.errors import EncodingError, RemoteProtocolError
from ioe.hashing import AgentPubKey

SIGNER_FIELD = "from"
KIND_FIELD = "kind"
SIGNATURE_FIELD = "sig"


class EnvelopeError(RemoteProtocolError):
    """An envelope was refused (malformed, another kind, forged); the text says why."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified envelope: its kind (``""`` for a protocol without kinds), its decoded body
    and the agent whose signature of that body verified."""

    kind: str
    body: dict[str, Any]
    signer: AgentPubKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The signed envelope of one protocol.

    ``context`` is the signature context, with ``{kind}`` standing for the message's kind; an
    envelope with ``kinds`` carries its kind in a ``kind`` field, one without has none. ``what``
    names a message in refusals ("enrollment message"), ``one`` names this message there
    ("{kind} message", "call"). Refusals are raised as ``error(text)``, so each protocol keeps
    its own exception."""

    what: str
    context: str
    max_bytes: int
    kinds: tuple[str, ...] = ()
    body_field: str = "body"
    one: str = ""
    error: Callable[[str], Exception] = EnvelopeError

    def context_of(self, kind: str = "") -> bytes:
        """The signature context of a message of ``kind``."""
        return self.context.format(kind=kind).encode()

    def seal(self, keys: KeyPair, body: Mapping[str, Value], kind: str = "") -> bytes:
        """``body`` with ``from`` set to ``keys``' agent, signed by ``keys``, in its envelope.
        :class:`ValueError` for a kind this protocol does not have (a bug of the sender)."""
        known = kind in self.kinds if self.kinds else kind == ""
        if not known:
            raise ValueError(f"unknown {self.what} kind {kind!r}")
        raw = encode({**body, SIGNER_FIELD: bytes(keys.agent)})
        outer: dict[str, Value] = {self.body_field: raw}
        outer[SIGNATURE_FIELD] = keys.sign(self.context_of(kind), raw)
        if self.kinds:
            outer[KIND_FIELD] = kind
        return encode(outer)

    def open(self, data: bytes, *, expect: str | tuple[str, ...] | None = None) -> Opened:
        """Decode ``data`` and verify its signature by the agent its body names; refuse
        (``error``) anything malformed or over ``max_bytes``, a kind not in ``expect`` (when
        given), and a signature that does not verify."""
        if len(data) > self.max_bytes:  # before any parsing
            raise self.error(f"{_a(self.what)} is at most {self.max_bytes} bytes")
        try:
            kind, raw, sig = self._parts(data)
            body = decode(raw, max_size=self.max_bytes)
            if type(body) is not dict or type(body.get(SIGNER_FIELD)) is not bytes:
                raise EncodingError(f"{_a(self.what)} names its signer")
            signer = AgentPubKey(body[SIGNER_FIELD])
        except (EncodingError, ValueError) as exc:
            raise self.error(f"malformed {self.what}: {exc}") from None
        wanted = (expect,) if isinstance(expect, str) else expect
        if wanted is not None and kind not in wanted:
            raise self.error(f"expected a {' or '.join(wanted)} message, got {kind}")
        if not verify(signer, self.context_of(kind), raw, sig):
            named = (self.one or self.what).format(kind=kind)
            raise self.error(f"the {named}'s signature does not verify (forged)")
        return Opened(kind, body, signer)

    def _parts(self, data: bytes) -> tuple[str, bytes, bytes]:
        outer = decode(data, max_size=self.max_bytes)
        fields = {self.body_field, SIGNATURE_FIELD} | ({KIND_FIELD} if self.kinds else set())
        if type(outer) is not dict or set(outer) != fields:
            raise EncodingError(f"not {_a(self.what)}")
        kind = outer.get(KIND_FIELD, "")
        raw, sig = outer[self.body_field], outer[SIGNATURE_FIELD]
        if self.kinds and kind not in self.kinds:
            raise EncodingError(f"not {_a(self.what)}")
        if type(raw) is not bytes or type(sig) is not bytes or len(sig) != SIGNATURE_SIZE:
            raise EncodingError(f"not {_a(self.what)}")
        return kind, raw, sig


def is_fresh(sent_us: int, now_us: int, max_skew_us: int) -> bool:
    """Whether a message dated ``sent_us`` is within ``max_skew_us`` of ``now_us`` either way
    (an older one may be replayed; a later one comes from a bad clock)."""
    return abs(now_us - sent_us) <= max_skew_us


def is_live(expires_us: int, now_us: int, max_ahead_us: int) -> bool:
    """Whether a message expiring at ``expires_us`` has not expired at ``now_us`` and does not
    expire more than ``max_ahead_us`` later (so a nonce need not be kept longer)."""
    return now_us < expires_us <= now_us + max_ahead_us


def _a(noun: str) -> str:
    return ("an " if noun[:1] in tuple("aeiou") else "a ") + noun
