"""Recovering an owner on a new machine: its chains and its devices, back from the network.

``ioe recover`` restores the keys from the 24 words but not the owner's history, which lived on
the lost machine and, in public, on the DHT. Writing a new genesis would fork the owner's own
chain (two actions at seq 0), which honest authorities warrant. So a recovered data directory is
marked (:data:`ioe.conductor.RESTORE_SETTING`) and writes nothing until :func:`restore` has:

1. fetched each local agent's chain from its agent-activity authorities (every answer, merged, so
   a fork cannot hide behind one side of it), and each public record's entry from its record's
   authorities;
2. verified it as a whole before writing a byte (:func:`check_restored_chain`): signatures, one
   author, no two actions at one seq, no gap from seq 0 to the head, hash links, content, and the
   DNA's rules. Private entries never leave their author: those records come back as bare
   actions and are remembered as *forgotten* (``SqliteChainStore.append_restored``);
3. appended it in one transaction (a crash leaves the old state, and restore runs again; a chain
   already partly here must be a prefix of the network's);
4. found the owner's enrolled devices again (:func:`rescan_devices`, the gap rule of
   :mod:`ioe.identity.rescan`) and cleared the mark, in one transaction.

When no chain is found within the time bound the restore fails, unless the caller allows a fresh
start (``ioe node run --fresh``), which then writes a new genesis.

Errors: :class:`RestoreError` (the network's copy was refused: forged, forked, broken, or it
disagrees with what is already here) and its subclass :class:`ChainNotFound` (nothing found).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ioe.conductor import RESTORE_SETTING, Conductor, owner_membership_for
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell, Scratch
from ioe.engine.dht import DhtOp, validate_op
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Unresolved
from ioe.engine.ops import OpType
from ioe.engine.records import AgentValidationPkg, Record, SignedAction
from ioe.engine.validation import SourceHost, check_record, validate_app
from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey, DnaHash
from ioe.identity.certificate import EnrollmentCertificate, certificate_problem
from ioe.identity.rescan import GAP_LIMIT, Rescan, next_device_index
from ioe.identity.service.enrollment import DEVICES_SETTING, NEXT_INDEX_SETTING
from ioe.identity.service.host import IDENTITY_HOST

log = logging.getLogger(__name__)

DEFAULT_RESTORE_TIMEOUT_S = 60.0
"""How long ``ioe node run`` looks for a recovered owner's chain before giving up."""
POLL_S = 1.0
MAX_RESTORED_RECORDS = 100_000
"""A bound on what one restore accepts (a peer cannot make it fetch without end)."""


class RestoreError(IoEError):
    """The network's copy of a chain was refused, or a restore could not finish."""


class ChainNotFound(RestoreError):
    """No authority answered with the chain within the time bound."""


class ForkFound(RestoreError):
    """The network holds two signed actions of the agent at one seq: no side is restored."""


class MissingDeps(RestoreError):
    """A record cites what is not here yet (fetched, then verified again)."""

    def __init__(self, message: str, deps: Sequence[object]) -> None:
        super().__init__(message)
        self.deps = list(deps)


@dataclass(slots=True)
class RestoreReport:
    """What a restore did: records restored per agent, devices found, whether it started fresh."""

    chains: dict[str, int] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    next_device_index: int = 1
    fresh: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "chains": dict(self.chains),
            "devices": list(self.devices),
            "next_device_index": self.next_device_index,
            "fresh": self.fresh,
        }


def restore_pending(conductor: Conductor) -> bool:
    return bool(conductor.db.get_setting(RESTORE_SETTING))


# ------------------------------------------------------------------------------ verification


def assemble_chain(agent: AgentPubKey, actions: Sequence[SignedAction]) -> list[SignedAction]:
    """``agent``'s chain from seq 0 out of the actions authorities returned (any order, repeats
    allowed). Refuses a foreign author, a bad signature, a fork (two actions at one seq) and a
    gap; hash links are checked with the records (:func:`check_restored_chain`)."""
    by_seq: dict[int, SignedAction] = {}
    for signed in actions:
        action = signed.action
        if action.author != agent:
            raise RestoreError(f"an action of {action.author.short()} among {agent.short()}'s")
        if not signed.signature_valid():
            raise RestoreError(f"the action at seq {action.seq} is not signed by its author")
        known = by_seq.setdefault(action.seq, signed)
        if known.hash != signed.hash:
            raise ForkFound(
                f"the network holds a fork of {agent.to_text()} at seq {action.seq}: two "
                "signed actions; restoring either would continue a forked chain"
            )
    if len(by_seq) > MAX_RESTORED_RECORDS:
        raise RestoreError(f"more than {MAX_RESTORED_RECORDS} actions: not restored")
    missing = [seq for seq in range(len(by_seq)) if seq not in by_seq]
    if missing:
        raise RestoreError(f"the chain is incomplete: seq {missing[0]} is missing")
    return [by_seq[seq] for seq in range(len(by_seq))]


def check_restored_chain(
    dna: DnaDef,
    cell: Cell,
    records: Sequence[Record],
    reader: Any = None,
) -> None:
    """Verify ``records`` (what follows the chain stored for ``cell``, from seq 0 when it is
    empty) as its author's node would before writing them: system rules record by record, and
    the DNA's app rules for every record whose entry is here; a private record without its
    entry is judged as its agent-activity op (what its authorities judged). Raises
    :class:`RestoreError` naming the first bad record."""
    scratch = Scratch(cell.store, reader)
    host = SourceHost(dna, scratch)
    head = cell.store.head()
    prev = cell.store.get_action(head.hash) if head is not None else None
    for record in records:
        action = record.action
        if action.author != cell.agent:
            raise RestoreError(f"seq {action.seq}: written by another agent")
        forgotten = record.entry is None and record.is_private()
        reason = check_record(record, prev, dna, require_entry=not forgotten)
        if reason is None:
            if forgotten:
                op = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, record.signed_action)
                outcome = validate_op(op, dna, host)
            else:
                outcome = validate_app(record, dna, host)
            if isinstance(outcome, Invalid):
                reason = f"invalid: {outcome.reason}"
            elif isinstance(outcome, Unresolved):
                raise MissingDeps(
                    f"record #{action.seq} cites what is not here yet: "
                    + ", ".join(d.short() for d in outcome.deps),
                    outcome.deps,
                )
        if reason is not None:
            raise RestoreError(f"record #{action.seq} of {cell.agent.short()} refused: {reason}")
        scratch.add(record)
        prev = record.signed_action


# ---------------------------------------------------------------------------------- fetching


async def fetch_chain(dht: DnaNetwork, cell: Cell) -> list[Record]:
    """``cell``'s chain as the network holds it, assembled (signatures, author, no fork, no
    gap) but not yet verified against the rules; empty if nobody has any of it."""
    ops = await dht.ask_widely(cell.agent, "activity")
    actions = [op.signed_action for op in ops if op.op_type is OpType.REGISTER_AGENT_ACTIVITY]
    if not actions:
        return []
    chain = assemble_chain(cell.agent, actions)
    records = []
    for signed in chain:
        if signed.action.entry_hash is None or _private(signed):
            records.append(Record(signed))
            continue
        entries = [
            op.entry
            for op in await dht.ask_widely(signed.hash, "record")
            if op.op_type is OpType.STORE_RECORD
            and op.signed_action.hash == signed.hash
            and op.entry is not None
        ]
        # one whose hash is the action's, if any peer has it (a wrong one is another's lie)
        right = [e for e in entries if e.hash() == signed.action.entry_hash]
        if not entries:
            raise RestoreError(f"the entry of record #{signed.action.seq} was not found yet")
        records.append(Record(signed, (right or entries)[0]))
    return records


def _private(signed: SignedAction) -> bool:
    return Record(signed).is_private()


async def verify_and_write(dht: DnaNetwork, cell: Cell, records: Sequence[Record]) -> int:
    """:func:`write_restored`, fetching what the records cite first when it is missing (a few
    rounds, each bounded by the DHT's request timeout)."""
    for _ in range(3):
        try:
            return write_restored(cell, records, dht.store)
        except MissingDeps as exc:
            if not await dht.fetch_missing(exc.deps):
                raise
    return write_restored(cell, records, dht.store)


def write_restored(cell: Cell, records: Sequence[Record], reader: Any = None) -> int:
    """Verify and append what of ``records`` (a whole chain from seq 0) is not here yet; what is
    here must be their prefix (a restore interrupted after writing, or a chain that grew on the
    network since). Nothing is written unless all of it verifies. Returns how many records
    were written."""
    local = list(cell.store.iter_records())
    for mine, theirs in zip(local, records, strict=False):
        if mine.action_hash != theirs.action_hash:
            raise RestoreError(
                f"this data directory's chain differs from the network's at seq "
                f"{mine.action.seq}: it already wrote its own history; recover into a new "
                "directory"
            )
    if len(local) > len(records):
        raise RestoreError("this data directory's chain is longer than the network's")
    tail = list(records[len(local) :])
    head = local[-1].action_hash if local else None
    check_restored_chain(cell.dna, cell, tail, reader)
    store = cell.store
    if not hasattr(store, "append_restored"):
        raise RestoreError("this chain store cannot take a restored chain")
    store.append_restored(tail, head)
    return len(tail)


# ---------------------------------------------------------------------------------- devices


async def device_certificate(
    dht: DnaNetwork, agent: AgentPubKey, owner: AgentPubKey
) -> EnrollmentCertificate | None:
    """The enrollment certificate ``agent`` joined with, if it names ``owner`` and is valid:
    the membrane proof of its ``AgentValidationPkg`` (seq 1), as its authorities hold it."""
    for op in await dht.ask_widely(agent, "activity"):
        action = op.signed_action.action
        if not isinstance(action, AgentValidationPkg) or action.author != agent:
            continue
        if action.seq != 1 or action.membrane_proof is None:
            continue
        try:
            cert = EnrollmentCertificate.from_bytes(action.membrane_proof)
        except EncodingError:
            continue
        if cert.device == agent and cert.owner == owner and certificate_problem(cert) is None:
            return cert
    return None


async def rescan_devices(
    dht: DnaNetwork,
    conductor: Conductor,
    *,
    gap_limit: int = GAP_LIMIT,
) -> tuple[list[dict[str, Any]], int]:
    """Probe agent 0 of device seeds 1, 2, … until ``gap_limit`` misses in a row; merge what is
    found into the owner's device list and raise ``next_device_index`` past it (never lower).
    Returns the devices and the next index (both also stored)."""
    account = conductor.account
    if not isinstance(account, OwnerAccount):
        raise RestoreError("only an owner's node can look for its devices")
    owner = account.agent_key().agent
    scan = Rescan(gap_limit)
    found: dict[int, dict[str, Any]] = {}
    while (index := scan.probe()) is not None:
        agent = device_agent_key(account.device_seed(index), 0).agent
        cert = await device_certificate(dht, agent, owner)
        scan = scan.record(index, cert is not None)
        if cert is not None:
            found[index] = {
                "agent": agent.to_text(),
                "index": index,
                "name": cert.name,
                "type": str(cert.device_type.value),
                "zone": cert.zone,
                "visibility": str(cert.visibility.value),
                "enrolled_us": cert.issued_us,
            }
    db = conductor.db
    with db.transaction():
        stored = [dict(d) for d in db.get_setting(DEVICES_SETTING) or [] if isinstance(d, dict)]
        known = {d.get("index") for d in stored}
        devices = stored + [d for i, d in sorted(found.items()) if i not in known]
        indices = [i for i in (d.get("index") for d in devices) if isinstance(i, int)]
        next_index = next_device_index(indices, db.get_setting(NEXT_INDEX_SETTING))
        db.put_setting(DEVICES_SETTING, devices)
        db.put_setting(NEXT_INDEX_SETTING, next_index)
    return devices, next_index


# ---------------------------------------------------------------------------------- restore


async def restore(
    conductor: Conductor,
    dhts: Mapping[DnaHash, DnaNetwork],
    *,
    timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S,
    fresh: bool = False,
    gap_limit: int = GAP_LIMIT,
    poll_s: float = POLL_S,
) -> RestoreReport:
    """Restore every local chain from the network, then the device list; clear the mark.
    Nothing is written to a chain before it is verified whole. ``fresh``: when nothing is
    found within ``timeout_s``, write new genesis records instead of failing."""
    report = RestoreReport()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for cell in conductor.cells():
        dht = dhts[cell.dna.hash]
        records: list[Record] = []
        last: RestoreError | None = None
        while True:
            others = [a for a, i in dht.live_members().items() if i.peer_id != dht.net.peer_id]
            if others:
                try:
                    records = await fetch_chain(dht, cell)
                    if records:
                        written = await verify_and_write(dht, cell, records)
                        report.chains[cell.agent.to_text()] = written
                        break
                    last = None
                except ForkFound:
                    raise
                except RestoreError as exc:  # a broken or forged copy: ask again, maybe others
                    log.warning("restore of %s: %s", cell.agent.short(), exc)
                    last = exc
                    records = []
            if loop.time() >= deadline:
                break
            await asyncio.sleep(poll_s)
        if records:
            continue
        if cell.has_genesis():  # restored earlier (an interrupted run): nothing more to fetch
            report.chains[cell.agent.to_text()] = 0
            continue
        if last is not None:
            raise RestoreError(f"the chain of {cell.agent.to_text()} was not restored: {last}")
        if not fresh:
            raise ChainNotFound(
                f"no chain of {cell.agent.to_text()} found on the network within "
                f"{timeout_s:g} s. Check --bootstrap (a node of your network must be running); "
                "if this account never ran a node, start it with --fresh"
            )
        cell.genesis(restore_proof(conductor, cell), now_us=conductor.clock())
        report.fresh = True
        report.chains[cell.agent.to_text()] = 0
    if isinstance(conductor.account, OwnerAccount):
        core = next(iter(dhts.values()))
        report.devices, report.next_device_index = await rescan_devices(
            core, conductor, gap_limit=gap_limit
        )
    conductor.db.put_setting(RESTORE_SETTING, False)
    return report


def restore_proof(conductor: Conductor, cell: Cell) -> bytes | None:
    """The membrane proof a fresh genesis of ``cell`` carries (the owner's membership)."""
    if cell is not conductor.owner_cell or not isinstance(conductor.account, OwnerAccount):
        return None
    return owner_membership_for(conductor.account, conductor.clock()).to_bytes()


# -------------------------------------------------------------------------------- HTTP route


def add_routes(app: web.Application) -> None:
    """``POST /v1/owner/rescan`` → ``{"devices": [...], "next_device_index": n}``."""
    app.router.add_post("/v1/owner/rescan", _rescan_route)


async def _rescan_route(request: web.Request) -> web.Response:
    node = request.app[IDENTITY_HOST]
    if not isinstance(node.conductor.account, OwnerAccount):
        return web.json_response({"error": "this node is not an owner's node"}, status=400)
    try:
        devices, next_index = await rescan_devices(
            node.dht_for(node.conductor.owner_cell), node.conductor
        )
    except RestoreError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"devices": devices, "next_device_index": next_index})
