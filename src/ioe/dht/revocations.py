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

Transfers (``key_transfer`` entries and ``transfer`` links) count the same way: a transfer's
cutoff voids the old device key's actions after its ``old_last_seq`` and names the new key as its
replacement, so :meth:`RevocationRegistry.history` links old and new keys.

Refusals are not warranted: a warrant must be checkable by pure validation, which a revocation
is not part of. Revocations are verified here before they count (the documents, by
:meth:`KeyRevocationEntry.checked`, and the op that carried them, by the DNA's own rules).

A registry does not spread what it learns by itself: :attr:`RevocationRegistry.on_record` tells
:mod:`ioe.dht.revocation_gossip` of each revocation or transfer *record* judged valid here, and
that module passes it on to every member (the revoked key's authorities are only a few nodes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
from ioe.identity.revocation import KeyRevocation, KeyState, Revokes, key_history, key_state
from ioe.identity.transfer import TransferCertificate
from ioe.store.dht import SqliteDhtStore
from ioe.store.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

OWNERSHIP_ZOME = "ownership"
REVOCATION_ENTRY = "key_revocation"
REVOCATION_LINK = "revocation"
TRANSFER_ENTRY = "key_transfer"
TRANSFER_LINK = "transfer"
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
        self.held = SqliteDhtStore(db, dna.hash)
        self._setting = f"revocations:{dna.hash.to_text()}"
        self._transfer_setting = f"transfers:{dna.hash.to_text()}"
        self._by_agent: dict[AgentPubKey, list[KeyRevocation]] = {}
        self._transfers: dict[AgentPubKey, list[TransferCertificate]] = {}
        self._entry_type: AppEntryType | None = None
        self._transfer_type: AppEntryType | None = None
        self._link: tuple[int, int] | None = None
        self._transfer_link: tuple[int, int] | None = None
        self.on_record: Callable[[Record], None] | None = None
        """Told of each revocation or transfer record judged valid here whose documents this
        registry took (new or not): what :mod:`ioe.dht.revocation_gossip` passes on."""
        for index, zome in enumerate(dna.integrity_zomes):
            if zome.name != OWNERSHIP_ZOME:
                continue
            for entry_index, entry_def in enumerate(zome.entry_defs):
                if entry_def.name == REVOCATION_ENTRY:
                    self._entry_type = AppEntryType(index, entry_index)
                if entry_def.name == TRANSFER_ENTRY:
                    self._transfer_type = AppEntryType(index, entry_index)
            link_index = zome.link_index(REVOCATION_LINK)
            if link_index is not None:
                self._link = (index, link_index)
            link_index = zome.link_index(TRANSFER_LINK)
            if link_index is not None:
                self._transfer_link = (index, link_index)
        self._load()

    def _load(self) -> None:
        stored = self.db.get_setting(self._setting)
        for item in stored if isinstance(stored, list) else []:
            try:
                revocation = KeyRevocation.from_bytes(item)
            except (EncodingError, TypeError):
                continue
            self._by_agent.setdefault(revocation.revoked, []).append(revocation)
        stored = self.db.get_setting(self._transfer_setting)
        for item in stored if isinstance(stored, list) else []:
            try:
                transfer = TransferCertificate.from_bytes(item)
            except (EncodingError, TypeError):
                continue
            self._transfers.setdefault(transfer.old_device, []).append(transfer)

    # ---------------------------------------------------------------------------- queries

    def of(self, agent: AgentPubKey) -> list[KeyRevocation]:
        """The known revocations of ``agent``, oldest first."""
        return sorted(self._by_agent.get(agent, ()), key=lambda r: (r.issued_us, bytes(r.id)))

    def transfers_of(self, agent: AgentPubKey) -> list[TransferCertificate]:
        """The known transfers of old key ``agent``, oldest first."""
        return sorted(self._transfers.get(agent, ()), key=lambda t: (t.issued_us, bytes(t.id)))

    def _cuts(self, agent: AgentPubKey) -> list[Revokes]:
        return [*self._by_agent.get(agent, ()), *self._transfers.get(agent, ())]

    def state(self, agent: AgentPubKey) -> KeyState:
        return key_state(agent, self._cuts(agent))

    def history(self, agent: AgentPubKey) -> tuple[AgentPubKey, ...]:
        """``agent`` and each key that replaced it in turn, as far as known here."""
        everything: list[Revokes] = [r for rs in self._by_agent.values() for r in rs]
        everything += [t for ts in self._transfers.values() for t in ts]
        return key_history(agent, everything)

    def revoked(self, agent: AgentPubKey) -> bool:
        return agent in self._by_agent or agent in self._transfers

    def _any(self) -> bool:
        return bool(self._by_agent or self._transfers)

    def _describe(self, agent: AgentPubKey) -> str:
        state = self.state(agent)
        cuts: list[tuple[int, int, str]] = []
        for r in self._by_agent.get(agent, ()):
            reason = f": {r.reason}" if r.reason else ""
            cuts.append((r.last_valid_seq, r.issued_us, f"revocation {r.id.short()}{reason}"))
        for t in self._transfers.get(agent, ()):
            text = f"transfer {t.id.short()}: the device is now {t.new_device.to_text()}"
            cuts.append((t.old_last_seq, t.issued_us, text))
        first = min(cuts)[2]
        return f"its actions after sequence number {state.last_valid_seq} are void, {first}"

    def refusal(self, signed: SignedAction) -> str | None:
        """Why ``signed`` does not stand under the known revocations of its author, or None."""
        action = signed.action
        if not self.revoked(action.author):
            return None
        if self.state(action.author).allows(action.seq, signed.hash):
            return None
        return (
            f"signed by {action.author.to_text()} after its revocation "
            f"({self._describe(action.author)})"
        )

    def member_refusal(self, agent: AgentPubKey) -> str | None:
        """Why ``agent`` is no longer a member (its key is revoked), or None."""
        if not self.revoked(agent):
            return None
        return f"the key {agent.to_text()} is revoked ({self._describe(agent)})"

    def info_refusal(self, info: AgentInfo) -> str | None:
        """Why ``info`` is refused: its agent is revoked, or its membrane proof is the
        certificate of a revoked device."""
        problem = self.member_refusal(info.agent)
        if problem or info.membrane_proof is None or not self._any():
            return problem
        try:
            device = EnrollmentCertificate.from_bytes(info.membrane_proof).device
        except EncodingError:
            return None  # not a certificate: the membrane rule judges that
        problem = self.member_refusal(device)
        return f"its certificate's device: {problem}" if problem else None

    def filter(self, ops: Sequence[DhtOp]) -> list[DhtOp]:
        """``ops`` without those a revocation voids."""
        if not self._any():
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
        self._store(self._setting, everything, revocation.revoked)
        log.warning(
            "learned the revocation of %s: %s",
            revocation.revoked.short(),
            self._describe(revocation.revoked),
        )
        return True

    def learn_transfer(self, transfer: TransferCertificate) -> bool:
        """Count a *verified* transfer (:func:`~ioe.identity.transfer.transfer_problem`
        accepted it); True if it is new. Drops what this node holds of the old key beyond it."""
        known = self._transfers.setdefault(transfer.old_device, [])
        if any(t.id == transfer.id for t in known) or len(known) >= MAX_REVOCATIONS_PER_AGENT:
            return False
        known.append(transfer)
        everything: list[Value] = [t.to_bytes() for ts in self._transfers.values() for t in ts]
        self._store(self._transfer_setting, everything, transfer.old_device)
        log.warning(
            "learned the transfer of %s: %s",
            transfer.old_device.short(),
            self._describe(transfer.old_device),
        )
        return True

    def _store(self, setting: str, everything: list[Value], agent: AgentPubKey) -> None:
        """Persist ``setting`` and drop the held ops of ``agent`` beyond its cutoff, at once."""
        with self.db.transaction():
            self.db.put_setting(setting, everything)
            state = self.state(agent)
            assert state.last_valid_seq is not None
            self.held.drop_ops_beyond(agent, state.last_valid_seq, state.head)

    def learn_document(self, document: object) -> KeyRevocation | TransferCertificate | None:
        """Learn from a revocation or transfer entry whose op was judged valid (re-checking its
        documents); the revocation or transfer, or None if ``document`` is neither."""
        checker = getattr(document, "checked", None)
        if checker is None:
            return None
        checked = checker()
        if isinstance(checked, str):
            return None
        transfer = getattr(checked, "transfer", None)
        if isinstance(transfer, TransferCertificate):
            self.learn_transfer(transfer)
            return transfer
        revocation = getattr(checked, "revocation", None)
        if not isinstance(revocation, KeyRevocation):
            return None
        self.learn(revocation)
        return revocation

    def observe(self, op: DhtOp, host: SourceHost) -> KeyRevocation | TransferCertificate | None:
        """Learn from an op judged valid: a revocation or transfer entry, or a revocation or
        transfer link whose target record is here and valid."""
        action = op.signed_action.action
        record: Record | None = None
        types = self._document_types()
        if not types:
            return None
        if op.entry is not None and action.entry_type in types:
            record = Record(op.signed_action, op.entry)
        elif (
            op.op_type is OpType.REGISTER_ADD_LINK
            and isinstance(action, CreateLink)
            and (action.zome_index, action.link_type) in (self._link, self._transfer_link)
            and isinstance(action.target, ActionHash)
        ):
            record = self._valid_record(action.target, host)
        if record is None or record.action.entry_type not in types:
            return None
        try:
            document = decode_app_entry(self.dna, record)
        except EncodingError:
            return None
        learned = self.learn_document(document)
        if learned is not None and self.on_record is not None:
            self.on_record(record)
        return learned

    def _document_types(self) -> tuple[AppEntryType, ...]:
        return tuple(t for t in (self._entry_type, self._transfer_type) if t is not None)

    def is_document(self, record: Record) -> bool:
        """Whether ``record`` is a ``key_revocation`` or ``key_transfer`` entry of this DNA
        (by its entry type; whether it is *valid* is the DNA's rules' to say)."""
        types = self._document_types()
        return bool(types) and record.action.entry_type in types

    def consider(
        self, record: Record, host: SourceHost
    ) -> KeyRevocation | TransferCertificate | None:
        """Learn from a record fetched from the network, if it is a valid revocation or
        transfer entry."""
        if record.action.entry_type not in self._document_types():
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
