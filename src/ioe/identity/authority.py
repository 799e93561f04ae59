"""Owner keysets: who may sign for an owner, and how that changes over time.

An :class:`AuthoritySpec` says how many signatures (``sigs_required``, M) of which authorization
keys (``signers``, N) an owner's documents need, and optionally names a ``revoker``: the owner's
offline revocation key, which alone may revoke keys and change the spec (recovery when
authorization keys are lost or stolen). A single owner is ``M = 1`` with its authorization key.

A :class:`Keyset` is the hash-linked chain of an owner's specs: the genesis spec, then each
:class:`KeysetChange`, signed by M of the *previous* spec (or its revoker). Its id is the hash of
the genesis spec, so it stays the same across changes. Documents carry the whole chain, so anyone
can check the current spec from the id alone.

Every signature here covers ``context || 0x00 || message`` (:mod:`ioe.crypto.keys`), with one
context per kind of document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ioe.crypto.keys import SIGNATURE_SIZE, verify
from ioe.encoding import encode
from ioe.engine.schema import to_value
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.document import Signature, Signatures, SignedDocument

KEYSET_CHANGE_CONTEXT = b"ioe/identity/keyset-change/v1"
KEYSET_VERSION = 1
MAX_SIGNERS = 16
MAX_KEYSET_CHANGES = 16
MAX_SIGNATURES = 2 * MAX_SIGNERS
"""Most signature entries a document may carry (duplicates and strangers count towards it)."""
MAX_KEYSET_CHANGE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class AuthoritySpec:
    """M-of-N: ``sigs_required`` of ``signers`` (sorted, distinct), plus an optional revoker."""

    sigs_required: int
    signers: tuple[AgentPubKey, ...]
    revoker: AgentPubKey | None = None

    @classmethod
    def of(
        cls, sigs_required: int, signers: Iterable[AgentPubKey], revoker: AgentPubKey | None = None
    ) -> AuthoritySpec:
        """A spec with ``signers`` in canonical (sorted) order."""
        return cls(sigs_required, tuple(sorted(signers)), revoker)


def single_owner(authorization: AgentPubKey, revoker: AgentPubKey | None = None) -> AuthoritySpec:
    """The spec of a single owner: its authorization key alone (and its revocation key)."""
    return AuthoritySpec(1, (authorization,), revoker)


def spec_problem(spec: AuthoritySpec) -> str | None:
    """Why ``spec`` is malformed, or None."""
    if not 0 < len(spec.signers) <= MAX_SIGNERS:
        return f"an authority spec has 1 to {MAX_SIGNERS} signers"
    if list(spec.signers) != sorted(set(spec.signers)):
        return "an authority spec lists its signers once each, in sorted order"
    if not 0 < spec.sigs_required <= len(spec.signers):
        return f"sigs_required must be 1 to {len(spec.signers)}, not {spec.sigs_required}"
    return None


def keyset_id(genesis: AuthoritySpec) -> ExternalHash:
    """The id of the keyset that starts with ``genesis``."""
    return ExternalHash.of(encode(["ioe/keyset/v1", to_value(genesis)]))


# ----------------------------------------------------------------------------- signatures


def signatures_shape_ok(signatures: Sequence[Signature]) -> bool:
    """At most :data:`MAX_SIGNATURES` entries, each of 64 bytes (decoding checks this)."""
    return len(signatures) <= MAX_SIGNATURES and all(
        len(s.signature) == SIGNATURE_SIZE for s in signatures
    )


def require_signature_shapes(signatures: Sequence[Signature], keyset: Keyset, what: str) -> None:
    """:class:`EncodingError` unless a document's signatures, and those of every change of the
    keyset it carries, are well-shaped (:func:`signatures_shape_ok`)."""
    wire.require(signatures_shape_ok(signatures), f"malformed {what} signatures")
    for change in keyset.changes:
        wire.require(signatures_shape_ok(change.signatures), "malformed keyset signatures")


def valid_signers(
    spec: AuthoritySpec, message: bytes, context: bytes, signatures: Iterable[Signature]
) -> frozenset[AgentPubKey]:
    """The distinct signers of ``spec`` among ``signatures`` whose signature verifies."""
    members = set(spec.signers)
    good: set[AgentPubKey] = set()
    for item in signatures:
        fresh = item.signer in members and item.signer not in good
        if fresh and verify(item.signer, context, message, item.signature):
            good.add(item.signer)
    return frozenset(good)


def check_authorized(
    spec: AuthoritySpec, message: bytes, context: bytes, signatures: Sequence[Signature]
) -> str | None:
    """None when at least M distinct signers of ``spec`` validly signed ``message`` under
    ``context``; otherwise why not. Signatures by strangers, bad signatures and repeats of one
    signer are ignored (they neither count nor refuse)."""
    problem = spec_problem(spec)
    if problem:
        return problem
    if len(signatures) > MAX_SIGNATURES:
        return f"more than {MAX_SIGNATURES} signatures"
    count = len(valid_signers(spec, message, context, signatures))
    if count < spec.sigs_required:
        return f"{count} valid signature(s) of the {spec.sigs_required} required"
    return None


def check_revoker_or_authorized(
    spec: AuthoritySpec, message: bytes, context: bytes, signatures: Sequence[Signature]
) -> str | None:
    """Like :func:`check_authorized`, but the spec's revoker's signature alone also suffices."""
    if spec.revoker is not None and len(signatures) <= MAX_SIGNATURES:
        revoker = spec.revoker
        if any(
            s.signer == revoker and verify(revoker, context, message, s.signature)
            for s in signatures
        ):
            return None
    return check_authorized(spec, message, context, signatures)


# ----------------------------------------------------------------------------- the keyset chain


@dataclass(frozen=True, slots=True)
class KeysetChange(SignedDocument):
    """Replace a keyset's spec. ``seq`` counts changes from 1; ``prev`` is the keyset id for
    the first change and the previous change's id after that."""

    version: int
    keyset: ExternalHash
    seq: int
    prev: ExternalHash
    spec: AuthoritySpec
    issued_us: int
    signatures: Signatures = ()

    CONTEXT = KEYSET_CHANGE_CONTEXT
    MAX_BYTES = MAX_KEYSET_CHANGE_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> KeysetChange:
        """Strict decoding (shape only; :func:`keyset_problem` checks the signatures)."""
        change = cls.decoded(data)
        _check_change_shape(change)
        return change


def _check_change_shape(change: KeysetChange) -> None:
    wire.require(change.version == KEYSET_VERSION, f"unknown keyset version {change.version}")
    wire.require(change.seq >= 1 and change.issued_us >= 0, "bad keyset change seq or time")
    wire.require(spec_problem(change.spec) is None, "malformed authority spec")
    wire.require(signatures_shape_ok(change.signatures), "malformed keyset change signatures")


@dataclass(frozen=True, slots=True)
class Keyset:
    """An owner's key state: the genesis spec and every change since, in order."""

    genesis: AuthoritySpec
    changes: tuple[KeysetChange, ...] = ()

    @property
    def id(self) -> ExternalHash:
        return keyset_id(self.genesis)

    @property
    def current(self) -> AuthoritySpec:
        """The spec in force after the last change."""
        return self.changes[-1].spec if self.changes else self.genesis

    @property
    def head(self) -> ExternalHash:
        """What the next change names as ``prev``."""
        return self.changes[-1].id if self.changes else self.id

    def propose(self, spec: AuthoritySpec, issued_us: int) -> KeysetChange:
        """An unsigned change to ``spec``, next in this chain (sign it with
        :meth:`KeysetChange.signed_by`)."""
        return KeysetChange(
            KEYSET_VERSION, self.id, len(self.changes) + 1, self.head, spec, issued_us
        )

    def extended(self, change: KeysetChange) -> Keyset:
        """This keyset with ``change`` appended (not checked: see :func:`keyset_problem`)."""
        return Keyset(self.genesis, (*self.changes, change))

    def extends(self, older: Keyset) -> bool:
        """Whether this chain is ``older`` or continues it."""
        return self.genesis == older.genesis and self.changes[: len(older.changes)] == older.changes

    def all_signers(self) -> frozenset[AgentPubKey]:
        """Every key that was ever a signer or revoker of this keyset."""
        keys: set[AgentPubKey] = set()
        for spec in (self.genesis, *(c.spec for c in self.changes)):
            keys.update(spec.signers)
            if spec.revoker is not None:
                keys.add(spec.revoker)
        return frozenset(keys)


def keyset_problem(keyset: Keyset) -> str | None:
    """Why ``keyset`` is not a valid chain, or None. Each change must be the next in sequence,
    link to the one before, not go back in time, and be signed by M of the previous spec or by
    its revoker; replacing or dropping a revoker needs the revoker's own signature."""
    problem = spec_problem(keyset.genesis)
    if problem:
        return f"genesis spec: {problem}"
    if len(keyset.changes) > MAX_KEYSET_CHANGES:
        return f"a keyset carries at most {MAX_KEYSET_CHANGES} changes"
    ident, previous, prev_id, prev_time = keyset.id, keyset.genesis, keyset.id, 0
    for seq, change in enumerate(keyset.changes, start=1):
        where = f"keyset change {seq}"
        if change.version != KEYSET_VERSION:
            return f"{where}: unknown version {change.version}"
        if change.keyset != ident or change.seq != seq or change.prev != prev_id:
            return f"{where}: not the next change of this keyset"
        if change.issued_us < prev_time:
            return f"{where}: issued before the change it follows"
        problem = spec_problem(change.spec)
        if problem:
            return f"{where}: {problem}"
        message = change.message()
        if previous.revoker is not None and change.spec.revoker != previous.revoker:
            problem = check_authorized(
                AuthoritySpec(1, (previous.revoker,)),
                message,
                KEYSET_CHANGE_CONTEXT,
                change.signatures,
            )
            if problem:
                return f"{where}: replacing the revoker needs the revoker's signature"
        problem = check_revoker_or_authorized(
            previous, message, KEYSET_CHANGE_CONTEXT, change.signatures
        )
        if problem:
            return f"{where}: {problem}"
        previous, prev_id, prev_time = change.spec, change.id, change.issued_us
    return None
