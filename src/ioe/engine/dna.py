"""DNA: the definition of an app network, and its hash (the network's name).

The hash covers the DNA's name, its integrity zomes (name, version, entry and link type tables),
its properties (e.g. currency parameters, a community id) and its network seed. Coordinator zomes
are not hashed: behaviour can change without forking the network; integrity rules cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ioe.encoding import Value, encode
from ioe.engine.integrity import VALID, Invalid, Outcome, Valid
from ioe.engine.records import AppEntryType
from ioe.engine.zome import CoordinatorZome, EntryDef, IntegrityZome
from ioe.errors import ZomeCallError
from ioe.hashing import AgentPubKey, DnaHash

DNA_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DnaDef:
    name: str
    integrity_zomes: tuple[IntegrityZome, ...]
    coordinator_zomes: tuple[CoordinatorZome, ...] = ()
    properties: Mapping[str, Value] = field(default_factory=dict)
    network_seed: str = ""

    def __post_init__(self) -> None:
        zome_names = [z.name for z in self.integrity_zomes]
        if len(set(zome_names)) != len(zome_names) or len(zome_names) > 254:
            raise ValueError("integrity zome names must be unique (at most 254 zomes)")
        encode(dict(self.properties))  # properties must be canonical data
        object.__setattr__(self, "properties", MappingProxyType(dict(self.properties)))
        object.__setattr__(self, "_hash", DnaHash.of(encode(self.describe())))

    def describe(self) -> Value:
        """Everything that names the network, as a canonical value."""
        return {
            "format": DNA_FORMAT_VERSION,
            "name": self.name,
            "integrity": [zome.describe() for zome in self.integrity_zomes],
            "properties": dict(self.properties),
            "network_seed": self.network_seed,
        }

    @property
    def hash(self) -> DnaHash:
        value: DnaHash = self.__dict__["_hash"]
        return value

    def integrity_zome(self, index: int) -> IntegrityZome | None:
        return self.integrity_zomes[index] if 0 <= index < len(self.integrity_zomes) else None

    def entry_type_for(self, cls: type) -> tuple[AppEntryType, EntryDef]:
        """The entry type under which instances of ``cls`` are committed."""
        for zome_index, zome in enumerate(self.integrity_zomes):
            entry_index = zome.entry_index(cls)
            if entry_index is not None:
                entry_def = zome.entry_defs[entry_index]
                return AppEntryType(zome_index, entry_index, entry_def.visibility), entry_def
        raise ZomeCallError(f"{cls.__name__} is not an entry type of DNA {self.name!r}")

    def entry_def(self, entry_type: AppEntryType) -> EntryDef | None:
        zome = self.integrity_zome(entry_type.zome_index)
        if zome is None or entry_type.entry_index >= len(zome.entry_defs):
            return None
        return zome.entry_defs[entry_type.entry_index]

    def link_type_for(self, name: str) -> tuple[int, int]:
        """(zome index, link type index) of the link type called ``name``."""
        for zome_index, zome in enumerate(self.integrity_zomes):
            link_index = zome.link_index(name)
            if link_index is not None:
                return zome_index, link_index
        raise ZomeCallError(f"no link type {name!r} in DNA {self.name!r}")

    def check_membrane(self, agent: AgentPubKey, proof: bytes | None) -> Outcome:
        """Whether ``agent`` may join this DNA's network with ``proof`` (every integrity zome that
        has a membrane rule must accept it)."""
        for zome in self.integrity_zomes:
            if zome.membrane is None:
                continue
            try:
                outcome = zome.membrane(agent, proof, self.properties)
            except Exception as exc:  # a crashing rule refuses, as in validation
                return Invalid(f"membrane rule of {zome.name} raised {type(exc).__name__}")
            if not isinstance(outcome, Valid):
                return outcome
        return VALID

    def coordinator(self, name: str) -> CoordinatorZome:
        for zome in self.coordinator_zomes:
            if zome.name == name:
                return zome
        raise ZomeCallError(f"DNA {self.name!r} has no zome {name!r}")


@dataclass(frozen=True, slots=True)
class CellId:
    """A cell is a DNA run by one agent."""

    dna_hash: DnaHash
    agent: AgentPubKey

    def __str__(self) -> str:
        return f"{self.dna_hash.short()}/{self.agent.short()}"
