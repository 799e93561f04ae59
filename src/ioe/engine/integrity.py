"""What integrity (validation) code may use: outcomes, ops, and a narrow host.

Validation must reach the same verdict on every peer, so the host offers no clock, no randomness
and no network: only signature checks and ``must_get_*`` look-ups of content-addressed data, which
either return the same thing everywhere or raise :class:`UnresolvedDependency` (the op is then
retried later, never judged on missing data).

A zome's validation function has the shape ``validate(op, host) -> Outcome``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from ioe.encoding import Value
from ioe.engine.ops import Op, OpType
from ioe.engine.records import Entry, Record, SignedAction
from ioe.hashing import ActionHash, AgentPubKey, EntryHash, HoloHash

__all__ = [
    "VALID",
    "IntegrityHost",
    "Invalid",
    "Op",
    "OpType",
    "Outcome",
    "Unresolved",
    "UnresolvedDependency",
    "Valid",
    "ValidateFn",
]


@dataclass(frozen=True, slots=True)
class Valid:
    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Unresolved:
    """Judgement deferred: these hashes are needed and not yet available."""

    deps: tuple[HoloHash, ...]

    def __bool__(self) -> bool:
        return False


Outcome: TypeAlias = Valid | Invalid | Unresolved
VALID = Valid()


class UnresolvedDependency(Exception):
    """Raised by ``must_get_*`` when a dependency is missing; turns into :class:`Unresolved`."""

    def __init__(self, *deps: HoloHash) -> None:
        super().__init__(", ".join(dep.short() for dep in deps))
        self.deps = deps


class IntegrityHost(Protocol):
    """The host functions validation code may call."""

    @property
    def dna_properties(self) -> Mapping[str, Value]: ...

    def verify_signature(
        self, agent: AgentPubKey, context: bytes, message: bytes, signature: bytes
    ) -> bool: ...

    def must_get_action(self, action_hash: ActionHash) -> SignedAction: ...

    def must_get_entry(self, entry_hash: EntryHash) -> Entry: ...

    def must_get_valid_record(self, action_hash: ActionHash) -> Record: ...

    def must_get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction]: ...


ValidateFn: TypeAlias = Callable[[Op, IntegrityHost], Outcome]
