"""Key revocation and rotation, and an agent key's state at a point in its chain.

A :class:`KeyRevocation` says: the actions of ``revoked`` up to sequence number
``last_valid_seq`` stand (and, when ``head`` is given, the one at that number is exactly
``head``); anything it signs later is invalid, on every node, whatever its timestamp. It may name
a ``replacement`` key (rotation). It is signed by M of the keyset's current spec, or by the
spec's revoker alone (the owner's offline revocation key), and may revoke a device enrolled by
that keyset or the owner agent bound to it.

The effect of a revocation or a transfer is a :class:`Cutoff`; :func:`key_state` folds every
cutoff known for an agent into its :class:`KeyState`, independently of their order: the earliest
cutoff wins, so learning of more revocations only ever removes actions, never restores them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ioe.engine.records import SignedAction
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.authority import (
    Keyset,
    check_revoker_or_authorized,
    keyset_problem,
    signatures_shape_ok,
)
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.document import Signatures, SignedDocument

REVOCATION_CONTEXT = b"ioe/identity/revocation/v1"
REVOCATION_VERSION = 1
MAX_REVOCATION_BYTES = 4096
NOTHING_VALID = -1
"""``last_valid_seq`` revoking a key from its very first action."""


@dataclass(frozen=True, slots=True)
class Cutoff:
    """The effect of one revocation: ``agent``'s actions after ``last_valid_seq`` are invalid,
    and at it only ``head`` (when given) is valid."""

    agent: AgentPubKey
    last_valid_seq: int
    head: ActionHash | None
    replacement: AgentPubKey | None
    issued_us: int

    def cutoff(self) -> Cutoff:
        return self


class Revokes(Protocol):
    """Anything that cuts a key off: a revocation, a transfer, or a cutoff itself."""

    def cutoff(self) -> Cutoff: ...


@dataclass(frozen=True, slots=True)
class KeyRevocation(SignedDocument):
    version: int
    keyset: ExternalHash
    revoked: AgentPubKey
    last_valid_seq: int
    head: ActionHash | None
    reason: str
    replacement: AgentPubKey | None
    issued_us: int
    signatures: Signatures = ()

    CONTEXT = REVOCATION_CONTEXT
    MAX_BYTES = MAX_REVOCATION_BYTES

    @classmethod
    def new(
        cls,
        keyset: Keyset,
        revoked: AgentPubKey,
        *,
        last_valid_seq: int,
        issued_us: int,
        reason: str,
        head: ActionHash | None = None,
        replacement: AgentPubKey | None = None,
    ) -> KeyRevocation:
        """An unsigned revocation by ``keyset`` (sign with :meth:`signed_by`)."""
        return cls(
            REVOCATION_VERSION,
            keyset.id,
            revoked,
            last_valid_seq,
            head,
            reason,
            replacement,
            issued_us,
        )

    def cutoff(self) -> Cutoff:
        return Cutoff(
            self.revoked, self.last_valid_seq, self.head, self.replacement, self.issued_us
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyRevocation:
        """Strict decoding (shape only; :func:`revocation_problem` checks authority)."""
        revocation = cls.decoded(data)
        wire.require(revocation.version == REVOCATION_VERSION, "unknown revocation version")
        wire.require(signatures_shape_ok(revocation.signatures), "malformed signatures")
        problem = _shape_problem(revocation)
        wire.require(problem is None, str(problem))
        return revocation


def _shape_problem(revocation: KeyRevocation) -> str | None:
    if revocation.last_valid_seq < NOTHING_VALID:
        return f"last_valid_seq is at least {NOTHING_VALID}"
    if revocation.head is not None and revocation.last_valid_seq < 0:
        return "a head needs the sequence number it is at"
    if revocation.replacement == revocation.revoked:
        return "a key cannot replace itself"
    if revocation.issued_us < 0:
        return "issued_us is non-negative"
    return wire.text_problem(revocation.reason, "the reason", allow_empty=True)


def revocation_problem(
    revocation: KeyRevocation, keyset: Keyset, enrolled: EnrollmentCertificate
) -> str | None:
    """Why ``revocation`` does not take effect, or None. ``enrolled`` is the certificate of
    the revoked key (its device, or its owner agent); ``keyset`` is the latest chain known of
    the certificate's keyset (whose current spec must authorize the revocation)."""
    if revocation.version != REVOCATION_VERSION:
        return f"unknown revocation version {revocation.version}"
    problem = _shape_problem(revocation) or keyset_problem(keyset)
    if problem:
        return problem
    if not (revocation.keyset == keyset.id == enrolled.keyset_id):
        return "the revocation, the keyset and the certificate name different keysets"
    if revocation.revoked not in (enrolled.device, enrolled.owner):
        return "the revoked key is neither the certified device nor its owner agent"
    problem = check_revoker_or_authorized(
        keyset.current, revocation.message(), REVOCATION_CONTEXT, revocation.signatures
    )
    return f"revocation not authorized: {problem}" if problem else None


# ----------------------------------------------------------------------------- key state


@dataclass(frozen=True, slots=True)
class KeyState:
    """What ``agent`` may still sign: nothing after ``last_valid_seq`` (None: not revoked)."""

    agent: AgentPubKey
    last_valid_seq: int | None = None
    head: ActionHash | None = None
    replacement: AgentPubKey | None = None

    @property
    def revoked(self) -> bool:
        return self.last_valid_seq is not None

    def allows(self, seq: int, action_hash: ActionHash) -> bool:
        """Whether an action of this agent at ``seq`` with ``action_hash`` stands."""
        if self.last_valid_seq is None or seq < self.last_valid_seq:
            return True
        if seq > self.last_valid_seq:
            return False
        return self.head is None or self.head == action_hash


def _rank(cut: Cutoff) -> tuple[int, int, bytes, bytes]:
    return (
        cut.last_valid_seq,
        cut.issued_us,
        bytes(cut.head or b""),
        bytes(cut.replacement or b""),
    )


def key_state(
    agent: AgentPubKey, revocations: Iterable[Revokes], at_us: int | None = None
) -> KeyState:
    """``agent``'s state under the (already verified) ``revocations``; with ``at_us``, only
    those issued by then count. Order-independent; the earliest cutoff wins, and two cutoffs at
    one sequence number that name different heads leave neither head valid."""
    cuts = sorted(
        (c for c in (r.cutoff() for r in revocations) if c.agent == agent),
        key=_rank,
    )
    if at_us is not None:
        cuts = [c for c in cuts if c.issued_us <= at_us]
    if not cuts:
        return KeyState(agent)
    first = cuts[0]
    tied = [c for c in cuts if c.last_valid_seq == first.last_valid_seq]
    heads = {c.head for c in tied if c.head is not None}
    replacement = next((c.replacement for c in tied if c.replacement is not None), None)
    if len(heads) > 1:
        return KeyState(agent, first.last_valid_seq - 1, None, replacement)
    return KeyState(agent, first.last_valid_seq, next(iter(heads), None), replacement)


def action_allowed(
    signed_action: SignedAction, revocations: Iterable[Revokes], at_us: int | None = None
) -> bool:
    """Whether ``signed_action`` stands under ``revocations`` of its author's key."""
    action = signed_action.action
    state = key_state(action.author, revocations, at_us)
    return state.allows(action.seq, signed_action.hash)


def key_history(agent: AgentPubKey, revocations: Iterable[Revokes]) -> tuple[AgentPubKey, ...]:
    """``agent`` and each key that replaced it in turn (rotation and transfer links)."""
    cuts = [r.cutoff() for r in revocations]
    history = [agent]
    while len(history) <= len(cuts):
        successor = key_state(history[-1], cuts).replacement
        if successor is None or successor in history:
            break
        history.append(successor)
    return tuple(history)
