"""Zome functions of the currency zome, and the policy that judges a payment's session.

A payment is one countersigning session of spender and receiver. The payer builds the transfer
from its own chain and the receiver's ledger head (``ledger_head``, asked of the receiver),
with ``prepare_payment``; the receiver judges it with ``accept_payment`` (the countersigning
policy, :func:`policy`); both then commit the same countersigned entry. Over the network the
node's ``Countersigner.start_session`` does the last step; in one process (tests, simulations)
:func:`ioe.sim.in_process.commit_in_process` does it.

Issuance: ``claim_generation`` and ``claim_reduction`` (a device's claims), ``attest`` (a
distributor's attestation), ``publish_price`` (an oracle's price), ``prepare_receipt`` and
``accept_receipt`` (a consumption receipt, countersigned by distributor and consumer like a
payment; in one process by :func:`ioe.sim.in_process.countersign_in_process`). Each writes or
checks exactly what validation will judge; records it cites must already be readable by this
cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ioe.engine.cell import CallContext, Cell
from ioe.engine.countersigning import (
    CountersignedEntry,
    Preflight,
)
from ioe.engine.integrity import UnresolvedDependency
from ioe.engine.records import Record
from ioe.engine.schema import decode_as, from_value
from ioe.engine.validation import GENESIS_LENGTH
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ChainError, EncodingError, MissingDependencies, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.membership import chain_trade_problem
from ioe.zomes.currency import issuance
from ioe.zomes.currency.entries import (
    CLEAN_SOURCES,
    DIRTY_SOURCES,
    ClaimAttestation,
    ConsumptionReceipt,
    FeeKind,
    GenerationClaim,
    Kind,
    PriceRecord,
    Provenance,
    ReductionClaim,
    RewardKind,
    Source,
    Terms,
    Transfer,
)
from ioe.zomes.currency.ledger import (
    START,
    CurrencyRules,
    LedgerError,
    Position,
    after,
    credit_limit_mc,
    follows,
    next_transfer,
)
from ioe.zomes.currency.rewards import price_cents
from ioe.zomes.currency.validation import session_problem, transfer_problem
from ioe.zomes.currency.value import ValueRules, Verification

coordinator = CoordinatorZome("currency")

POSITION_WINDOW = 64
"""Records read at a time when looking back for the latest transfer."""


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
    terms: Terms | None = None
    """What the transfer cites (a fee's trade, a reward's basis, a cash price), if anything."""


# ------------------------------------------------------------------------------- chain reads


def rules_of(ctx: CallContext) -> CurrencyRules:
    try:
        return CurrencyRules.from_properties(ctx.dna.properties)
    except ValueError as exc:
        raise ZomeCallError(str(exc)) from exc


def _transfer_record(ctx: CallContext, record: Record) -> TransferRecord | None:
    """``record`` as a transfer record, or None if it is another countersigned entry."""
    transfer_type, _ = ctx.dna.entry_type_for(Transfer)
    session = ctx.cell.entry_value(record)
    if not isinstance(session, CountersignedEntry):
        return None
    preflight = session.preflight
    if (preflight.entry_zome, preflight.entry_index) != (
        transfer_type.zome_index,
        transfer_type.entry_index,
    ):
        return None
    transfer = decode_as(Transfer, preflight.entry)
    return TransferRecord(record.action_hash, record.action.timestamp, session.session_id, transfer)


def chain_transfers(ctx: CallContext) -> list[TransferRecord]:
    """Every transfer on this chain (this call's writes included), oldest first."""
    found = (_transfer_record(ctx, record) for record in ctx.query(CountersignedEntry))
    return [t for t in found if t is not None]


def latest_transfer(ctx: CallContext) -> TransferRecord | None:
    """The last transfer on this chain, read backwards a window of records at a time (so a
    payment costs the same on a long chain as on a short one)."""
    until = ctx.next_seq - 1
    while until >= 0:
        start = max(0, until - POSITION_WINDOW + 1)
        for record in reversed(ctx.query(CountersignedEntry, from_seq=start, until_seq=until)):
            found = _transfer_record(ctx, record)
            if found is not None:
                return found
        until = start - 1
    return None


def position_of(ctx: CallContext) -> Position:
    """This chain's ledger position: where its latest transfer left it (its balance and its
    history). Validation checked that every transfer continues the one before it, so the
    latest says it all; ``replay`` over ``chain_transfers`` recomputes it from the start."""
    latest = latest_transfer(ctx)
    if latest is None:
        return START
    try:
        return after(latest.action_hash, latest.transfer, ctx.agent)
    except LedgerError as exc:  # validation keeps this from happening on a valid chain
        raise ChainError(f"this chain's ledger does not add up: {exc}") from exc


def trade_problem_here(ctx: CallContext) -> str | None:
    """Why this cell's agent may not trade (validation would refuse its record), or None:
    read from the membership its chain starts with."""
    genesis = [r.signed_action for r in ctx.query(until_seq=GENESIS_LENGTH - 1)]
    problem = chain_trade_problem(genesis, ctx.agent, ctx.dna.properties)
    return None if problem is None else f"this agent may not trade: {problem}"


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
    limit = credit_limit_mc(rules, ctx.agent, position.earned_mc)
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
                terms=transfer.terms,
            )
        )
    return items


@dataclass(frozen=True, slots=True)
class ReceiptItem:
    """A consumption receipt on this chain (this agent's own record of it)."""

    action_hash: ActionHash
    at_us: int
    receipt: ConsumptionReceipt
    settled: bool
    """Whether this chain holds the trade that settles it."""


@dataclass(frozen=True, slots=True)
class TradeOffer:
    """What a consumer pays for a receipt: to whom, the provenance the rules expect, and
    the terms; ``prepare_payment`` sets the amount (the value of the kWh)."""

    to: AgentPubKey
    provenance: Provenance
    terms: Terms


@coordinator.function
def receipts(ctx: CallContext, payload: Any = None) -> list[ReceiptItem]:
    """The consumption receipts this agent co-signed, as distributor or consumer, oldest
    first, each with whether a trade on this chain settled it."""
    receipt_type, _ = ctx.dna.entry_type_for(ConsumptionReceipt)
    settled = {
        t.transfer.provenance.receipt
        for t in chain_transfers(ctx)
        if t.transfer.kind is Kind.TRADE and t.transfer.provenance is not None
    }
    found = []
    for record in ctx.query(CountersignedEntry):
        session = ctx.cell.entry_value(record)
        if not isinstance(session, CountersignedEntry):
            continue
        preflight = session.preflight
        if (preflight.entry_zome, preflight.entry_index) != (
            receipt_type.zome_index,
            receipt_type.entry_index,
        ):
            continue
        found.append(
            ReceiptItem(
                record.action_hash,
                record.action.timestamp,
                decode_as(ConsumptionReceipt, preflight.entry),
                record.action_hash in settled,
            )
        )
    return found


@coordinator.function
def trade_for(ctx: CallContext, payload: Any) -> TradeOffer:
    """As a receipt's consumer, what settling it takes: ``{"receipt": this agent's record of
    the receipt, "reputation_pm"?: int (1000)}`` → the producer to pay, the provenance (the
    claim's source, clean flag and zone, the attestation's trust, the receipt's energy) and
    the terms. ``MissingDependencies`` while the attestation or claim is not here (a node
    fetches them)."""
    payload = _map(payload, "trade_for")
    receipt_hash = _required_hash(payload.get("receipt"), "receipt")
    record = ctx.get(receipt_hash)
    session = None if record is None else ctx.cell.entry_value(record)
    if record is None or not isinstance(session, CountersignedEntry):
        raise ZomeCallError(f"no consumption receipt {receipt_hash.short()} on this chain")
    try:
        receipt = decode_as(ConsumptionReceipt, session.preflight.entry)
    except EncodingError:
        raise ZomeCallError(f"{receipt_hash.short()} is not a consumption receipt") from None
    if record.action.author != ctx.agent or receipt.consumer != ctx.agent:
        raise ZomeCallError("a receipt is settled by its consumer, citing its own record")
    attested = ctx.get(receipt.attestation)
    claimed = ctx.get(receipt.claim)
    missing = [h for h, r in ((receipt.attestation, attested), (receipt.claim, claimed)) if not r]
    if missing:
        raise MissingDependencies(missing)
    assert attested is not None and claimed is not None
    attestation = ctx.cell.entry_value(attested)
    claim = ctx.cell.entry_value(claimed)
    if not isinstance(attestation, ClaimAttestation) or not isinstance(claim, GenerationClaim):
        raise ZomeCallError("the receipt does not cite an attestation of a generation claim")
    provenance = Provenance(
        energy_wh=receipt.energy_wh,
        source=claim.source,
        clean=claim.clean,
        origin_zone=claim.zone,
        trust=attestation.level,
        claim=receipt.claim,
        receipt=receipt_hash,
    )
    terms = Terms(reputation_pm=_int(payload, "reputation_pm", 1000))
    return TradeOffer(claimed.action.author, provenance, terms)


@coordinator.function
def prepare_payment(ctx: CallContext, payload: Any) -> Transfer:
    """The next transfer paying ``{"to": agent, "amount_mc"?: int, "kind"?: str (transfer),
    "provenance"?: {...}, "terms"?: {...}, "memo"?: str, "receiver_head": {"previous": hash |
    None, "balance_mc": int}}`` from this chain's state.

    ``receiver_head`` is the receiver's own ``ledger_head`` (ask it; it refuses a transfer
    built on a stale head). ``terms`` (see :func:`parse_terms`) says what a fee, a reward or a
    cash transfer cites. When the rules fix the amount from what the transfer cites (a trade,
    a reward, a cash transfer, a fee with a rule), ``amount_mc`` may be left out and is
    computed; given, it must be that amount. The result is checked as validation will check it
    (at this call's time, which should be the session's), so an over-limit, mispriced or
    malformed payment fails here, before any session."""
    if not isinstance(payload, dict):
        raise ZomeCallError("prepare_payment takes a map")
    problem = trade_problem_here(ctx)
    if problem:
        raise ZomeCallError(problem)
    to = _agent(payload.get("to"), "to")
    if to == ctx.agent:
        raise ZomeCallError("an agent cannot pay itself")
    kind = _kind(payload.get("kind", Kind.TRANSFER))
    raw_provenance = payload.get("provenance")
    provenance = None if raw_provenance is None else parse_provenance(raw_provenance)
    raw_terms = payload.get("terms")
    terms = None if raw_terms is None else parse_terms(raw_terms)
    memo = payload.get("memo", "")
    if not isinstance(memo, str):
        raise ZomeCallError("memo is text")
    receiver_at = parse_position(payload.get("receiver_head"))
    amount_mc = payload.get("amount_mc")
    if amount_mc is not None and type(amount_mc) is not int:
        raise ZomeCallError("amount_mc is an integer of milli-credits")
    rules = rules_of(ctx)
    spender_at = position_of(ctx)

    def build(amount: int) -> Transfer:
        try:
            return next_transfer(
                ctx.agent,
                spender_at,
                to,
                receiver_at,
                amount_mc=amount,
                kind=kind,
                provenance=provenance,
                memo=memo,
                terms=terms,
            )
        except LedgerError as exc:
            raise ZomeCallError(str(exc)) from exc

    transfer = build(1 if amount_mc is None else amount_mc)
    if amount_mc is not None:
        problem = transfer_problem(transfer, rules)
        if problem:
            raise ZomeCallError(problem)
    expected = expected_amount_of(ctx, transfer)
    if expected is None and amount_mc is None:
        raise ZomeCallError(f"a {kind} without a rule for its amount needs amount_mc")
    if expected is not None:
        if amount_mc is not None and amount_mc != expected:
            raise ZomeCallError(
                f"the {kind}'s amount {amount_mc} mc is not what the rules give ({expected} mc)"
            )
        transfer = build(expected)
    problem = transfer_problem(transfer, rules)
    if problem:
        raise ZomeCallError(problem)
    return transfer


def expected_amount_of(ctx: CallContext, transfer: Transfer) -> int | None:
    """What the rules make ``transfer``'s amount, from the records it cites as this cell
    reads them (``ZomeCallError`` when they do not back it or are not here)."""
    session_type, _ = ctx.dna.entry_type_for(CountersignedEntry)
    transfer_type, _ = ctx.dna.entry_type_for(Transfer)
    try:
        at = issuance.Citing(
            ctx.host(),
            session_type,
            transfer_type.zome_index,
            rules_of(ctx),
            ValueRules.from_properties(ctx.dna.properties),
            ctx.now_us,
        )
        return issuance.expected_amount(transfer, at)
    except (issuance.Refused, ValueError) as exc:
        raise ZomeCallError(str(exc)) from exc
    except UnresolvedDependency as exc:  # the node may fetch them and ask again
        raise MissingDependencies(exc.deps) from exc


@coordinator.function
def accept_payment(ctx: CallContext, payload: Any) -> str | None:
    """Why this agent refuses to countersign ``payload`` (a Transfer, or its canonical value
    or bytes), or None to accept: the transfer's own rules, this agent's side continuing its
    chain as it stands (latest transfer, balance), and the amount the records it cites give
    (read here at the call's time, the session's), and that this agent may trade. The
    spender's side is its own business (its record is validated against its chain; a node
    also refuses a spender whose membership says it may not trade: ``ioe.wallet``)."""
    transfer = _transfer(payload)
    party = transfer.party(ctx.agent)
    if party is None:
        return "this agent is not a party to the transfer"
    problem = (
        trade_problem_here(ctx)
        or transfer_problem(transfer, rules_of(ctx))
        or follows(position_of(ctx), party)
    )
    if problem:
        return problem
    try:
        expected = expected_amount_of(ctx, transfer)
    except ZomeCallError as exc:
        return str(exc)
    if expected is not None and expected != transfer.amount_mc:
        return f"the {transfer.kind}'s amount {transfer.amount_mc} mc is not what the rules give"
    return None


def policy(cell: Cell, preflight: Preflight, value: object) -> str | None:
    """A countersigning policy (``Countersigner.policy``) that judges transfers with
    ``accept_payment`` and consumption receipts with ``accept_receipt``, and has no say on
    other entries."""
    if isinstance(value, Transfer):
        problem = session_problem(value, CountersignedEntry(preflight, ()))
        if problem:
            return problem
        reason: str | None = cell.call(
            coordinator.name, "accept_payment", value, now_us=preflight.session_time_us
        )
        return reason
    if isinstance(value, ConsumptionReceipt):
        if set(preflight.parties) != {value.distributor, value.consumer}:
            return "the receipt's session parties are not exactly distributor and consumer"
        answer: str | None = cell.call(
            coordinator.name, "accept_receipt", value, now_us=preflight.session_time_us
        )
        return answer
    return None


# ------------------------------------------------------------------------------- issuance


@coordinator.function
def claim_generation(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit a generation claim: ``{"energy_wh": int, "source": str, "clean"?: bool,
    "zone": str, "start_us": int, "end_us": int, "telemetry"?: [action hash, ...]}``
    (``clean`` follows from the source unless it is battery or grid_mix). Returns the claim's
    action hash, which attestations, receipts and trades cite."""
    payload = _map(payload, "claim_generation")
    source, clean = _source(payload, "")
    telemetry = payload.get("telemetry", [])
    if not isinstance(telemetry, list | tuple):
        raise ZomeCallError("telemetry is a list of reading batch action hashes")
    claim = GenerationClaim(
        energy_wh=_int(payload, "energy_wh"),
        source=source,
        clean=clean,
        zone=_str(payload, "zone"),
        start_us=_int(payload, "start_us"),
        end_us=_int(payload, "end_us"),
        telemetry=tuple(_required_hash(h, "telemetry") for h in telemetry),
    )
    return ctx.create(claim)


@coordinator.function
def claim_reduction(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit a demand reduction claim: ``{"avoided_wh": int, "zone": str, "start_us": int,
    "end_us": int, "price_cents": int | "price": number, "average_cents": int | "average":
    number}`` (prices per MWh; numbers are rounded to hundredths). A meter attests it
    (``attest``), then a payer pays the reward citing the attestation."""
    payload = _map(payload, "claim_reduction")
    claim = ReductionClaim(
        avoided_wh=_int(payload, "avoided_wh"),
        zone=_str(payload, "zone"),
        start_us=_int(payload, "start_us"),
        end_us=_int(payload, "end_us"),
        price_cents=_cents(payload, "price"),
        average_cents=_cents(payload, "average"),
    )
    return ctx.create(claim)


@coordinator.function
def attest(ctx: CallContext, payload: Any) -> ActionHash:
    """As a distributor validator, attest a claim: ``{"claim": action hash, "energy_wh"?:
    int (default: all that was claimed), "level"?: "meter_attested" |
    "substation_attested" (default meter), "path"?: [zone, ...] (default: the claim's zone),
    "fee_mc"?: int, "fee_pm"?: int}``. The claim must be readable by this cell
    (``MissingDependencies`` until it is: a node fetches it from the DHT)."""
    payload = _map(payload, "attest")
    claim_hash = _required_hash(payload.get("claim"), "claim")
    record = ctx.get(claim_hash)
    if record is None:  # not here yet: a node fetches it and calls again (ioe.services.resolve)
        raise MissingDependencies((claim_hash,))
    claim = ctx.cell.entry_value(record)
    if isinstance(claim, GenerationClaim):
        claimed, zone = claim.energy_wh, claim.zone
    elif isinstance(claim, ReductionClaim):
        claimed, zone = claim.avoided_wh, claim.zone
    else:
        raise ZomeCallError(f"no generation or reduction claim {claim_hash.short()} here")
    path = payload.get("path", [zone])
    if not isinstance(path, list | tuple) or not all(isinstance(z, str) for z in path):
        raise ZomeCallError("path is a list of zones")
    attestation = ClaimAttestation(
        claim=claim_hash,
        energy_wh=_int(payload, "energy_wh", claimed),
        level=_level(payload.get("level", "meter_attested"), "level"),
        path=tuple(path),
        fee_mc=_int(payload, "fee_mc", 0),
        fee_pm=_int(payload, "fee_pm", 0),
    )
    return ctx.create(attestation)


@coordinator.function
def publish_price(ctx: CallContext, payload: Any) -> ActionHash:
    """As a price oracle, publish ``{"zone": str, "start_us": int, "end_us": int,
    "price_cents": int | "price": number, "currency"?: str (AUD)}`` (per MWh)."""
    payload = _map(payload, "publish_price")
    price = PriceRecord(
        zone=_str(payload, "zone"),
        start_us=_int(payload, "start_us"),
        end_us=_int(payload, "end_us"),
        price_cents=_cents(payload, "price"),
        currency=str(payload.get("currency", "AUD")),
    )
    return ctx.create(price)


@coordinator.function
def prepare_receipt(ctx: CallContext, payload: Any) -> ConsumptionReceipt:
    """As the distributor that attested a claim, the receipt of energy delivered to a
    consumer: ``{"attestation": action hash, "consumer": agent, "energy_wh": int,
    "consumer_zone": str, "need_index"?: int}``. Checked as validation will check it
    (except the sold-out rule, checked when this chain commits it); then countersign it with
    the consumer (:func:`ioe.sim.in_process.countersign_in_process`, or a session over the
    network)."""
    payload = _map(payload, "prepare_receipt")
    attestation_hash = _required_hash(payload.get("attestation"), "attestation")
    record = ctx.get(attestation_hash)
    attestation = None if record is None else ctx.cell.entry_value(record)
    if not isinstance(attestation, ClaimAttestation):
        raise ZomeCallError(f"no attestation {attestation_hash.short()} here")
    receipt = ConsumptionReceipt(
        claim=attestation.claim,
        attestation=attestation_hash,
        distributor=ctx.agent,
        consumer=_agent(payload.get("consumer"), "consumer"),
        energy_wh=_int(payload, "energy_wh"),
        consumer_zone=_str(payload, "consumer_zone"),
        need_index=_int(payload, "need_index", 0),
    )
    problem = trade_problem_here(ctx) or _receipt_problem(ctx, receipt)
    if problem:
        raise ZomeCallError(problem)
    return receipt


@coordinator.function
def accept_receipt(ctx: CallContext, payload: Any) -> str | None:
    """Why this agent refuses to countersign a consumption receipt, or None: it must be the
    receipt's consumer or distributor, and the receipt must pass its rules as this cell
    reads the cited attestation and claim."""
    receipt = payload
    if not isinstance(receipt, ConsumptionReceipt):
        try:
            receipt = from_value(ConsumptionReceipt, payload)
        except EncodingError as exc:
            return f"not a consumption receipt: {exc}"
    if ctx.agent not in (receipt.distributor, receipt.consumer):
        return "this agent is not a party to the receipt"
    return trade_problem_here(ctx) or _receipt_problem(ctx, receipt)


def _receipt_problem(ctx: CallContext, receipt: ConsumptionReceipt) -> str | None:
    receipt_type, _ = ctx.dna.entry_type_for(ConsumptionReceipt)
    try:
        return issuance.receipt_problem(
            receipt,
            (receipt.distributor, receipt.consumer),
            receipt_type.zome_index,
            ctx.host(),
            rules_of(ctx),
        )
    except issuance.Refused as exc:
        return str(exc)
    except UnresolvedDependency as exc:  # the node may fetch them and ask again
        raise MissingDependencies(exc.deps) from exc


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


def _map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ZomeCallError(f"{what} takes a map")
    return value


def _int(payload: dict[str, Any], name: str, default: int | None = None) -> int:
    value = payload.get(name, default)
    if type(value) is not int:
        raise ZomeCallError(f"{name} is an integer")
    return value


def _str(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise ZomeCallError(f"{name} is text")
    return value


def _cents(payload: dict[str, Any], name: str) -> int:
    """``<name>_cents`` as given, or ``<name>`` (a number per MWh) in hundredths."""
    if f"{name}_cents" in payload:
        return _int(payload, f"{name}_cents")
    value = payload.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ZomeCallError(f"{name}_cents (an integer) or {name} (a number) is required")
    return price_cents(float(value))


def _required_hash(value: Any, what: str) -> ActionHash:
    found = _action_hash(value, what)
    if found is None:
        raise ZomeCallError(f"{what} is an action hash")
    return found


def _level(value: Any, what: str) -> Verification:
    names = [v.name.lower() for v in Verification]
    if isinstance(value, str) and value.upper() in Verification.__members__:
        return Verification[value.upper()]
    if type(value) is int and value in set(Verification):
        return Verification(value)
    raise ZomeCallError(f"{what} is one of {names}")


def _source(value: dict[str, Any], prefix: str) -> tuple[Source, bool]:
    try:
        source = Source(str(value.get("source")))
    except ValueError:
        raise ZomeCallError(f"{prefix}source is one of {[s.value for s in Source]}") from None
    clean = value.get("clean")
    if clean is None and source in CLEAN_SOURCES | DIRTY_SOURCES:
        clean = source in CLEAN_SOURCES
    if type(clean) is not bool:
        raise ZomeCallError(f"{prefix}clean (true or false) must be declared for {source}")
    return source, clean


def parse_terms(value: Any) -> Terms:
    """A :class:`Terms`, or ``{"cites"?: action hash, "fee"?: str, "reward"?: str,
    "reputation_pm"?: int, "money_cents"?: int}``."""
    if isinstance(value, Terms):
        return value
    if not isinstance(value, dict):
        raise ZomeCallError("terms is a map")
    unknown = set(value) - {"cites", "fee", "reward", "reputation_pm", "money_cents"}
    if unknown:
        raise ZomeCallError(f"unknown terms {sorted(unknown)}")
    fee, reward = value.get("fee"), value.get("reward")
    try:
        return Terms(
            cites=_action_hash(value.get("cites"), "terms.cites"),
            fee=None if fee is None else FeeKind(fee),
            reward=None if reward is None else RewardKind(reward),
            reputation_pm=_int(value, "reputation_pm", 1000),
            money_cents=_int(value, "money_cents", 0),
        )
    except ValueError as exc:
        raise ZomeCallError(f"bad terms: {exc}") from None


def _kind(value: Any) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise ZomeCallError(f"kind is one of {[k.value for k in Kind]}") from None


def parse_position(value: Any) -> Position:
    """A ledger head: a :class:`Position` or ``{"previous": hash | None, "balance_mc": int,
    "earned_mc": int}``."""
    if isinstance(value, Position):
        return value
    if not isinstance(value, dict):
        raise ZomeCallError(
            "receiver_head is the receiver's ledger head:"
            " {previous: hash | null, balance_mc: int, earned_mc: int}"
        )
    balance_mc, earned_mc = value.get("balance_mc"), value.get("earned_mc")
    if type(balance_mc) is not int or type(earned_mc) is not int:
        raise ZomeCallError("receiver_head.balance_mc and receiver_head.earned_mc are integers")
    previous = _action_hash(value.get("previous"), "receiver_head.previous")
    return Position(previous, balance_mc, earned_mc)


def parse_provenance(value: Any) -> Provenance:
    """A :class:`Provenance`, or ``{"energy_wh", "source", "clean"?, "origin_zone", "trust",
    "claim"?, "receipt"?}`` (``clean`` follows from the source unless it is battery or
    grid_mix; ``trust`` is a level's name or number)."""
    if isinstance(value, Provenance):
        return value
    if not isinstance(value, dict):
        raise ZomeCallError("provenance is a map")
    source, clean = _source(value, "provenance.")
    energy_wh, zone = value.get("energy_wh"), value.get("origin_zone")
    if type(energy_wh) is not int:
        raise ZomeCallError("provenance.energy_wh is an integer of Wh")
    if not isinstance(zone, str):
        raise ZomeCallError("provenance.origin_zone is a zone path")
    level = _level(value.get("trust"), "provenance.trust")
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
