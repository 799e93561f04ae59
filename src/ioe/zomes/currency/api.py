"""Zome functions of the currency zome, and the helpers that commit a payment.

A payment is one countersigning session of spender and receiver. The payer builds the transfer
from its own chain and the receiver's ledger head (``ledger_head``, asked of the receiver),
with ``prepare_payment``; the receiver judges it with ``accept_payment`` (the countersigning
policy, :func:`policy`); both then commit the same countersigned entry. Over the network the
node's ``Countersigner.start_session`` does the last step; in one process (tests, simulations)
:func:`commit_in_process` does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ioe.encoding import encode
from ioe.engine.cell import CallContext, Cell
from ioe.engine.countersigning import (
    CountersignedEntry,
    Preflight,
    Response,
    commit_session,
)
from ioe.engine.schema import decode_as, from_value, to_value
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ChainError, EncodingError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.entries import (
    CLEAN_SOURCES,
    DIRTY_SOURCES,
    Kind,
    Provenance,
    Source,
    Transfer,
)
from ioe.zomes.currency.ledger import (
    CurrencyRules,
    LedgerError,
    Position,
    credit_limit_mc,
    follows,
    next_transfer,
    replay,
)
from ioe.zomes.currency.validation import session_problem, transfer_problem
from ioe.zomes.currency.value import Verification

coordinator = CoordinatorZome("currency")

DEFAULT_SESSION_TIMEOUT_US = 10_000_000


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer as found on a chain: the committing action, its time, the session."""

    action_hash: ActionHash
    at_us: int
    session_id: bytes
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class Balance:
    name: str
    symbol: str
    balance_mc: int
    credit_limit_mc: int
    available_mc: int
    """How much this agent can still spend: balance + credit limit."""
    previous: ActionHash | None
    """This chain's latest transfer record (None: no transfer yet)."""


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One transfer from this agent's point of view."""

    action_hash: ActionHash
    at_us: int
    kind: Kind
    amount_mc: int
    delta_mc: int
    """Signed: negative when this agent paid."""
    counterparty: AgentPubKey
    balance_mc: int
    """This agent's balance after the transfer."""
    provenance: Provenance | None
    memo: str


# ------------------------------------------------------------------------------- chain reads


def rules_of(ctx: CallContext) -> CurrencyRules:
    try:
        return CurrencyRules.from_properties(ctx.dna.properties)
    except ValueError as exc:
        raise ZomeCallError(str(exc)) from exc


def chain_transfers(ctx: CallContext) -> list[TransferRecord]:
    """Every transfer on this chain (this call's writes included), oldest first."""
    transfer_type, _ = ctx.dna.entry_type_for(Transfer)
    found: list[TransferRecord] = []
    for record in ctx.query(CountersignedEntry):
        session = ctx.cell.entry_value(record)
        if not isinstance(session, CountersignedEntry):
            continue
        preflight = session.preflight
        if (preflight.entry_zome, preflight.entry_index) != (
            transfer_type.zome_index,
            transfer_type.entry_index,
        ):
            continue
        transfer = decode_as(Transfer, preflight.entry)
        found.append(
            TransferRecord(
                record.action_hash, record.action.timestamp, session.session_id, transfer
            )
        )
    return found


def position_of(ctx: CallContext) -> Position:
    """This chain's ledger position, recomputed from its transfers."""
    try:
        return replay(ctx.agent, ((t.action_hash, t.transfer) for t in chain_transfers(ctx)))
    except LedgerError as exc:  # validation keeps this from happening on a valid chain
        raise ChainError(f"this chain's ledger does not add up: {exc}") from exc


# ---------------------------------------------------------------------------- zome functions


@coordinator.function
def currency(ctx: CallContext, payload: Any = None) -> dict[str, str]:
    """The unit's name and symbol (``{"name": ..., "symbol": ...}``)."""
    rules = rules_of(ctx)
    return {"name": rules.name, "symbol": rules.symbol}


@coordinator.function
def ledger_head(ctx: CallContext, payload: Any = None) -> Position:
    """This agent's latest transfer and balance: what a payer needs to build a transfer."""
    return position_of(ctx)


@coordinator.function
def balance(ctx: CallContext, payload: Any = None) -> Balance:
    rules = rules_of(ctx)
    position = position_of(ctx)
    limit = credit_limit_mc(rules, ctx.agent)
    return Balance(
        name=rules.name,
        symbol=rules.symbol,
        balance_mc=position.balance_mc,
        credit_limit_mc=limit,
        available_mc=position.balance_mc + limit,
        previous=position.previous,
    )


@coordinator.function
def history(ctx: CallContext, payload: Any = None) -> list[HistoryItem]:
    """This chain's transfers with their provenance, oldest first."""
    items = []
    for found in chain_transfers(ctx):
        transfer = found.transfer
        party = transfer.party(ctx.agent)
        if party is None:  # validation keeps this from happening on a valid chain
            continue
        items.append(
            HistoryItem(
                action_hash=found.action_hash,
                at_us=found.at_us,
                kind=transfer.kind,
                amount_mc=transfer.amount_mc,
                delta_mc=transfer.delta_mc(ctx.agent),
                counterparty=transfer.counterparty(ctx.agent),
                balance_mc=party.balance_mc,
                provenance=transfer.provenance,
                memo=transfer.memo,
            )
        )
    return items


@coordinator.function
def prepare_payment(ctx: CallContext, payload: Any) -> Transfer:
    """The next transfer paying ``{"to": agent, "amount_mc": int, "kind"?: str (transfer),
    "provenance"?: {...}, "memo"?: str, "receiver_head": {"previous": hash | None,
    "balance_mc": int}}`` from this chain's state.

    ``receiver_head`` is the receiver's own ``ledger_head`` (ask it; it refuses a transfer
    built on a stale head). The result is checked as validation will check it, so an
    over-limit or malformed payment fails here, before any session."""
    if not isinstance(payload, dict):
        raise ZomeCallError("prepare_payment takes a map")
    to = _agent(payload.get("to"), "to")
    if to == ctx.agent:
        raise ZomeCallError("an agent cannot pay itself")
    kind = _kind(payload.get("kind", Kind.TRANSFER))
    raw_provenance = payload.get("provenance")
    provenance = None if raw_provenance is None else parse_provenance(raw_provenance)
    memo = payload.get("memo", "")
    if not isinstance(memo, str):
        raise ZomeCallError("memo is text")
    receiver_at = parse_position(payload.get("receiver_head"))
    amount_mc = payload.get("amount_mc")
    if type(amount_mc) is not int:
        raise ZomeCallError("amount_mc is an integer of milli-credits")
    try:
        transfer = next_transfer(
            ctx.agent,
            position_of(ctx),
            to,
            receiver_at,
            amount_mc=amount_mc,
            kind=kind,
            provenance=provenance,
            memo=memo,
        )
    except LedgerError as exc:
        raise ZomeCallError(str(exc)) from exc
    problem = transfer_problem(transfer, rules_of(ctx))
    if problem:
        raise ZomeCallError(problem)
    return transfer


@coordinator.function
def accept_payment(ctx: CallContext, payload: Any) -> str | None:
    """Why this agent refuses to countersign ``payload`` (a Transfer, or its canonical value
    or bytes), or None to accept: the transfer's own rules, and this agent's side continuing
    its chain as it stands (latest transfer, balance). The spender's side is its own business
    (its record is validated against its chain)."""
    transfer = _transfer(payload)
    party = transfer.party(ctx.agent)
    if party is None:
        return "this agent is not a party to the transfer"
    return transfer_problem(transfer, rules_of(ctx)) or follows(position_of(ctx), party)


def policy(cell: Cell, preflight: Preflight, value: object) -> str | None:
    """A countersigning policy (``Countersigner.policy``) that judges transfers with
    ``accept_payment`` and has no say on other entries."""
    if not isinstance(value, Transfer):
        return None
    problem = session_problem(value, CountersignedEntry(preflight, ()))
    if problem:
        return problem
    reason: str | None = cell.call(
        coordinator.name, "accept_payment", value, now_us=preflight.session_time_us
    )
    return reason


def commit_in_process(
    spender: Cell,
    receiver: Cell,
    transfer: Transfer,
    *,
    session_id: bytes,
    now_us: int,
    timeout_us: int = DEFAULT_SESSION_TIMEOUT_US,
) -> tuple[ActionHash, ActionHash]:
    """Countersign and commit ``transfer`` on both chains when both cells are in this process
    (tests, simulations): the spender initiates, the receiver's policy is asked, both sign
    their heads, then each commits the set. Returns (spender's action, receiver's action).
    Raises ``ZomeCallError`` if the receiver refuses, ``ValidationError`` if a chain's rules
    do (the spender commits first, so a refusal there leaves both chains unchanged)."""
    entry_type, _ = spender.dna.entry_type_for(Transfer)
    preflight = Preflight(
        session_id=session_id,
        dna_hash=spender.dna.hash,
        parties=(spender.agent, receiver.agent),
        witness=None,
        entry_zome=entry_type.zome_index,
        entry_index=entry_type.entry_index,
        entry=encode(to_value(transfer)),
        session_time_us=now_us,
        expires_us=now_us + timeout_us,
    )
    reason = policy(receiver, preflight, transfer)
    if reason is not None:
        raise ZomeCallError(f"the receiver refuses: {reason}")
    responses = []
    for cell in (spender, receiver):
        head = cell.head()
        if head is None:
            raise ChainError(f"{cell.agent.short()} has no chain")
        responses.append(Response.sign(cell.keys, preflight, head))
    entry = CountersignedEntry(preflight, tuple(responses))
    return commit_session(spender, entry), commit_session(receiver, entry)


# ---------------------------------------------------------------------------- payload parsing


def _agent(value: Any, what: str) -> AgentPubKey:
    if isinstance(value, AgentPubKey):
        return value
    if isinstance(value, str):
        try:
            return AgentPubKey.from_text(value)
        except EncodingError as exc:
            raise ZomeCallError(f"{what}: not an agent key: {exc}") from exc
    raise ZomeCallError(f"{what} is an agent key (or its text form)")


def _action_hash(value: Any, what: str) -> ActionHash | None:
    if value is None or isinstance(value, ActionHash):
        return value
    if isinstance(value, str):
        try:
            return ActionHash.from_text(value)
        except EncodingError as exc:
            raise ZomeCallError(f"{what}: not an action hash: {exc}") from exc
    raise ZomeCallError(f"{what} is an action hash (or its text form), or null")


def _kind(value: Any) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise ZomeCallError(f"kind is one of {[k.value for k in Kind]}") from None


def parse_position(value: Any) -> Position:
    """A ledger head: a :class:`Position` or ``{"previous": hash | None, "balance_mc": int}``."""
    if isinstance(value, Position):
        return value
    if not isinstance(value, dict):
        raise ZomeCallError(
            "receiver_head is the receiver's ledger head: {previous: hash | null, balance_mc: int}"
        )
    balance_mc = value.get("balance_mc")
    if type(balance_mc) is not int:
        raise ZomeCallError("receiver_head.balance_mc is an integer")
    return Position(_action_hash(value.get("previous"), "receiver_head.previous"), balance_mc)


def parse_provenance(value: Any) -> Provenance:
    """A :class:`Provenance`, or ``{"energy_wh", "source", "clean"?, "origin_zone", "trust",
    "claim"?, "receipt"?}`` (``clean`` follows from the source unless it is battery or
    grid_mix; ``trust`` is a level's name or number)."""
    if isinstance(value, Provenance):
        return value
    if not isinstance(value, dict):
        raise ZomeCallError("provenance is a map")
    try:
        source = Source(str(value.get("source")))
    except ValueError:
        raise ZomeCallError(f"provenance.source is one of {[s.value for s in Source]}") from None
    clean = value.get("clean")
    if clean is None and source in CLEAN_SOURCES | DIRTY_SOURCES:
        clean = source in CLEAN_SOURCES
    if type(clean) is not bool:
        raise ZomeCallError(f"provenance.clean (true or false) must be declared for {source}")
    energy_wh, zone = value.get("energy_wh"), value.get("origin_zone")
    if type(energy_wh) is not int:
        raise ZomeCallError("provenance.energy_wh is an integer of Wh")
    if not isinstance(zone, str):
        raise ZomeCallError("provenance.origin_zone is a zone path")
    trust = value.get("trust")
    names = [v.name.lower() for v in Verification]
    if isinstance(trust, str) and trust.upper() in Verification.__members__:
        level = Verification[trust.upper()]
    elif type(trust) is int and trust in set(Verification):
        level = Verification(trust)
    else:
        raise ZomeCallError(f"provenance.trust is one of {names}")
    return Provenance(
        energy_wh=energy_wh,
        source=source,
        clean=clean,
        origin_zone=zone,
        trust=level,
        claim=_action_hash(value.get("claim"), "provenance.claim"),
        receipt=_action_hash(value.get("receipt"), "provenance.receipt"),
    )


def _transfer(value: Any) -> Transfer:
    if isinstance(value, Transfer):
        return value
    try:
        if isinstance(value, bytes):
            return decode_as(Transfer, value)
        return from_value(Transfer, value)
    except EncodingError as exc:
        raise ZomeCallError(f"not a transfer: {exc}") from exc
