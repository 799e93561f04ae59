"""Revocations and transfers reach every member of a DNA's network, not only the revoked key's
authorities.

A revocation (or transfer) is first known to the nodes that validate its record: the authorities
of its ops, a handful of nodes. Every other node would keep accepting the revoked key's later
ops until it happened to ask. So each node passes on what its
:class:`~ioe.dht.revocations.RevocationRegistry` learns, as warrants are passed on:

* **Push.** A record newly judged valid here (held as an authority, fetched, or received from a
  peer) is sent at once to ``gossip_fanout`` random members (``/ioe/<dna>/revocation/1``).
  Each receiver that learns it sends it on the same way, once: an epidemic of
  ``members × fanout`` messages.
* **Anti-entropy.** On each gossip round, with each random member chosen, a node lists the
  proofs it keeps (their record hashes); the partner answers with those the node lacks and
  names those it lacks itself, which the node then sends. A network with no revocations pays one
  request of a few bytes per partner and round.

What travels is a :class:`RevocationProof`, which proves itself: the signed ``key_revocation`` /
``key_transfer`` record (action, entry, its author's signature; the entry carries the revoked
key's certificate and the keyset changes) and the one dependency its validation cites, the
revoked key's own ``AgentValidationPkg`` (``enrolled_at``). A receiver judges it exactly as an
authority judges the record (:func:`~ioe.engine.dht.validate_op` with the DNA's rules) against
that cited action alone (:func:`proof_problem`), then lets the registry re-check the documents
and learn them: it drops what it holds of the key beyond the cutoff and refuses the key as a
member. Anything that does not validate is dropped and never passed on.

A peer that sends an invalid proof is treated as one sending a bogus warrant: the request is
refused (it is told why) and, as no signed evidence shows *it* forged anything, it is not
blocked but rate-limited: its proofs are refused for the rest of the minute. Every peer's proofs
are limited to :data:`PROOFS_PER_PEER_PER_MINUTE` checked ones (those already kept cost a hash
look-up), and every count and size is bounded before anything is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ioe.encoding import Value, decode, encode
from ioe.engine.dht import DhtOp, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Unresolved, UnresolvedDependency
from ioe.engine.ops import OpType
from ioe.engine.records import AgentValidationPkg, Create, Entry, Record, SignedAction
from ioe.engine.validation import SourceHost, decode_app_entry
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey, EntryHash
from ioe.net.interface import MAX_PAYLOAD, NetworkError, PeerId, RequestRefused

if TYPE_CHECKING:
    from ioe.dht.service import DnaNetwork

log = logging.getLogger(__name__)

MAX_PROOF_BYTES = 256 * 1024
"""A revocation entry is at most a certificate (60 KiB), a revocation (4 KiB) and 16 keyset
changes (4 KiB each); a transfer carries two certificates. 256 KiB holds either with room."""
MAX_PROOFS_KEPT = 1024
"""Proofs a node keeps to pass on (each key keeps at most 16 revocations; this bounds memory
and the list sent on each gossip round)."""
MAX_PROOFS_PER_MESSAGE = 8
MAX_MESSAGE_BYTES = MAX_PAYLOAD // 2
PROOFS_PER_PEER_PER_MINUTE = 64
ENROLLED_AT_FIELDS = ("enrolled_at", "old_enrolled_at")
"""The field naming the revoked key's ``AgentValidationPkg`` in a revocation / transfer entry."""


# ---------------------------------------------------------------------------------- proofs


@dataclass(frozen=True, slots=True)
class RevocationProof:
    """A revocation or transfer record and the enrollment action its validation cites."""

    record: Record
    enrolled: SignedAction

    @property
    def hash(self) -> ActionHash:
        """What names a proof in gossip: its record's action hash."""
        return self.record.action_hash

    def to_bytes(self) -> bytes:
        op = DhtOp(OpType.STORE_RECORD, self.record.signed_action, self.record.entry)
        return encode([op.to_bytes(), self.enrolled.to_bytes()])

    @classmethod
    def from_bytes(cls, data: bytes) -> RevocationProof:
        """Decode (size first) and check the shape: a record with an entry, created by a
        ``Create``, and an ``AgentValidationPkg``. Not its validity: :func:`proof_problem`."""
        if type(data) is not bytes:
            raise EncodingError("a revocation proof is a byte string")
        if len(data) > MAX_PROOF_BYTES:
            raise EncodingError(f"a revocation proof is at most {MAX_PROOF_BYTES} bytes")
        value = decode(data, max_size=MAX_PROOF_BYTES)
        if type(value) is not list or len(value) != 2 or not all(type(v) is bytes for v in value):
            raise EncodingError("a revocation proof is [record op, enrollment action]")
        op = DhtOp.from_bytes(value[0])
        if op.op_type is not OpType.STORE_RECORD or op.entry is None:
            raise EncodingError("a revocation proof carries a whole record (action and entry)")
        if not isinstance(op.signed_action.action, Create):
            raise EncodingError("a revocation proof's record is a Create")
        enrolled = SignedAction.from_bytes(value[1])
        if not isinstance(enrolled.action, AgentValidationPkg):
            raise EncodingError("a revocation proof cites an AgentValidationPkg")
        return cls(Record(op.signed_action, op.entry), enrolled)


class _Cited:
    """The only source a proof is judged against: the one action it carries (a proof that
    needs anything else is not self-proving, and is refused)."""

    __slots__ = ("_enrolled",)

    def __init__(self, enrolled: SignedAction) -> None:
        self._enrolled = enrolled

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        return self._enrolled if action_hash == self._enrolled.hash else None

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        return None

    def get_record(self, action_hash: ActionHash) -> Record | None:
        return Record(self._enrolled) if action_hash == self._enrolled.hash else None

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        return None


def proof_problem(
    proof: RevocationProof, dna: DnaDef, is_document: Callable[[Record], bool]
) -> str | None:
    """Why ``proof`` does not prove a revocation or transfer in ``dna``, or None. The record is
    judged as an authority judges it (system rules, then the DNA's own rules) with the cited
    enrollment action as its only dependency; that action must carry its author's signature, as
    every action an authority holds does."""
    if not is_document(proof.record):
        return "not a key_revocation or key_transfer record"
    if not proof.enrolled.signature_valid():
        return "the cited enrollment action is not signed by its author"
    record = proof.record
    op = DhtOp(OpType.STORE_RECORD, record.signed_action, record.entry)
    outcome = validate_op(op, dna, SourceHost(dna, _Cited(proof.enrolled)))
    if isinstance(outcome, Invalid):
        return outcome.reason
    if isinstance(outcome, Unresolved):
        return "its validation needs more than the enrollment action it carries"
    return None


# ---------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class RevocationMessage:
    """One request or answer of ``/ioe/<dna>/revocation/1``.

    ``have``: the record hashes of the sender's proofs (None: the sender does not ask for what
    it lacks — a push); ``give``: proofs (wire bytes, decoded one by one later); ``want``: record
    hashes the sender lacks (in an answer to ``have``)."""

    have: tuple[ActionHash, ...] | None = None
    give: tuple[bytes, ...] = ()
    want: tuple[ActionHash, ...] = ()

    def to_bytes(self) -> bytes:
        body: dict[str, Value] = {}  # empty fields left out: a round with nothing costs bytes
        if self.give:
            body["give"] = list(self.give)
        if self.want:
            body["want"] = [bytes(h) for h in self.want]
        if self.have is not None:
            body["have"] = [bytes(h) for h in self.have]
        return encode(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> RevocationMessage:
        """Decode untrusted bytes: sizes and counts first, then each field's type."""
        if type(data) is not bytes or len(data) > MAX_MESSAGE_BYTES:
            raise EncodingError(f"a revocation message is at most {MAX_MESSAGE_BYTES} bytes")
        value = decode(data, max_size=MAX_MESSAGE_BYTES)
        if type(value) is not dict or not set(value) <= {"have", "give", "want"}:
            raise EncodingError("a revocation message is {have?, give?, want?}")
        have = value.get("have")
        give = value.get("give", [])
        if type(give) is not list or len(give) > MAX_PROOFS_PER_MESSAGE:
            raise EncodingError(f"give: at most {MAX_PROOFS_PER_MESSAGE} proofs")
        if not all(type(g) is bytes and len(g) <= MAX_PROOF_BYTES for g in give):
            raise EncodingError("give: proofs are byte strings")
        return cls(
            None if have is None else _hashes(have, MAX_PROOFS_KEPT, "have"),
            tuple(give),
            _hashes(value.get("want", []), MAX_PROOFS_PER_MESSAGE, "want"),
        )


def _hashes(raw: Value, limit: int, what: str) -> tuple[ActionHash, ...]:
    if type(raw) is not list or len(raw) > limit:
        raise EncodingError(f"{what}: a list of at most {limit} action hashes")
    if not all(type(h) is bytes for h in raw):
        raise EncodingError(f"{what}: action hashes are byte strings")
    return tuple(ActionHash(h) for h in raw if type(h) is bytes)


# ---------------------------------------------------------------------------------- gossip


@dataclass
class RevocationGossipStats:
    pushed: int = 0  # proofs sent on (push and anti-entropy)
    learned: int = 0  # proofs received, valid and new here
    refused: int = 0  # proofs received that do not validate (or do not decode)
    rate_limited: int = 0  # proofs not checked: their peer's budget was spent
    exchanges: int = 0  # anti-entropy requests sent


class RevocationGossip:
    """Spreads one DNA network's revocation and transfer proofs (see the module docstring).

    Wired into :class:`~ioe.dht.service.DnaNetwork`: its registry's
    :attr:`~ioe.dht.revocations.RevocationRegistry.on_record` is :meth:`offer`, its protocol
    handler :meth:`handle`, and each gossip round calls :meth:`exchange` with the partners it
    chose. ``spawn`` runs a background task the DNA network cancels when it closes."""

    def __init__(self, dht: DnaNetwork, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.dht = dht
        self._spawn = spawn
        self.protocol = f"/ioe/{dht.dna.hash.to_text()}/revocation/1"
        self.stats = RevocationGossipStats()
        self._setting = f"revocation_proofs:{dht.dna.hash.to_text()}"
        self._proofs: dict[ActionHash, bytes] = {}
        self._window: dict[PeerId, tuple[float, int]] = {}
        self._rng = random.Random()
        self._load()
        dht.revocations.on_record = self.offer

    def _load(self) -> None:
        stored = self.dht.db.get_setting(self._setting)
        for item in stored if isinstance(stored, list) else []:
            if type(item) is not bytes:
                continue
            try:
                proof = RevocationProof.from_bytes(item)
            except EncodingError:
                continue
            self._proofs[proof.hash] = item

    def proofs(self) -> list[RevocationProof]:
        """The proofs this node keeps and passes on."""
        return [RevocationProof.from_bytes(data) for data in self._proofs.values()]

    def knows(self, record_hash: ActionHash) -> bool:
        return record_hash in self._proofs

    # --------------------------------------------------------------------------- learning

    def offer(self, record: Record) -> None:
        """A revocation or transfer record was judged valid here (its documents are learned):
        keep it with the enrollment action it cites, and pass it on if it is new."""
        if record.action_hash in self._proofs:
            return
        try:
            document = decode_app_entry(self.dht.dna, record)
            cited = next(
                getattr(document, name) for name in ENROLLED_AT_FIELDS if hasattr(document, name)
            )
            enrolled = self.dht.host.must_get_action(cited)
        except (EncodingError, StopIteration, UnresolvedDependency) as exc:
            log.debug("cannot pass on revocation %s: %s", record.action_hash.short(), exc)
            return
        proof = RevocationProof(record, enrolled)
        problem = proof_problem(proof, self.dht.dna, self.dht.revocations.is_document)
        if problem is not None:  # never pass on what others could not confirm alone
            log.info("not passing on revocation %s: %s", record.action_hash.short(), problem)
            return
        self._keep(proof.hash, proof.to_bytes())

    def take(self, data: bytes) -> str | None:
        """Judge a proof from the network and learn it; why it was refused, or None (learned,
        or known already). Raises nothing for any input."""
        try:
            proof = RevocationProof.from_bytes(data)
        except EncodingError as exc:
            self.stats.refused += 1
            return f"malformed revocation proof: {exc}"
        return None if proof.hash in self._proofs else self._judge(proof, data)

    def _judge(self, proof: RevocationProof, data: bytes) -> str | None:
        problem = proof_problem(proof, self.dht.dna, self.dht.revocations.is_document)
        if problem is None:
            try:
                document = decode_app_entry(self.dht.dna, proof.record)
            except EncodingError as exc:
                problem = f"entry does not fit its type: {exc}"
            else:
                if self.dht.revocations.learn_document(document) is None:
                    problem = "its documents do not verify"
        if problem is not None:
            self.stats.refused += 1
            log.info("refused revocation proof %s: %s", proof.hash.short(), problem)
            return f"invalid revocation proof {proof.hash.short()}: {problem}"
        self.stats.learned += 1
        self._keep(proof.hash, data)
        return None

    def _keep(self, record_hash: ActionHash, data: bytes) -> None:
        if len(self._proofs) >= MAX_PROOFS_KEPT:
            log.warning("keeping no more revocation proofs (%d kept)", MAX_PROOFS_KEPT)
            return
        self._proofs[record_hash] = data
        self.dht.db.put_setting(self._setting, list(self._proofs.values()))
        peers = self._peers()
        chosen = self._rng.sample(peers, min(self.dht.config.gossip_fanout, len(peers)))
        message = RevocationMessage(give=(data,)).to_bytes()
        for peer in chosen:
            self._spawn(self._send(peer, message, 1))

    # ------------------------------------------------------------------------------ network

    def _member_peer_set(self) -> set[PeerId]:
        return {PeerId(info.peer_id) for info in self.dht.members().values()}

    def _peers(self) -> list[PeerId]:
        """The other member nodes, blocked ones left out."""
        others = self._member_peer_set() - {self.dht.net.peer_id}
        return sorted(p for p in others if not self.dht.blocked_peer(p))

    async def _send(self, peer: PeerId, message: bytes, proofs: int) -> None:
        try:
            await self.dht.net.request(
                peer, self.protocol, message, timeout=self.dht.config.request_timeout_s
            )
            self.stats.pushed += proofs
        except NetworkError as exc:
            log.debug("revocation proofs to %s: %s", peer, exc)

    async def exchange(self, peer: PeerId) -> None:
        """One anti-entropy exchange with ``peer``: send what it lacks, take what it gives."""
        self.stats.exchanges += 1
        request = RevocationMessage(have=tuple(self._proofs)).to_bytes()
        try:
            raw = await self.dht.net.request(
                peer, self.protocol, request, timeout=self.dht.config.request_timeout_s
            )
            reply = RevocationMessage.from_bytes(raw)
        except (NetworkError, EncodingError) as exc:
            log.debug("revocation exchange with %s failed: %s", peer, exc)
            return
        problems = self._take_from(peer, reply.give)
        if problems:
            log.info("%s gave invalid revocation proofs: %s", peer, "; ".join(problems))
        wanted = self._missing_at(set(reply.want), wanted_only=True)
        if wanted:
            await self._send(peer, RevocationMessage(give=tuple(wanted)).to_bytes(), len(wanted))

    async def handle(self, peer: PeerId, payload: bytes) -> bytes:
        """``/ioe/<dna>/revocation/1``: take the proofs given, answer a ``have`` with what the
        asker lacks and what this node lacks. Refused for non-members and blocked peers, and
        when a proof given does not validate (after the valid ones are taken)."""
        if self.dht.blocked_peer(peer):
            raise RequestRefused("blocked: this node refuses the peer of a warranted agent")
        if peer not in self._member_peer_set():
            raise RequestRefused("not a member of this DNA's network")
        try:
            message = RevocationMessage.from_bytes(payload)
        except EncodingError as exc:
            self.stats.refused += 1
            raise RequestRefused(f"malformed revocation message: {exc}") from exc
        problems = self._take_from(peer, message.give)
        if problems:
            raise RequestRefused("; ".join(problems))
        if message.have is None:
            return RevocationMessage().to_bytes()
        theirs = set(message.have)
        want = [h for h in message.have if h not in self._proofs][:MAX_PROOFS_PER_MESSAGE]
        give = self._missing_at(theirs, wanted_only=False)
        self.stats.pushed += len(give)
        return RevocationMessage(give=tuple(give), want=tuple(want)).to_bytes()

    def _take_from(self, peer: PeerId, items: tuple[bytes, ...]) -> list[str]:
        """Take proofs from ``peer`` within its budget; the problems of those refused."""
        problems: list[str] = []
        for data in items:
            try:
                proof = RevocationProof.from_bytes(data)
            except EncodingError as exc:
                self.stats.refused += 1
                problems.append(f"malformed revocation proof: {exc}")
                self._penalize(peer)
                continue
            if proof.hash in self._proofs:
                continue  # known: costs a look-up, not a check
            if not self._budget(peer):
                self.stats.rate_limited += 1
                problems.append("too many revocation proofs from this peer; try later")
                break
            problem = self._judge(proof, data)
            if problem is not None:
                problems.append(problem)
                self._penalize(peer)
        return problems

    def _missing_at(self, known: set[ActionHash], *, wanted_only: bool) -> list[bytes]:
        """Proofs kept here that are (``wanted_only``: named in ``known``; else: not in
        ``known``), bounded in count and size."""
        out: list[bytes] = []
        size = 0
        for record_hash, data in self._proofs.items():
            if (record_hash in known) != wanted_only or len(out) >= MAX_PROOFS_PER_MESSAGE:
                continue
            if size + len(data) > MAX_MESSAGE_BYTES - 1024:
                break
            out.append(data)
            size += len(data)
        return out

    def _budget(self, peer: PeerId) -> bool:
        """At most ``PROOFS_PER_PEER_PER_MINUTE`` proofs checked for one peer each minute."""
        now = asyncio.get_running_loop().time()
        start, count = self._window.get(peer, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= PROOFS_PER_PEER_PER_MINUTE:
            return False
        self._window[peer] = (start, count + 1)
        return True

    def _penalize(self, peer: PeerId) -> None:
        """A peer that sent an invalid proof gets no more checked this minute."""
        start, _ = self._window.get(peer, (asyncio.get_running_loop().time(), 0))
        self._window[peer] = (start, PROOFS_PER_PEER_PER_MINUTE)
