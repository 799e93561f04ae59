"""Typed BLAKE2b-256 hashes and agent keys, with their text forms.

Every hash is 32 bytes. Its type — agent key, action, entry, DNA, warrant, external — is carried
by the Python class (a ``bytes`` subclass, so hashes are cheap, hashable and encode as plain CBOR
byte strings) and by the text form::

    "u" + base64url_nopad(prefix[3] + digest[32])

``u`` is the multibase tag of base64url. Each 3-byte prefix was chosen so it spells four readable
characters: agent keys start ``uagnt``, action hashes ``uactn``, entry hashes ``untry``, DNA hashes
``udnah``, DHT ops ``udhop``, warrants ``uwrnt`` and external hashes ``uxtrn``. An agent key's
"digest" is the raw Ed25519 public key itself.
"""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar, Self, TypeVar

from ioe.errors import EncodingError

DIGEST_SIZE = 32


def blake2b_256(data: bytes) -> bytes:
    """The raw 32-byte BLAKE2b digest of ``data`` (no key, no personalisation)."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


class HoloHash(bytes):
    """32 raw bytes of one kind of hash. Subclasses fix the kind."""

    __slots__ = ()
    KIND: ClassVar[str] = "hash"
    TEXT_TAG: ClassVar[str] = ""
    _PREFIX: ClassVar[bytes] = b""

    def __new__(cls, raw: bytes) -> Self:
        if len(raw) != DIGEST_SIZE:
            raise EncodingError(f"{cls.KIND} must be {DIGEST_SIZE} bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    def __init_subclass__(cls, *, kind: str, tag: str, **kwargs: object) -> None:
        """Each kind of hash names itself and its four-character text tag where it is
        declared: ``class ActionHash(HoloHash, kind="action hash", tag="actn")``."""
        super().__init_subclass__()
        cls.KIND, cls.TEXT_TAG = kind, tag
        cls._PREFIX = base64.urlsafe_b64decode(tag)
        _BY_TAG[tag] = cls

    @classmethod
    def of(cls, data: bytes) -> Self:
        """The hash of ``data`` as this kind."""
        return cls(blake2b_256(data))

    def to_text(self) -> str:
        return "u" + base64.urlsafe_b64encode(self._PREFIX + bytes(self)).decode().rstrip("=")

    @classmethod
    def from_text(cls, text: str) -> Self:
        """Parse a text form made by :meth:`to_text`; the kind must match ``cls``."""
        value = parse_hash_text(text)
        if not isinstance(value, cls):
            raise EncodingError(f"{text[:12]}… is a {value.KIND}, not a {cls.KIND}")
        return value

    def short(self) -> str:
        """An abbreviated text form for humans (not for parsing)."""
        text = self.to_text()
        return f"{text[:9]}…{text[-6:]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_text()})"

    __str__ = to_text


_BY_TAG: dict[str, type[HoloHash]] = {}


class AgentPubKey(HoloHash, kind="agent key", tag="agnt"):
    """An agent's Ed25519 public key: its identity and its address on the network."""

    __slots__ = ()


class ActionHash(HoloHash, kind="action hash", tag="actn"):
    """Names one action (a record's header) of a source chain."""

    __slots__ = ()


class EntryHash(HoloHash, kind="entry hash", tag="ntry"):
    """Names an entry by its content."""

    __slots__ = ()


class DnaHash(HoloHash, kind="DNA hash", tag="dnah"):
    """Names a DNA, and so the network of everyone running it."""

    __slots__ = ()


class WarrantHash(HoloHash, kind="warrant hash", tag="wrnt"):
    """Names a warrant: a signed proof that an agent broke the rules."""

    __slots__ = ()


class DhtOpHash(HoloHash, kind="DHT op hash", tag="dhop"):
    """Names one DHT op: BLAKE2b-256 of ``[op_type, action_hash]``."""

    __slots__ = ()


class ExternalHash(HoloHash, kind="external hash", tag="xtrn"):
    """A hash of something outside the chain (a file, a reading batch elsewhere)."""

    __slots__ = ()


_TEXT_LENGTH = 1 + (3 + DIGEST_SIZE) * 4 // 3 + 1  # "u" + 47 characters of base64url


def parse_hash_text(text: str) -> HoloHash:
    """Parse any hash's text form into its typed value."""
    if not isinstance(text, str) or len(text) != _TEXT_LENGTH or not text.startswith("u"):
        raise EncodingError(f"not an IoE hash text form: {str(text)[:60]!r}")
    kind = _BY_TAG.get(text[1:5])
    if kind is None:
        raise EncodingError(f"unknown hash type tag {text[1:5]!r}")
    try:
        raw = base64.urlsafe_b64decode(text[1:] + "=" * (-len(text[1:]) % 4))
    except ValueError as exc:
        raise EncodingError(f"bad base64url in hash text form: {exc}") from exc
    value = kind(raw[3:])
    if value.to_text() != text:  # rejects non-canonical trailing bits
        raise EncodingError("hash text form is not canonical")
    return value


H = TypeVar("H", bound=HoloHash)


_BY_PREFIX: dict[bytes, type[HoloHash]] = {}


def to_typed_bytes(value: HoloHash) -> bytes:
    """The 35-byte self-describing form (3-byte type prefix + digest) for fields of any kind."""
    return value._PREFIX + bytes(value)


def from_typed_bytes(raw: bytes) -> HoloHash:
    """Inverse of :func:`to_typed_bytes`."""
    if not _BY_PREFIX:
        _BY_PREFIX.update({kind._PREFIX: kind for kind in _BY_TAG.values()})
    if len(raw) != 3 + DIGEST_SIZE:
        raise EncodingError(f"a typed hash is {3 + DIGEST_SIZE} bytes, got {len(raw)}")
    kind = _BY_PREFIX.get(bytes(raw[:3]))
    if kind is None:
        raise EncodingError("unknown hash type prefix")
    return kind(raw[3:])
