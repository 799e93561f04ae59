"""Actions, entries and records: what a source chain is made of, and their canonical bytes.

An action is encoded as a CBOR array whose first five items are common to every action::

    [type, author, timestamp_us, seq, prev_action, ...type-specific fields]

and its hash is BLAKE2b-256 of that encoding. The author signs the action hash under the
context ``ioe/action/v1``. A stored "signed action" is ``[action_array, signature]``.

Entries are ``[kind, payload]``: kind 0 is an app entry (payload = canonical bytes of the app's
value), kind 1 an agent key. The entry hash is BLAKE2b-256 of the entry's encoding. Which app
entry type an entry is, and whether it is public or private, is said by the action that creates it
(``entry_type = [zome_index, entry_index, visibility]``), as in Holochain.

The full byte layout is in ``docs/encoding.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeAlias

from ioe.crypto.keys import SIGNATURE_SIZE, KeyPair, verify
from ioe.encoding import Value, decode, encode
from ioe.errors import EncodingError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DnaHash,
    EntryHash,
    H,
    HoloHash,
    from_typed_bytes,
    to_typed_bytes,
)

ACTION_SIGNATURE_CONTEXT = b"ioe/action/v1"
MAX_ENTRY_BYTES = 1024 * 1024
MAX_LINK_TAG_BYTES = 1024
MAX_MEMBRANE_PROOF_BYTES = 64 * 1024
MAX_SIGNED_ACTION_BYTES = MAX_MEMBRANE_PROOF_BYTES + 1024


class ActionType(IntEnum):
    DNA = 0
    AGENT_VALIDATION_PKG = 1
    INIT_ZOMES_COMPLETE = 2
    CREATE = 3
    UPDATE = 4
    DELETE = 5
    CREATE_LINK = 6
    DELETE_LINK = 7


class Visibility(IntEnum):
    PUBLIC = 0
    PRIVATE = 1


@dataclass(frozen=True, slots=True)
class AppEntryType:
    """Which zome's which entry type, and its visibility."""

    zome_index: int
    entry_index: int
    visibility: Visibility = Visibility.PUBLIC

    def to_value(self) -> Value:
        return [self.zome_index, self.entry_index, int(self.visibility)]

    @classmethod
    def from_value(cls, value: Value) -> AppEntryType:
        if type(value) is not list or len(value) != 3:
            raise EncodingError("entry type must be [zome_index, entry_index, visibility]")
        zome_index, entry_index, visibility = value
        if type(zome_index) is not int or not 0 <= zome_index < 256:
            raise EncodingError("entry type zome index must be in [0, 256)")
        if type(entry_index) is not int or not 0 <= entry_index < 256:
            raise EncodingError("entry type index must be in [0, 256)")
        if visibility == 0 and type(visibility) is int:
            return cls(zome_index, entry_index, Visibility.PUBLIC)
        if visibility == 1 and type(visibility) is int:
            return cls(zome_index, entry_index, Visibility.PRIVATE)
        raise EncodingError(f"unknown visibility {visibility!r}")


AGENT_ENTRY_TYPE = AppEntryType(255, 0, Visibility.PUBLIC)
"""The entry type of the agent-key entry written at genesis (zome index 255 = the system)."""


# ---------------------------------------------------------------------------------------- entries


class EntryKind(IntEnum):
    APP = 0
    AGENT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry's content: ``kind`` and its payload bytes (app value bytes or an agent key).

    The canonical bytes are computed once (or kept from decoding) so hashing costs no encoding.
    """

    kind: EntryKind
    payload: bytes
    encoded: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.encoded:
            object.__setattr__(self, "encoded", encode([int(self.kind), self.payload]))

    def to_bytes(self) -> bytes:
        return self.encoded

    def hash(self) -> EntryHash:
        return EntryHash.of(self.encoded)

    @classmethod
    def app(cls, content: bytes) -> Entry:
        return cls(EntryKind.APP, content)

    @classmethod
    def agent(cls, agent: AgentPubKey) -> Entry:
        return cls(EntryKind.AGENT, bytes(agent))

    def app_value(self) -> Value:
        """The decoded app value (only for app entries)."""
        if self.kind is not EntryKind.APP:
            raise EncodingError("not an app entry")
        return decode(self.payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        if len(data) > MAX_ENTRY_BYTES + 16:
            raise EncodingError(f"entry of {len(data)} bytes is over the limit")
        value = decode(data)
        if not (isinstance(value, list) and len(value) == 2 and type(value[1]) is bytes):
            raise EncodingError("entry must be [kind, payload]")
        kind, payload = value
        if type(kind) is not int:  # false == 0 and true == 1: a second spelling, another hash
            raise EncodingError(f"entry kind must be an integer, not {kind!r}")
        if kind == EntryKind.APP:
            return cls(EntryKind.APP, payload, bytes(data))
        if kind == EntryKind.AGENT and len(payload) == 32:
            return cls(EntryKind.AGENT, payload, bytes(data))
        raise EncodingError(f"unknown entry kind {kind!r}")


# ---------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Action:
    """Fields common to every action. Subclasses add their own, in encoding order."""

    TYPE: ClassVar[ActionType]

    author: AgentPubKey
    timestamp: int
    seq: int
    prev: ActionHash | None

    def _fields(self) -> list[Value]:
        return []

    def to_value(self) -> list[Value]:
        return [int(self.TYPE), self.author, self.timestamp, self.seq, self.prev, *self._fields()]

    def to_bytes(self) -> bytes:
        return encode(self.to_value())

    @property
    def entry_hash(self) -> EntryHash | None:
        return None

    @property
    def entry_type(self) -> AppEntryType | None:
        return None


@dataclass(frozen=True, slots=True)
class Dna(Action):
    TYPE = ActionType.DNA
    dna_hash: DnaHash

    def _fields(self) -> list[Value]:
        return [self.dna_hash]


@dataclass(frozen=True, slots=True)
class AgentValidationPkg(Action):
    TYPE = ActionType.AGENT_VALIDATION_PKG
    membrane_proof: bytes | None

    def _fields(self) -> list[Value]:
        return [self.membrane_proof]


@dataclass(frozen=True, slots=True)
class InitZomesComplete(Action):
    TYPE = ActionType.INIT_ZOMES_COMPLETE


@dataclass(frozen=True, slots=True)
class Create(Action):
    TYPE = ActionType.CREATE
    app_entry_type: AppEntryType
    created_entry: EntryHash

    def _fields(self) -> list[Value]:
        return [self.app_entry_type.to_value(), self.created_entry]

    @property
    def entry_hash(self) -> EntryHash | None:
        return self.created_entry

    @property
    def entry_type(self) -> AppEntryType | None:
        return self.app_entry_type


@dataclass(frozen=True, slots=True)
class Update(Action):
    TYPE = ActionType.UPDATE
    app_entry_type: AppEntryType
    created_entry: EntryHash
    original_action: ActionHash
    original_entry: EntryHash

    def _fields(self) -> list[Value]:
        return [
            self.app_entry_type.to_value(),
            self.created_entry,
            self.original_action,
            self.original_entry,
        ]

    @property
    def entry_hash(self) -> EntryHash | None:
        return self.created_entry

    @property
    def entry_type(self) -> AppEntryType | None:
        return self.app_entry_type


@dataclass(frozen=True, slots=True)
class Delete(Action):
    TYPE = ActionType.DELETE
    deletes_action: ActionHash
    deletes_entry: EntryHash

    def _fields(self) -> list[Value]:
        return [self.deletes_action, self.deletes_entry]


@dataclass(frozen=True, slots=True)
class CreateLink(Action):
    TYPE = ActionType.CREATE_LINK
    base: HoloHash
    target: HoloHash
    zome_index: int
    link_type: int
    tag: bytes

    def _fields(self) -> list[Value]:
        return [
            to_typed_bytes(self.base),
            to_typed_bytes(self.target),
            self.zome_index,
            self.link_type,
            self.tag,
        ]


@dataclass(frozen=True, slots=True)
class DeleteLink(Action):
    TYPE = ActionType.DELETE_LINK
    link_add: ActionHash
    base: HoloHash

    def _fields(self) -> list[Value]:
        return [self.link_add, to_typed_bytes(self.base)]


AnyAction: TypeAlias = (
    Dna
    | AgentValidationPkg
    | InitZomesComplete
    | Create
    | Update
    | Delete
    | CreateLink
    | DeleteLink
)


def _hash32(value: Value, kind: type[H], what: str) -> H:
    if type(value) is not bytes or len(value) != 32:
        raise EncodingError(f"{what} must be 32 bytes")
    return kind(value)


def _small(value: Value, what: str, limit: int = 256) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise EncodingError(f"{what} must be an integer in [0, {limit})")
    return value


def _typed(value: Value, what: str) -> HoloHash:
    if type(value) is not bytes:
        raise EncodingError(f"{what} must be a typed hash")
    return from_typed_bytes(value)


def action_from_value(value: Value) -> AnyAction:
    """Build a typed action from its decoded array, checking every field's shape."""
    if type(value) is not list or len(value) < 5:
        raise EncodingError("an action is an array of at least five items")
    kind, author, timestamp, seq, prev, *rest = value
    arity = _ARITY.get(kind) if type(kind) is int else None
    if arity is None:
        raise EncodingError(f"unknown action type {kind!r}")
    if len(rest) != arity:
        raise EncodingError(f"action type {kind} takes {arity} fields, got {len(rest)}")
    if type(timestamp) is not int or timestamp < 0:
        raise EncodingError("timestamp must be a non-negative integer (µs)")
    if type(seq) is not int or seq < 0:
        raise EncodingError("seq must be a non-negative integer")
    common = (
        _hash32(author, AgentPubKey, "author"),
        timestamp,
        seq,
        None if prev is None else _hash32(prev, ActionHash, "prev_action"),
    )
    if kind == ActionType.CREATE:
        return Create(
            *common,
            AppEntryType.from_value(rest[0]),
            _hash32(rest[1], EntryHash, "entry_hash"),
        )
    if kind == ActionType.DNA:
        return Dna(*common, _hash32(rest[0], DnaHash, "dna_hash"))
    if kind == ActionType.AGENT_VALIDATION_PKG:
        proof = rest[0]
        if proof is not None and (
            type(proof) is not bytes or len(proof) > MAX_MEMBRANE_PROOF_BYTES
        ):
            raise EncodingError("membrane proof must be bytes (at most 64 KiB) or null")
        return AgentValidationPkg(*common, proof)
    if kind == ActionType.INIT_ZOMES_COMPLETE:
        return InitZomesComplete(*common)
    if kind == ActionType.UPDATE:
        return Update(
            *common,
            AppEntryType.from_value(rest[0]),
            _hash32(rest[1], EntryHash, "entry_hash"),
            _hash32(rest[2], ActionHash, "original_action"),
            _hash32(rest[3], EntryHash, "original_entry"),
        )
    if kind == ActionType.DELETE:
        return Delete(
            *common,
            _hash32(rest[0], ActionHash, "deletes_action"),
            _hash32(rest[1], EntryHash, "deletes_entry"),
        )
    if kind == ActionType.CREATE_LINK:
        base, target, zome_index, link_type, tag = rest
        if type(tag) is not bytes or len(tag) > MAX_LINK_TAG_BYTES:
            raise EncodingError(f"link tag must be bytes of at most {MAX_LINK_TAG_BYTES}")
        return CreateLink(
            *common,
            _typed(base, "link base"),
            _typed(target, "link target"),
            _small(zome_index, "link zome index"),
            _small(link_type, "link type"),
            tag,
        )
    link_add, base = rest
    return DeleteLink(
        *common, _hash32(link_add, ActionHash, "link_add_address"), _typed(base, "link base")
    )


_ARITY: dict[int, int] = {
    ActionType.DNA: 1,
    ActionType.AGENT_VALIDATION_PKG: 1,
    ActionType.INIT_ZOMES_COMPLETE: 0,
    ActionType.CREATE: 2,
    ActionType.UPDATE: 4,
    ActionType.DELETE: 2,
    ActionType.CREATE_LINK: 5,
    ActionType.DELETE_LINK: 2,
}


@dataclass(frozen=True, slots=True)
class SignedAction:
    """An action with its author's signature and its hash (computed once)."""

    action: AnyAction
    signature: bytes
    hash: ActionHash

    @classmethod
    def sign(cls, action: AnyAction, keys: KeyPair) -> SignedAction:
        if keys.agent != action.author:
            raise EncodingError("an action must be signed by its author")
        action_hash = ActionHash.of(action.to_bytes())
        return cls(action, keys.sign(ACTION_SIGNATURE_CONTEXT, action_hash), action_hash)

    def signature_valid(self) -> bool:
        return verify(self.action.author, ACTION_SIGNATURE_CONTEXT, self.hash, self.signature)

    def to_bytes(self) -> bytes:
        return encode([self.action.to_value(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedAction:
        """Decode and re-hash. The signature is *not* checked here (see :meth:`signature_valid`)."""
        if len(data) > MAX_SIGNED_ACTION_BYTES:
            raise EncodingError(f"signed action of {len(data)} bytes is over the limit")
        value = decode(data)
        if not (isinstance(value, list) and len(value) == 2):
            raise EncodingError("a signed action is [action, signature]")
        action_value, signature = value
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
            raise EncodingError("signature must be 64 bytes")
        action = action_from_value(action_value)
        # The bytes are canonical (decode checked), so the action's own encoding is the slice
        # between the 1-byte array header and the 66-byte signature item: no need to re-encode.
        return cls(action, signature, ActionHash.of(data[1 : len(data) - 66]))


@dataclass(frozen=True, slots=True)
class Record:
    """A signed action and, when it has one and it is visible here, its entry."""

    signed_action: SignedAction
    entry: Entry | None = None

    @property
    def action(self) -> AnyAction:
        return self.signed_action.action

    @property
    def action_hash(self) -> ActionHash:
        return self.signed_action.hash

    def is_private(self) -> bool:
        entry_type = self.action.entry_type
        return entry_type is not None and entry_type.visibility is Visibility.PRIVATE
