"""Strict bytes ↔ document conversion shared by every identity document.

A document is a frozen dataclass; its wire form is the canonical encoding of its field map
(:func:`ioe.engine.schema.to_value`). What its signers sign is the same map without the
signature fields (its *body*), so adding or dropping a signature never changes what was signed,
and a document's id (the hash of its body) cannot be altered by tampering with signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ioe.encoding import encode
from ioe.engine.schema import decode_as, to_value
from ioe.errors import EncodingError
from ioe.hashing import ExternalHash

T = TypeVar("T")

MAX_TEXT = 256
"""Longest free-text field (names, reasons), in characters."""


def to_bytes(document: object, max_bytes: int) -> bytes:
    """The canonical bytes of ``document``; :class:`EncodingError` if over ``max_bytes``."""
    data = encode(to_value(document))
    if len(data) > max_bytes:
        raise EncodingError(f"{type(document).__name__} of {len(data)} bytes is over {max_bytes}")
    return data


def from_bytes(cls: type[T], data: bytes, max_bytes: int) -> T:
    """Decode ``data`` as ``cls``: size, canonical CBOR and every field's type are checked."""
    if type(data) is not bytes:
        raise EncodingError(f"a {cls.__name__} is bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise EncodingError(f"a {cls.__name__} of {len(data)} bytes is over {max_bytes}")
    return decode_as(cls, data)


def body_bytes(document: object, unsigned: Sequence[str]) -> bytes:
    """The canonical bytes of ``document``'s fields except ``unsigned`` (what is signed)."""
    value = to_value(document)
    return encode({name: item for name, item in value.items() if name not in unsigned})


def body_id(document: object, unsigned: Sequence[str]) -> ExternalHash:
    """A document's id: the hash of its body (signatures excluded)."""
    return ExternalHash.of(body_bytes(document, unsigned))


def require(condition: bool, message: str) -> None:
    """Raise :class:`EncodingError` with ``message`` unless ``condition`` (shape checks)."""
    if not condition:
        raise EncodingError(message)


def text_problem(text: str, what: str, *, allow_empty: bool = False) -> str | None:
    """Why ``text`` is not an acceptable short free-text field, or None."""
    if not allow_empty and not text:
        return f"{what} is empty"
    if len(text) > MAX_TEXT:
        return f"{what} is longer than {MAX_TEXT} characters"
    if not text.isprintable():
        return f"{what} has control characters"
    return None
