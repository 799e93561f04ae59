"""What every signed identity document does the same way: its body, id, signatures and bytes.

A document is a frozen dataclass that derives from :class:`Document` and names its signature
context (``CONTEXT``), its size limit (``MAX_BYTES``) and its signature fields (``UNSIGNED``).
Its wire form and body are :mod:`ioe.identity.wire`'s, so the bytes stay those of the fields.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, replace
from typing import Any, ClassVar, Self

from ioe.crypto.keys import KeyPair
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity import wire


@dataclass(frozen=True, slots=True)
class Signature:
    """One signer's signature of a document."""

    signer: AgentPubKey
    signature: bytes


Signatures = tuple[Signature, ...]


def sign(keys: KeyPair, context: bytes, message: bytes) -> Signature:
    return Signature(keys.agent, keys.sign(context, message))


class Document:
    """Base of identity documents: the methods that depend only on the class constants."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    CONTEXT: ClassVar[bytes]
    """What signers sign under, so a signature of one kind of document fits no other."""
    MAX_BYTES: ClassVar[int]
    UNSIGNED: ClassVar[tuple[str, ...]] = ("signatures",)
    """The signature fields: everything else is the body."""

    def message(self) -> bytes:
        """The body's canonical bytes: what is signed."""
        return wire.body_bytes(self, self.UNSIGNED)

    @property
    def id(self) -> ExternalHash:
        """The hash of the body, so adding or dropping signatures never changes it."""
        return wire.body_id(self, self.UNSIGNED)

    def to_bytes(self) -> bytes:
        return wire.to_bytes(self, self.MAX_BYTES)

    @classmethod
    def decoded(cls, data: bytes) -> Self:
        """Size, canonical CBOR and field types checked; the document's own rules are not."""
        return wire.from_bytes(cls, data, cls.MAX_BYTES)

    def with_signatures(self, field: str, keys: tuple[KeyPair, ...]) -> Self:
        """This document with the signatures of ``keys`` added to its ``field``."""
        added = tuple(sign(k, self.CONTEXT, self.message()) for k in keys)
        signatures: Signatures = getattr(self, field)
        return replace(self, **{field: signatures + added})


class SignedDocument(Document):
    """A document signed by the keys of one keyset, in its ``signatures`` field."""

    __slots__ = ()

    def signed_by(self, *keys: KeyPair) -> Self:
        """This document with the signatures of ``keys`` added."""
        return self.with_signatures("signatures", keys)
