"""Zomes: integrity zomes (entry types, link types, validation) and coordinator zomes (functions).

An integrity zome is data plus one pure function; changing it changes the DNA hash (its name,
version and type tables are hashed into the DNA). A coordinator zome is a table of functions that
may change freely without changing the network's identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ioe.encoding import Value
from ioe.engine.integrity import VALID, IntegrityHost, Op, Outcome, ValidateFn
from ioe.engine.records import Visibility
from ioe.errors import ZomeCallError
from ioe.hashing import AgentPubKey

if TYPE_CHECKING:
    from ioe.engine.cell import CallContext

F = TypeVar("F", bound=Callable[..., Any])
ZomeFn: TypeAlias = "Callable[[CallContext, Any], Any]"
MembraneFn: TypeAlias = Callable[[AgentPubKey, bytes | None, Mapping[str, Value]], Outcome]
"""``membrane(agent, proof, dna_properties)``: pure, like validation."""


def _accept_everything(op: Op, host: IntegrityHost) -> Outcome:
    return VALID


@dataclass(frozen=True, slots=True)
class EntryDef:
    """One app entry type: a dataclass, its name on the wire and its visibility."""

    name: str
    cls: type
    visibility: Visibility = Visibility.PUBLIC


@dataclass(frozen=True)
class IntegrityZome:
    """Entry and link types plus the validation function. ``version`` names the rules: bump it
    whenever ``validate`` changes behaviour, which changes the DNA hash (a new network)."""

    name: str
    version: str
    entry_defs: tuple[EntryDef, ...] = ()
    link_types: tuple[str, ...] = ()
    validate: ValidateFn = _accept_everything
    membrane: MembraneFn | None = None
    """Judges the membrane proof an agent presents to join the network (None: anyone may)."""

    def __post_init__(self) -> None:
        names = [d.name for d in self.entry_defs]
        if len(set(names)) != len(names) or len({d.cls for d in self.entry_defs}) != len(names):
            raise ValueError(f"zome {self.name}: entry type names and classes must be unique")
        if len(set(self.link_types)) != len(self.link_types):
            raise ValueError(f"zome {self.name}: link type names must be unique")
        if len(self.entry_defs) > 255 or len(self.link_types) > 255:
            raise ValueError(f"zome {self.name}: at most 255 entry and link types")

    def entry_index(self, cls: type) -> int | None:
        for index, entry_def in enumerate(self.entry_defs):
            if entry_def.cls is cls:
                return index
        return None

    def link_index(self, name: str) -> int | None:
        try:
            return self.link_types.index(name)
        except ValueError:
            return None

    def describe(self) -> Value:
        """What of this zome is hashed into the DNA."""
        return {
            "name": self.name,
            "version": self.version,
            "entry_types": [[d.name, int(d.visibility)] for d in self.entry_defs],
            "link_types": list(self.link_types),
        }


@dataclass
class CoordinatorZome:
    """Zome functions, callable as ``cell.call(zome, function, payload, now_us=...)``."""

    name: str
    functions: dict[str, ZomeFn] = field(default_factory=dict)

    def function(self, fn: F) -> F:
        """Decorator: register ``fn(ctx, payload)`` under its own name."""
        self.functions[fn.__name__] = fn
        return fn

    def get(self, name: str) -> ZomeFn:
        try:
            return self.functions[name]
        except KeyError:
            raise ZomeCallError(f"zome {self.name!r} has no function {name!r}") from None
