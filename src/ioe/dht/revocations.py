"""Which agent keys this node knows to be revoked, in one DNA's network, and what follows.

Validation is pure and sees only what a record cites: an action signed by a revoked key does not
cite its revocation, so no integrity rule can refuse it. The DHT layer does instead: each node
keeps a :class:`RevocationRegistry` per DNA, fed by the revocations it holds or fetches
(``key_revocation`` entries of the ``ownership`` zome, and the ``revocation`` links from a
revoked key, whose basis is the key itself: the revoked key's agent-activity authorities are
exactly the nodes that hold them). The registry then answers, through
:func:`ioe.identity.revocation.key_state`, for every op, get and agent info the node accepts:

* an action of a revoked key beyond its cutoff is refused (not held, not served, not returned),
  and what was held before the revocation arrived is dropped;
* the revoked key is no longer a member: its agent infos (and any info whose membrane proof is
  the certificate of a revoked device) are refused, so its remote calls and countersigning
  sessions are refused too.

Refusals are not warranted: a warrant must be checkable by pure validation, which a revocation
is not part of. Revocations are verified here before they count (the documents, by
:meth:`KeyRevocationEntry.checked`, and the op that carried them, by the DNA's own rules).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from ioe.encoding import Value
from ioe.engine.dht import AgentInfo, DhtOp, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import UnresolvedDependency, Valid
from ioe.engine.ops import OpType
from ioe.engine.records import AppEntryType, CreateLink, Record, SignedAction
from ioe.engine.validation import SourceHost, decode_app_entry
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.revocation import KeyRevocation, KeyState, key_state
from ioe.store.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

OWNERSHIP_ZOME = "ownership"
REVOCATION_ENTRY = "key_revocation"
REVOCATION_LINK = "revocation"
"""Names the ``ownership`` zome declares (not imported: the DHT layer sits below the zomes)."""
MAX_REVOCATIONS_PER_AGENT = 16
"""Revocations kept per key: the earliest cutoff wins, so more add nothing but memory."""


class _Checked(Protocol):
    revocation: KeyRevocation


class RevocationDocument(Protocol):
    """What a revocation entry offers (``KeyRevocationEntry``)."""

    def checked(self) -> _Checked | str: ...


class RevocationRegistry:
    """The verified revocations known in one DNA, persisted in the node's database."""

    def __init__(self, db: SqliteDatabase, dna: DnaDef) -> None:
        self.db = db
        self.dna = dna
        self._setting = f"revocations:{dna.hash.to_text()}"
        self._by_agent: dict[AgentPubKey, list[KeyRevocation]] = {}
        self._entry_type: AppEntryType | None = None
        self._link: tuple[int, int] | None = None
        for index, zome in enumerate(dna.integrity_zomes):
            if zome.name != OWNERSHIP_ZOME:
                continue
            for entry_index, entry_def in enumerate(zome.entry_defs):
                if entry_def.name == REVOCATION_ENTRY:
                    self._entry_type = AppEntryType(index, entry_index)
            link_index = zome.link_index(REVOCATION_LINK)
            if link_index is not None:
                self._link = (index, link_index)
        self._load()

    def _load(self) -> None:
        stored = self.db.get_setting(self._setting)
        for item in stored if isinstance(stored, list) else []:
            try:
                revocation = KeyRevocation.from_bytes(item)
            except (EncodingError, TypeError):
                continue
            self._by_agent.setdefault(revocation.revoked, []).append(revocation)

    # ---------------------------------------------------------------------------- queries

    def of(self, agent: AgentPubKey) -> list[KeyRevocation]:
        """The known revocations of ``agent``, oldest first."""
        return sorted(self._by_agent.get(agent, ()), key=lambda r: (r.issued_us, bytes(r.id)))

    def state(self, agent: AgentPubKey) -> KeyState:
        return key_state(agent, self._by_agent.get(agent, ()))

    def revoked(self, agent: AgentPubKey) -> bool:
        return agent in self._by_agent

    def _describe(self, agent: AgentPubKey) -> str:
        state = self.state(agent)
        first = min(self._by_agent[agent], key=lambda r: (r.last_valid_seq, r.issued_us))
        reason = f": {first.reason}" if first.reason else ""
        return (
            f"its actions after sequence number {state.last_valid_seq} are void, "
            f"revocation {first.id.short()}{reason}"
        )

    def refusal(self, signed: SignedAction) -> str | None:
        """Why ``signed`` does not stand under the known revocations of its author, or None."""
        action = signed.action
        if action.author not in self._by_agent:
            return None
        if self.state(action.author).allows(action.seq, signed.hash):
            return None
        return (
            f"signed by {action.author.to_text()} after its revocation "
            f"({self._describe(action.author)})"
        )

    def member_refusal(self, agent: AgentPubKey) -> str | None:
        """Why ``agent`` is no longer a member (its key is revoked), or None."""
        if agent not in self._by_agent:
            return None
        return f"the key {agent.to_text()} is revoked ({self._describe(agent)})"

    def info_refusal(self, info: AgentInfo) -> str | None:
        """Why ``info`` is refused: its agent is revoked, or its membrane proof is the
        certificate of a revoked device."""
        problem = self.member_refusal(info.agent)
        if problem or info.membrane_proof is None or not self._by_agent:
            return problem
        try:
            device = EnrollmentCertificate.from_bytes(info.membrane_proof).device
        except EncodingError:
            return None  # not a certificate: the membrane rule judges that
        problem = self.member_refusal(device)
        return f"its certificate's device: {problem}" if problem else None

    def filter(self, ops: Sequence[DhtOp]) -> list[DhtOp]:
        """``ops`` without those a revocation voids."""
        if not self._by_agent:
            return list(ops)
        return [op for op in ops if self.refusal(op.signed_action) is None]

    # ---------------------------------------------------------------------------- learning

    def learn(self, revocation: KeyRevocation) -> bool:
        """Count a *verified* revocation; True if it is new. Drops what this node holds of
        the revoked key beyond the cutoff."""
        known = self._by_agent.setdefault(revocation.revoked, [])
        if any(r.id == revocation.id for r in known) or len(known) >= MAX_REVOCATIONS_PER_AGENT:
            return False
        known.append(revocation)
        everything: list[Value] = [r.to_bytes() for rs in self._by_agent.values() for r in rs]
        with self.db.transaction() as conn:
            self.db.put_setting(self._setting, everything)
            state = self.state(revocation.revoked)
            assert state.last_valid_seq is not None
            conn.execute(
                "DELETE FROM dht_ops WHERE dna_hash = ? AND author = ? AND "
                "(seq > ? OR (seq = ? AND ? IS NOT NULL AND action_hash != ?))",
                (
                    bytes(self.dna.hash),
                    bytes(revocation.revoked),
                    state.last_valid_seq,
                    state.last_valid_seq,
                    bytes(state.head) if state.head is not None else None,
                    bytes(state.head) if state.head is not None else b"",
                ),
            )
        log.warning(
            "learned the revocation of %s: %s",
            revocation.revoked.short(),
            self._describe(revocation.revoked),
        )
        return True

    def learn_document(self, document: object) -> KeyRevocation | None:
        """Learn from a revocation entry whose op was judged valid (re-checking its
        documents); the revocation, or None if ``document`` is not one."""
        checker = getattr(document, "checked", None)
        if checker is None:
            return None
        checked = checker()
        if isinstance(checked, str):
            return None
        revocation: KeyRevocation = checked.revocation
        self.learn(revocation)
        return revocation

    def observe(self, op: DhtOp, host: SourceHost) -> KeyRevocation | None:
        """Learn from an op judged valid: a revocation entry, or a revocation link whose
        target record is here and valid."""
        action = op.signed_action.action
        record: Record | None = None
        if self._entry_type is None:
            return None
        if op.entry is not None and action.entry_type == self._entry_type:
            record = Record(op.signed_action, op.entry)
        elif (
            op.op_type is OpType.REGISTER_ADD_LINK
            and isinstance(action, CreateLink)
            and (action.zome_index, action.link_type) == self._link
            and isinstance(action.target, ActionHash)
        ):
            record = self._valid_record(action.target, host)
        if record is None or record.action.entry_type != self._entry_type:
            return None
        try:
            document = decode_app_entry(self.dna, record)
        except EncodingError:
            return None
        return self.learn_document(document)

    def consider(self, record: Record, host: SourceHost) -> KeyRevocation | None:
        """Learn from a record fetched from the network, if it is a valid revocation entry."""
        if self._entry_type is None or record.action.entry_type != self._entry_type:
            return None
        op = DhtOp(OpType.STORE_RECORD, record.signed_action, record.entry)
        if not isinstance(validate_op(op, self.dna, host), Valid):
            return None
        return self.observe(op, host)

    def _valid_record(self, action_hash: ActionHash, host: SourceHost) -> Record | None:
        try:
            record = host.must_get_valid_record(action_hash)
        except UnresolvedDependency:  # not here (yet)
            return None
        op = DhtOp(OpType.STORE_RECORD, record.signed_action, record.entry)
        return record if isinstance(validate_op(op, self.dna, host), Valid) else None
