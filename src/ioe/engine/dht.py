"""The DHT's pure rules: where ops live, what travels, what authorities sign.

* **Location**: every hash and agent has a location on a 256-bit ring, BLAKE2b-256 of its typed
  bytes; the distance between two locations is their XOR (Kademlia's metric).
* **Authorities**: the ``r`` members nearest an op's basis hold it, validate it and sign a
  receipt for it.
* **DhtOp**: an op as it travels: ``[op_type, signed_action, entry | null]`` (canonical CBOR).
  A private entry never travels.
* **ValidationReceipt**: an authority's signed verdict on an op.
* **AgentInfo**: what an agent publishes about itself to join a DNA's network — its node's peer id
  and addresses, signed, with its membrane proof and an expiry.

No I/O here; the network workflows in ``ioe.dht`` drive these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ioe.crypto.keys import KeyPair, verify
from ioe.encoding import decode, encode
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Outcome, Unresolved, UnresolvedDependency, Valid
from ioe.engine.ops import Op, OpType, ops_from_record
from ioe.engine.records import (
    MAX_ENTRY_BYTES,
    MAX_SIGNED_ACTION_BYTES,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    Entry,
    Record,
    SignedAction,
    Update,
)
from ioe.engine.validation import (
    SourceHost,
    check_content,
    check_link,
    countersigned_outcome,
    decode_app_entry,
    run_validation,
)
from ioe.engine.zome import IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import (
    AgentPubKey,
    DhtOpHash,
    DnaHash,
    HoloHash,
    blake2b_256,
    to_typed_bytes,
)

DEFAULT_REPLICATION = 3
RECEIPT_CONTEXT = b"ioe/receipt/v1"
AGENT_INFO_CONTEXT = b"ioe/agent-info/v1"
MAX_OP_BYTES = MAX_SIGNED_ACTION_BYTES + MAX_ENTRY_BYTES + 64
MAX_AGENT_INFO_BYTES = 80 * 1024
MAX_ADDRS = 16
MAX_ADDR_LENGTH = 256


def location(value: HoloHash) -> bytes:
    """Where a hash or an agent sits on the ring."""
    return blake2b_256(to_typed_bytes(value))


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def authorities(basis: HoloHash, members: Iterable[AgentPubKey], r: int) -> list[AgentPubKey]:
    """The ``r`` members nearest ``basis`` (ties broken by key, so every node agrees)."""
    target = location(basis)
    ranked = sorted(set(members), key=lambda agent: (distance(target, location(agent)), agent))
    return ranked[: max(r, 0)]


# ------------------------------------------------------------------------------------- ops


@dataclass(frozen=True, slots=True)
class DhtOp:
    """An op as published to and held by authorities."""

    op_type: OpType
    signed_action: SignedAction
    entry: Entry | None = None

    @property
    def hash(self) -> DhtOpHash:
        return op_hash(self.op_type, self.signed_action)

    def as_op(self) -> Op:
        return Op(self.op_type, self.signed_action, self.entry)

    def basis(self) -> HoloHash:
        return self.as_op().basis()

    def to_bytes(self) -> bytes:
        entry = self.entry.to_bytes() if self.entry is not None else None
        return encode([int(self.op_type), self.signed_action.to_bytes(), entry])

    @classmethod
    def from_bytes(cls, data: bytes) -> DhtOp:
        """Decode and check the op's shape (not its validity: see :func:`validate_op`)."""
        value = decode(data, max_size=MAX_OP_BYTES)
        if type(value) is not list or len(value) != 3:
            raise EncodingError("a DHT op is [op_type, signed_action, entry]")
        kind, signed_bytes, entry_bytes = value
        if type(kind) is not int or kind not in OpType._value2member_map_:
            raise EncodingError(f"unknown op type {kind!r}")
        if type(signed_bytes) is not bytes or (
            entry_bytes is not None and type(entry_bytes) is not bytes
        ):
            raise EncodingError("op fields must be byte strings")
        signed = SignedAction.from_bytes(signed_bytes)
        entry = Entry.from_bytes(entry_bytes) if entry_bytes is not None else None
        op = cls(OpType(kind), signed, entry)
        reason = op_shape_problem(op)
        if reason:
            raise EncodingError(reason)
        return op


def op_hash(op_type: OpType, signed: SignedAction) -> DhtOpHash:
    return DhtOpHash.of(encode([int(op_type), bytes(signed.hash)]))


_OP_ACTIONS: dict[OpType, tuple[type, ...]] = {
    OpType.STORE_ENTRY: (Create, Update),
    OpType.REGISTER_UPDATED_CONTENT: (Update,),
    OpType.REGISTER_UPDATED_RECORD: (Update,),
    OpType.REGISTER_DELETED_BY: (Delete,),
    OpType.REGISTER_DELETED_ENTRY_ACTION: (Delete,),
    OpType.REGISTER_ADD_LINK: (CreateLink,),
    OpType.REGISTER_REMOVE_LINK: (DeleteLink,),
}
_CARRIES_ENTRY = {
    OpType.STORE_RECORD,
    OpType.STORE_ENTRY,
    OpType.REGISTER_UPDATED_CONTENT,
    OpType.REGISTER_UPDATED_RECORD,
}


def op_shape_problem(op: DhtOp) -> str | None:
    """Why ``op`` could never be a valid op of its type, or None."""
    action = op.signed_action.action
    allowed = _OP_ACTIONS.get(op.op_type)
    if allowed is not None and not isinstance(action, allowed):
        return f"{op.op_type.name} cannot carry a {type(action).__name__} action"
    record = Record(op.signed_action, op.entry)
    if op.entry is not None:
        if op.op_type not in _CARRIES_ENTRY:
            return f"{op.op_type.name} carries no entry"
        if record.is_private():
            return "a private entry must never leave its author"
        if action.entry_hash != op.entry.hash():
            return "entry does not match its hash"
    elif op.op_type is OpType.STORE_ENTRY:
        return "STORE_ENTRY needs its entry"
    elif (
        op.op_type is OpType.STORE_RECORD
        and action.entry_hash is not None
        and not record.is_private()
    ):
        return "STORE_RECORD of a public entry needs its entry"
    return None


def publishable_ops(record: Record) -> list[DhtOp]:
    """The ops a public record is published as (private entries stay home; their actions go)."""
    return [DhtOp(op.type, op.signed_action, op.entry) for op in ops_from_record(record)]


def validate_op(op: DhtOp, dna: DnaDef, host: SourceHost) -> Outcome:
    """An authority's verdict on ``op``: system rules (signature, shape, content, and for agent
    activity the link to the previous action), then the DNA's app rules for that op."""
    signed = op.signed_action
    if not signed.signature_valid():
        return Invalid("signature does not verify")
    problem = op_shape_problem(op)
    if problem:
        return Invalid(problem)
    record = Record(signed, op.entry)
    problem = check_content(record, dna, require_entry=False)
    if problem:
        return Invalid(problem)
    action = signed.action
    if isinstance(action, Dna) and action.dna_hash != dna.hash:
        return Invalid("op belongs to another DNA")
    if op.op_type is OpType.REGISTER_AGENT_ACTIVITY and action.prev is not None:
        try:
            prev = host.must_get_action(action.prev)
        except UnresolvedDependency as missing:
            return Unresolved(missing.deps)
        problem = check_link(signed, prev)
        if problem:
            return Invalid(problem)
    try:
        app_entry = decode_app_entry(dna, record)
    except EncodingError as exc:
        return Invalid(f"entry does not fit its type: {exc}")
    app_op = Op(op.op_type, signed, op.entry, app_entry)
    for zome in _zomes_for(op, dna):
        outcome = run_validation(zome.validate, app_op, host)
        if not isinstance(outcome, Valid):
            return outcome
    return countersigned_outcome(app_op, dna, host)


def _zomes_for(op: DhtOp, dna: DnaDef) -> Sequence[IntegrityZome]:
    action = op.signed_action.action
    index: int | None = None
    if isinstance(action, CreateLink):
        index = action.zome_index
    elif action.entry_type is not None and action.entry_type.zome_index != 255:
        index = action.entry_type.zome_index
    if index is None:
        return dna.integrity_zomes
    zome = dna.integrity_zome(index)
    return (zome,) if zome is not None else ()


# -------------------------------------------------------------------------------- receipts


@dataclass(frozen=True, slots=True)
class ValidationReceipt:
    """An authority's signed verdict on one op."""

    op: DhtOpHash
    validator: AgentPubKey
    valid: bool
    when_us: int
    signature: bytes

    def _message(self) -> bytes:
        return encode([bytes(self.op), bytes(self.validator), self.valid, self.when_us])

    @classmethod
    def sign(cls, op: DhtOpHash, keys: KeyPair, *, valid: bool, when_us: int) -> ValidationReceipt:
        unsigned = cls(op, keys.agent, valid, when_us, b"")
        return cls(op, keys.agent, valid, when_us, keys.sign(RECEIPT_CONTEXT, unsigned._message()))

    def signature_valid(self) -> bool:
        return verify(self.validator, RECEIPT_CONTEXT, self._message(), self.signature)

    def to_value(self) -> list[object]:
        return [bytes(self.op), bytes(self.validator), self.valid, self.when_us, self.signature]

    @classmethod
    def from_value(cls, value: object) -> ValidationReceipt:
        if type(value) is not list or len(value) != 5:
            raise EncodingError("a receipt is [op, validator, valid, when_us, signature]")
        op, validator, valid, when_us, signature = value
        if type(valid) is not bool or type(when_us) is not int or type(signature) is not bytes:
            raise EncodingError("malformed receipt")
        if type(op) is not bytes or type(validator) is not bytes:
            raise EncodingError("malformed receipt")
        return cls(DhtOpHash(op), AgentPubKey(validator), valid, when_us, signature)


# ------------------------------------------------------------------------------ agent info


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent's signed announcement in one DNA's network.

    An info with no addresses is the agent's own word that it has **left** (its node shut
    down, or its provisional identity was replaced at enrollment): newer than the one it
    replaces, it spreads like any info until it expires, and its agent is no longer counted a
    member."""

    dna_hash: DnaHash
    agent: AgentPubKey
    peer_id: str
    addrs: tuple[str, ...]
    signed_at_us: int
    expires_at_us: int
    membrane_proof: bytes | None
    signature: bytes = b""

    def _message(self) -> bytes:
        return encode(self._fields())

    @property
    def departed(self) -> bool:
        return not self.addrs

    def _fields(self) -> list[object]:
        return [
            bytes(self.dna_hash),
            bytes(self.agent),
            self.peer_id,
            list(self.addrs),
            self.signed_at_us,
            self.expires_at_us,
            self.membrane_proof,
        ]

    @classmethod
    def sign(
        cls,
        keys: KeyPair,
        *,
        dna_hash: DnaHash,
        peer_id: str,
        addrs: Sequence[str],
        now_us: int,
        ttl_us: int,
        membrane_proof: bytes | None,
    ) -> AgentInfo:
        info = cls(
            dna_hash, keys.agent, peer_id, tuple(addrs), now_us, now_us + ttl_us, membrane_proof
        )
        return replace(info, signature=keys.sign(AGENT_INFO_CONTEXT, info._message()))

    def to_bytes(self) -> bytes:
        return encode([*self._fields(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> AgentInfo:
        value = decode(data, max_size=MAX_AGENT_INFO_BYTES)
        if type(value) is not list or len(value) != 8:
            raise EncodingError("malformed agent info")
        dna_hash, agent, peer_id, addrs, signed_at, expires, proof, signature = value
        if type(dna_hash) is not bytes or type(agent) is not bytes or type(signature) is not bytes:
            raise EncodingError("malformed agent info")
        if type(peer_id) is not str or not 0 < len(peer_id) <= 128:
            raise EncodingError("malformed peer id")
        if (
            type(addrs) is not list
            or len(addrs) > MAX_ADDRS
            or not all(type(a) is str and len(a) <= MAX_ADDR_LENGTH for a in addrs)
        ):
            raise EncodingError("malformed addresses")
        if type(signed_at) is not int or type(expires) is not int:
            raise EncodingError("malformed times")
        if proof is not None and type(proof) is not bytes:
            raise EncodingError("malformed membrane proof")
        return cls(
            DnaHash(dna_hash),
            AgentPubKey(agent),
            peer_id,
            tuple(addrs),
            signed_at,
            expires,
            proof,
            signature,
        )

    def check(self, dna: DnaDef, now_us: int) -> str | None:
        """Why this info must be refused (None: accept it)."""
        if self.dna_hash != dna.hash:
            return "agent info is for another DNA"
        if not verify(self.agent, AGENT_INFO_CONTEXT, self._message(), self.signature):
            return "agent info signature does not verify"
        if self.expires_at_us <= now_us:
            return "agent info has expired"
        if self.signed_at_us > now_us + 60_000_000:
            return "agent info is signed in the future"
        membrane = dna.check_membrane(self.agent, self.membrane_proof)
        if not isinstance(membrane, Valid):
            reason = membrane.reason if isinstance(membrane, Invalid) else "unresolved"
            return f"membrane proof refused: {reason}"
        return None
