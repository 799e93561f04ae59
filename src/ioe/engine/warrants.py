"""Warrants: signed, re-checkable evidence that an agent broke its DNA's rules.

An authority that holds an op and finds it **invalid**, or finds two actions by one author that
cannot both be on one chain (a **fork**: same previous action, or same sequence number), signs a
:class:`Warrant` about that author. Whoever receives it re-checks it with :func:`check_warrant`,
which needs nothing but the warrant, the DNA and a validation host:

* :class:`Upheld` — the warranted agent broke the rule: block it;
* :class:`Refuted` — the warrant is false (the same action twice, actions by someone else, forged
  evidence, a valid op called invalid …): block the warrant's *signer*;
* :class:`~ioe.engine.integrity.Unresolved` — the evidence needs records this host lacks: block
  nobody yet.

A warrant whose own signature fails, or that belongs to another DNA, cannot be blamed on anyone
(anyone can write any signer key into one): :func:`check_warrant` raises
:class:`~ioe.errors.EncodingError` for it, as decoding does for garbage.

No I/O here; :mod:`ioe.dht.service` spreads warrants and blocks agents. See docs/warrants.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.engine.dht import MAX_OP_BYTES, DhtOp, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Unresolved, UnresolvedDependency, Valid
from ioe.engine.ops import OpType
from ioe.engine.records import Dna, SignedAction
from ioe.engine.validation import SourceHost
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey, DnaHash, HoloHash, WarrantHash

WARRANT_CONTEXT = b"ioe/warrant/v1"
WARRANT_VERSION = 1
MAX_WARRANT_BYTES = MAX_OP_BYTES + 4096
"""Room for the largest op (an invalid op with a full-size entry) plus the warrant's fields."""
MAX_REASON_CHARS = 1024
MAX_FORK_WALK = 4096
"""How far back :func:`fork_point` follows two branches to where they split."""


class WarrantKind(IntEnum):
    INVALID_OP = 1
    FORK = 2


@dataclass(frozen=True, slots=True)
class Upheld:
    """The warrant is true: the warranted agent broke the rule."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refuted:
    """The warrant is false: its signer is to blame."""

    reason: str


WarrantVerdict = Upheld | Refuted | Unresolved


@dataclass(frozen=True, slots=True)
class Warrant:
    """``signer``'s signed claim that ``author`` broke a rule, with the evidence to re-check it.

    Evidence: one op (``INVALID_OP``: the op as it travels, entry included) or two
    ``REGISTER_AGENT_ACTIVITY`` ops (``FORK``: the two actions that cannot share a chain).
    """

    kind: WarrantKind
    dna_hash: DnaHash
    author: AgentPubKey
    evidence: tuple[DhtOp, ...]
    reason: str
    signer: AgentPubKey
    timestamp_us: int
    signature: bytes = b""

    def _fields(self) -> list[Value]:
        return [
            WARRANT_VERSION,
            int(self.kind),
            bytes(self.dna_hash),
            bytes(self.author),
            [op.to_bytes() for op in self.evidence],
            self.reason,
            bytes(self.signer),
            self.timestamp_us,
        ]

    def _message(self) -> bytes:
        return encode(self._fields())

    @classmethod
    def sign(
        cls,
        keys: KeyPair,
        *,
        kind: WarrantKind,
        dna_hash: DnaHash,
        author: AgentPubKey,
        evidence: Sequence[DhtOp],
        reason: str,
        now_us: int,
    ) -> Warrant:
        warrant = cls(
            kind, dna_hash, author, tuple(evidence), reason[:MAX_REASON_CHARS], keys.agent, now_us
        )
        _check_shape(warrant)
        return replace(warrant, signature=keys.sign(WARRANT_CONTEXT, warrant._message()))

    def signature_valid(self) -> bool:
        return verify(self.signer, WARRANT_CONTEXT, self._message(), self.signature)

    def to_bytes(self) -> bytes:
        return encode([*self._fields(), self.signature])

    @property
    def hash(self) -> WarrantHash:
        return WarrantHash.of(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Warrant:
        """Strict decoding: size, canonical CBOR, every field's type, the evidence's shape.
        :class:`EncodingError` for anything else (the signature is *not* checked here)."""
        if type(data) is not bytes:
            raise EncodingError("a warrant is bytes")
        if len(data) > MAX_WARRANT_BYTES:
            raise EncodingError(f"a warrant of {len(data)} bytes is over {MAX_WARRANT_BYTES}")
        value = decode(data, max_size=MAX_WARRANT_BYTES)
        if type(value) is not list or len(value) != 9:
            raise EncodingError("a warrant is a list of nine fields")
        version, kind, dna, author, evidence, reason, signer, when, signature = value
        if version != WARRANT_VERSION or type(version) is not int:
            raise EncodingError(f"unknown warrant version {version!r}")
        if type(kind) is not int or kind not in WarrantKind._value2member_map_:
            raise EncodingError(f"unknown warrant kind {kind!r}")
        if type(dna) is not bytes or type(author) is not bytes or type(signer) is not bytes:
            raise EncodingError("malformed warrant keys")
        if type(reason) is not str or len(reason) > MAX_REASON_CHARS:
            raise EncodingError("malformed warrant reason")
        if type(when) is not int or when < 0:
            raise EncodingError("malformed warrant timestamp")
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
            raise EncodingError("a warrant signature is 64 bytes")
        if type(evidence) is not list or not 1 <= len(evidence) <= 2:
            raise EncodingError("warrant evidence is a list of one or two ops")
        if not all(type(item) is bytes for item in evidence):
            raise EncodingError("warrant evidence items are ops")
        warrant = cls(
            WarrantKind(kind),
            DnaHash(dna),
            AgentPubKey(author),
            tuple(DhtOp.from_bytes(item) for item in evidence),
            reason,
            AgentPubKey(signer),
            when,
            signature,
        )
        _check_shape(warrant)
        return warrant


def _check_shape(warrant: Warrant) -> None:
    if warrant.kind is WarrantKind.INVALID_OP:
        if len(warrant.evidence) != 1:
            raise EncodingError("an invalid-op warrant carries exactly one op")
    elif len(warrant.evidence) != 2 or any(
        op.op_type is not OpType.REGISTER_AGENT_ACTIVITY for op in warrant.evidence
    ):
        raise EncodingError("a fork warrant carries exactly two agent-activity ops")


# ------------------------------------------------------------------------------- the rules


def fork_problem(a: SignedAction, b: SignedAction, author: AgentPubKey) -> str | None:
    """Why ``a`` and ``b`` are *not* evidence of a fork in ``author``'s chain (None: they are
    two distinct, validly signed actions of ``author`` with the same previous action, or the same
    sequence number). Same-sequence pairs with different previous actions still need
    :func:`check_warrant`'s walk back to show both are on this DNA's chain."""
    if a.action.author != author or b.action.author != author:
        return "the evidence is not by the warranted author"
    if a.hash == b.hash:
        return "the same action twice is not a fork"
    if not a.signature_valid() or not b.signature_valid():
        return "an evidence action is not signed by its author"
    if a.action.prev != b.action.prev and a.action.seq != b.action.seq:
        return "the actions have neither the same sequence number nor the same previous action"
    return None


def fork_point(
    a: SignedAction, b: SignedAction, host: SourceHost
) -> tuple[SignedAction, SignedAction] | Unresolved | str:
    """Follow two same-sequence branches back to the pair that shares a previous action (or to
    the first actions, both without one). Returns that pair, :class:`Unresolved` when the host
    lacks a record on the way, or why the branches are not one chain's."""
    deps: list[HoloHash] = []
    for _ in range(MAX_FORK_WALK):
        if a.action.prev == b.action.prev:
            return a, b
        if a.action.seq != b.action.seq or a.action.prev is None or b.action.prev is None:
            return "the branches do not line up"
        try:
            prev_a = host.must_get_action(a.action.prev)
        except UnresolvedDependency as missing:
            deps.extend(missing.deps)
            prev_a = None
        try:
            prev_b = host.must_get_action(b.action.prev)
        except UnresolvedDependency as missing:
            deps.extend(missing.deps)
            prev_b = None
        if prev_a is None or prev_b is None:
            return Unresolved(tuple(deps))
        if prev_a.action.author != a.action.author or prev_b.action.author != b.action.author:
            return "a branch links to another author's action"
        a, b = prev_a, prev_b
    return Unresolved(())  # too long to follow here: undecided, nobody is blamed


def check_warrant(warrant: Warrant, dna: DnaDef, host: SourceHost) -> WarrantVerdict:
    """Re-check ``warrant`` from its evidence alone (plus records ``host`` can find).

    Raises :class:`EncodingError` if the warrant cannot be attributed to its signer (its
    signature fails) or is not for ``dna``: nobody is to blame for such a thing."""
    if warrant.dna_hash != dna.hash:
        raise EncodingError("the warrant is for another DNA")
    _check_shape(warrant)
    if not warrant.signature_valid():
        raise EncodingError("the warrant's signature does not verify")
    if warrant.kind is WarrantKind.FORK:
        return _check_fork(warrant, dna, host)
    return _check_invalid_op(warrant, dna, host)


def _check_fork(warrant: Warrant, dna: DnaDef, host: SourceHost) -> WarrantVerdict:
    a, b = (op.signed_action for op in warrant.evidence)
    problem = fork_problem(a, b, warrant.author)
    if problem is not None:
        return Refuted(problem)
    found = fork_point(a, b, host)
    if isinstance(found, Unresolved):
        return found
    if isinstance(found, str):
        return Refuted(found)
    first, second = found
    if first.action.prev is None:
        # Two first actions: a fork only if both start a chain of *this* DNA (one agent key may
        # have one chain in each of several DNAs).
        for start in (first, second):
            if not isinstance(start.action, Dna) or start.action.dna_hash != dna.hash:
                return Refuted("two chains of different DNAs are not a fork")
        return Upheld("two chains started in one DNA")
    seq = a.action.seq
    return Upheld(f"two actions at sequence number {seq} (a fork of the source chain)")


def _check_invalid_op(warrant: Warrant, dna: DnaDef, host: SourceHost) -> WarrantVerdict:
    op = warrant.evidence[0]
    action = op.signed_action.action
    if action.author != warrant.author:
        return Refuted("the op is not by the warranted author")
    if not op.signed_action.signature_valid():
        return Refuted("the op is not signed by its author")
    if isinstance(action, Dna) and action.dna_hash != dna.hash:
        return Refuted("the first action of another DNA's chain is not invalid there")
    if not isinstance(action, Dna):
        # Actions do not name their DNA, and one key may have chains in several DNAs: an op
        # valid in one, replayed into another, must not frame its author. The op counts only
        # once its chain is shown to start with this DNA.
        if action.prev is None:
            return Refuted("an action without a previous action is not on any chain")
        try:
            chain = host.must_get_agent_activity(action.author, action.prev)
        except UnresolvedDependency as missing:
            return Unresolved(tuple(missing.deps))
        first = chain[0].action if chain else None
        if (
            not isinstance(first, Dna)
            or first.dna_hash != dna.hash
            or chain[-1].hash != action.prev
        ):
            return Refuted("the op is not on a chain of this DNA")
    outcome = validate_op(op, dna, host)
    if isinstance(outcome, Invalid):
        return Upheld(f"invalid op: {outcome.reason}")
    if isinstance(outcome, Valid):
        return Refuted("the op is valid")
    return outcome
