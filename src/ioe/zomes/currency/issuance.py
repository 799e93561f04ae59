"""Issuance and value: the integrity rules of the records that back value, and of the
transfers that cite them (pure: no clock, no I/O; cited records come through the host's
``must_get_*``, so a missing one makes the verdict Unresolved, never a guess).

The chain of evidence (the book's "life of a token")::

    GenerationClaim (producer's chain)
      ← ClaimAttestation (a distributor's chain: measured energy ≤ claimed, path, fee rule)
        ← ConsumptionReceipt (countersigned by that distributor and the consumer)
          ← trade Transfer (consumer pays producer the value of the receipt's energy)
            ← fee Transfers (distributor, boundary, market, app), each citing the trade
    ReductionClaim (a device's chain) ← ClaimAttestation (a meter) ← demand_reduction reward
    PriceRecord (an oracle's chain) ← cash_in / cash_out

Every amount that follows from cited records is recomputed here (:func:`expected_amount`),
so a transfer that pays more or less than the rules say is refused. Whoever claims energy,
receives or delivers it, pays or is paid must be allowed to trade (:func:`trading_outcome`);
attesting and publishing prices move no credit and are not restricted. See
``docs/currency.md`` for what is enforced network-wide and what only on one chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ioe.engine.countersigning import CountersignedEntry
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, Outcome
from ioe.engine.records import (
    AppEntryType,
    Create,
    EntryKind,
    SignedAction,
    Visibility,
)
from ioe.engine.schema import decode_as
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import enrolled_certificate
from ioe.identity.membership import chain_trade_problem
from ioe.vocabulary import DeviceType, Verification
from ioe.zomes.currency.entries import (
    CLEAN_SOURCES,
    DIRTY_SOURCES,
    MAX_AMOUNT_MC,
    MAX_FEE_PM,
    MAX_MONEY_CENTS,
    MAX_PATH,
    MAX_PERIOD_US,
    MAX_PRICE_CENTS,
    MAX_TELEMETRY_REFS,
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
    entry_index,
)
from ioe.zomes.currency.ledger import (
    PRODUCERS,
    CurrencyRules,
    device_type_of,
    is_attester,
    is_oracle,
)
from ioe.zomes.currency.rewards import demand_reduction_reward_mc, need_index_from_cents
from ioe.zomes.currency.value import MAX_ENERGY_WH, PER_MILLE, ValueRules, factors, value_mc
from ioe.zones import boundaries_crossed, zone_problem

T = TypeVar("T")
ATTESTED_LEVELS = frozenset({Verification.METER_ATTESTED, Verification.SUBSTATION_ATTESTED})
MC_PER_MWH = 1_000_000
"""1 credit is 1 kWh at par, so 1 MWh is 10^6 milli-credits."""
MAX_CURRENCY_CODE = 8


class Refused(Exception):
    """A cited record that does not back what cites it (the citing record is invalid)."""


@dataclass(frozen=True, slots=True)
class Citing:
    """Where a transfer's citations are read and judged: the host, the entry type of
    countersigned records (``session_type``), the currency zome's index, the rules, and the
    session time (for prices)."""

    host: IntegrityHost
    session_type: AppEntryType
    zome_index: int
    rules: CurrencyRules
    value_rules: ValueRules
    at_us: int


# ----------------------------------------------------------------------- reading citations


def _app_entry_type(zome_index: int, cls: type) -> AppEntryType:
    return AppEntryType(zome_index, entry_index(cls), Visibility.PUBLIC)


def cited(
    host: IntegrityHost, action_hash: ActionHash, zome_index: int, cls: type[T], what: str
) -> tuple[SignedAction, T]:
    """The plain entry of type ``cls`` (of the currency zome at ``zome_index``) created by
    ``action_hash``; raises :class:`Refused` when it is something else, and lets the host's
    ``UnresolvedDependency`` through when it is missing."""
    record = host.must_get_valid_record(action_hash)
    action = record.action
    if not isinstance(action, Create) or action.app_entry_type != _app_entry_type(zome_index, cls):
        raise Refused(f"the cited record is not the expected {what}")
    entry = record.entry
    if entry is None or entry.kind is not EntryKind.APP:
        raise Refused(f"the cited {what} has no entry")
    try:
        return record.signed_action, decode_as(cls, entry.payload)
    except EncodingError as exc:
        raise Refused(f"the cited {what} does not decode: {exc}") from exc


def cited_in_session(
    host: IntegrityHost,
    action_hash: ActionHash,
    *,
    session_type: AppEntryType,
    zome_index: int,
    cls: type[T],
    what: str,
) -> tuple[SignedAction, CountersignedEntry, T]:
    """Like :func:`cited`, for an entry committed countersigned (a transfer, a receipt):
    ``action_hash`` is either party's committing ``Create`` of type ``session_type``."""
    record = host.must_get_valid_record(action_hash)
    action = record.action
    if not isinstance(action, Create) or action.app_entry_type != session_type:
        raise Refused(f"the cited {what} is not a countersigned record")
    entry = record.entry
    if entry is None or entry.kind is not EntryKind.APP:
        raise Refused(f"the cited {what} has no entry")
    try:
        session = decode_as(CountersignedEntry, entry.payload)
        preflight = session.preflight
        if (preflight.entry_zome, preflight.entry_index) != (zome_index, entry_index(cls)):
            raise Refused(f"the cited record is not the expected {what}")
        return record.signed_action, session, decode_as(cls, preflight.entry)
    except EncodingError as exc:
        raise Refused(f"the cited {what} does not decode: {exc}") from exc


def session_values(
    activity: Sequence[SignedAction],
    session_type: AppEntryType,
    zome_index: int,
    cls: type[T],
    host: IntegrityHost,
) -> Iterator[T]:
    """Every countersigned entry of type ``cls`` in ``activity`` (a chain, oldest first)."""
    for signed in activity:
        action = signed.action
        if not isinstance(action, Create) or action.app_entry_type != session_type:
            continue
        entry = host.must_get_entry(action.created_entry)
        try:
            preflight = decode_as(CountersignedEntry, entry.payload).preflight
            if (preflight.entry_zome, preflight.entry_index) == (zome_index, entry_index(cls)):
                yield decode_as(cls, preflight.entry)
        except EncodingError as exc:
            raise Refused(f"an earlier countersigned record does not decode: {exc}") from exc


# ------------------------------------------------------------------------- who may trade


def trading_outcome(
    role: str, agent: AgentPubKey, activity: Sequence[SignedAction], host: IntegrityHost
) -> Outcome:
    """Whether ``agent`` (the ``role`` of a currency record on its own chain, ``activity``
    from genesis) may trade: an owner agent, or a device whose enrollment certificate's policy
    says ``may_trade``. Read from the proof its chain starts with, so every node agrees."""
    problem = chain_trade_problem(activity, agent, host.dna_properties)
    return Invalid(f"the {role} may not trade: {problem}") if problem else VALID


def _own_activity(op: Op, host: IntegrityHost, what: str) -> list[SignedAction]:
    """The author's chain before ``op``'s record (Unresolved while it is not here)."""
    action = op.action
    if action.prev is None:
        raise Refused(f"{what} is created after its author's chain head")
    return host.must_get_agent_activity(action.author, action.prev)


# ---------------------------------------------------------------------------- entry rules


def _period_problem(start_us: int, end_us: int, committed_at_us: int) -> str | None:
    if not 0 <= start_us < end_us:
        return "a period ends after it starts (µs, not negative)"
    if end_us - start_us > MAX_PERIOD_US:
        return "a claim covers at most 31 days"
    if end_us > committed_at_us:
        return "a claim covers a period that has ended when it is committed"
    return None


def source_problem(source: Source, clean: bool) -> str | None:
    if source in CLEAN_SOURCES and not clean:
        return f"{source} energy is clean"
    if source in DIRTY_SOURCES and clean:
        return f"{source} energy is not clean"
    return None


def generation_claim_problem(
    claim: GenerationClaim, author: AgentPubKey, committed_at_us: int, rules: CurrencyRules
) -> str | None:
    """Every rule a generation claim obeys without reading other records."""
    if not 0 < claim.energy_wh <= MAX_ENERGY_WH:
        return f"the claimed energy is an integer of Wh in [1, {MAX_ENERGY_WH}]"
    device_type = device_type_of(rules, author)
    if device_type is not None and device_type not in PRODUCERS:
        return f"a {device_type} does not claim generation (only {sorted(PRODUCERS)})"
    if len(claim.telemetry) > MAX_TELEMETRY_REFS or len(set(claim.telemetry)) != len(
        claim.telemetry
    ):
        return f"a claim cites at most {MAX_TELEMETRY_REFS} distinct reading batches"
    return (
        source_problem(claim.source, claim.clean)
        or zone_problem(claim.zone)
        or _period_problem(claim.start_us, claim.end_us, committed_at_us)
    )


def reduction_claim_problem(claim: ReductionClaim, committed_at_us: int) -> str | None:
    if not 0 < claim.avoided_wh <= MAX_ENERGY_WH:
        return f"the avoided energy is an integer of Wh in [1, {MAX_ENERGY_WH}]"
    for name in ("price_cents", "average_cents"):
        if abs(getattr(claim, name)) > MAX_PRICE_CENTS:
            return f"{name} is an integer of hundredths per MWh within ±{MAX_PRICE_CENTS}"
    return zone_problem(claim.zone) or _period_problem(
        claim.start_us, claim.end_us, committed_at_us
    )


def price_problem(price: PriceRecord, author: AgentPubKey, rules: CurrencyRules) -> str | None:
    if not is_oracle(rules, author):
        return "only a price oracle named in the DNA (currency.oracles) publishes prices"
    if not 0 <= price.start_us < price.end_us:
        return "a price's interval ends after it starts"
    if abs(price.price_cents) > MAX_PRICE_CENTS:
        return f"a price is an integer of hundredths per MWh within ±{MAX_PRICE_CENTS}"
    code = price.currency
    if not 0 < len(code) <= MAX_CURRENCY_CODE or not code.isascii() or not code.isupper():
        return "a price's currency is an upper-case code (e.g. AUD)"
    return zone_problem(price.zone)


def attestation_problem(attestation: ClaimAttestation) -> str | None:
    """The attestation's own fields (the cited claim is checked by :func:`check_attestation`)."""
    if attestation.level not in ATTESTED_LEVELS:
        return "an attestation is meter-attested or substation-attested"
    if not 0 < attestation.energy_wh <= MAX_ENERGY_WH:
        return f"the attested energy is an integer of Wh in [1, {MAX_ENERGY_WH}]"
    if not 0 < len(attestation.path) <= MAX_PATH:
        return f"a path has 1 to {MAX_PATH} zones, the claim's zone first"
    for zone in attestation.path:
        problem = zone_problem(zone)
        if problem:
            return f"bad path: {problem}"
    if not 0 <= attestation.fee_mc <= MAX_AMOUNT_MC:
        return f"fee_mc is an integer of milli-credits in [0, {MAX_AMOUNT_MC}]"
    if not 0 <= attestation.fee_pm <= MAX_FEE_PM:
        return f"fee_pm is an integer per mille in [0, {MAX_FEE_PM}]"
    return None


def check_generation_claim(
    claim: GenerationClaim, op: Op, host: IntegrityHost, rules: CurrencyRules
) -> Outcome:
    action = op.action
    problem = generation_claim_problem(claim, action.author, action.timestamp, rules)
    if problem:
        return Invalid(problem)
    outcome = trading_outcome("claimant", action.author, _own_activity(op, host, "a claim"), host)
    if not outcome:
        return outcome
    for batch in claim.telemetry:
        if host.must_get_action(batch).action.author != action.author:
            return Invalid("a claim cites only its own author's reading batches")
    return VALID


def check_reduction_claim(claim: ReductionClaim, op: Op, host: IntegrityHost) -> Outcome:
    """A reduction claim's own fields, by an agent that may trade (it asks to be paid)."""
    problem = reduction_claim_problem(claim, op.action.timestamp)
    if problem:
        return Invalid(problem)
    return trading_outcome("claimant", op.action.author, _own_activity(op, host, "a claim"), host)


def claimed_energy(
    host: IntegrityHost, claim_hash: ActionHash, zome_index: int
) -> tuple[SignedAction, GenerationClaim | ReductionClaim]:
    """The generation or reduction claim created by ``claim_hash``."""
    action = host.must_get_action(claim_hash).action
    cls: type[GenerationClaim] | type[ReductionClaim] = GenerationClaim
    if isinstance(action, Create) and action.app_entry_type == _app_entry_type(
        zome_index, ReductionClaim
    ):
        cls = ReductionClaim
    return cited(host, claim_hash, zome_index, cls, "claim")


def check_attestation(
    attestation: ClaimAttestation, op: Op, host: IntegrityHost, rules: CurrencyRules
) -> Outcome:
    """A distributor validator attests an existing claim by someone else, for at most the
    claimed energy, along a path starting at the claim's zone, once.

    Distributor validators are the agents the DNA names (device type distributor or monitor):
    they attest any claim. A **site meter** — a device enrolled with a ``monitor``
    certificate — attests only claims of devices enrolled by the same owner (keyset), as
    meter-attested and without fees: the household's meter vouching for the household's plug."""
    action = op.action
    own_type = action.entry_type
    if own_type is None or action.prev is None:
        return Invalid("an attestation is created after its author's chain head")
    problem = attestation_problem(attestation)
    if problem:
        return Invalid(problem)
    earlier = host.must_get_agent_activity(action.author, action.prev)
    named = is_attester(rules, action.author)
    site_meter = None if named else enrolled_certificate(earlier, action.author)
    if not named and (site_meter is None or site_meter.device_type != DeviceType.MONITOR):
        return Invalid(
            "only a distributor validator (device type distributor or monitor in the DNA) or a"
            " site meter (enrolled as a monitor) attests"
        )
    zome_index = own_type.zome_index
    claim_action, claim = claimed_energy(host, attestation.claim, zome_index)
    claimant = claim_action.action.author
    if claimant == action.author:
        return Invalid("a distributor does not attest its own claim")
    if site_meter is not None:
        if attestation.level is not Verification.METER_ATTESTED or (
            attestation.fee_mc or attestation.fee_pm
        ):
            return Invalid("a site meter's attestation is meter-attested and charges no fee")
        claimed_activity = host.must_get_agent_activity(claimant, attestation.claim)
        claimed_by = enrolled_certificate(claimed_activity, claimant)
        if claimed_by is None or claimed_by.keyset_id != site_meter.keyset_id:
            return Invalid("a site meter attests only claims of its own owner's devices")
    claimed = claim.energy_wh if isinstance(claim, GenerationClaim) else claim.avoided_wh
    if attestation.energy_wh > claimed:
        return Invalid(
            f"the attested energy {attestation.energy_wh} Wh exceeds the claim's {claimed} Wh"
        )
    if attestation.path[0] != claim.zone:
        return Invalid("the path starts at the claim's zone")
    own = _app_entry_type(zome_index, ClaimAttestation)
    for signed in earlier:
        before = signed.action
        if isinstance(before, Create) and before.app_entry_type == own:
            entry = host.must_get_entry(before.created_entry)
            if decode_as(ClaimAttestation, entry.payload).claim == attestation.claim:
                return Invalid("this distributor has already attested the claim")
    return VALID


def receipt_problem(
    receipt: ConsumptionReceipt,
    parties: Sequence[AgentPubKey],
    zome_index: int,
    host: IntegrityHost,
    rules: CurrencyRules,
) -> str | None:
    """Every rule of a receipt but the sold-out check: countersigned by exactly its
    distributor (the attester of the claim) and its consumer, for at most the attested energy
    of an existing generation claim."""
    if receipt.distributor == receipt.consumer or set(parties) != {
        receipt.distributor,
        receipt.consumer,
    }:
        return "the receipt's session parties are not exactly distributor and consumer"
    if not is_attester(rules, receipt.distributor):
        return "the receipt's distributor is not a distributor validator"
    if not 0 < receipt.energy_wh <= MAX_ENERGY_WH:
        return f"the delivered energy is an integer of Wh in [1, {MAX_ENERGY_WH}]"
    if not -PER_MILLE <= receipt.need_index <= PER_MILLE:
        return "the need index is an integer in [-1000, 1000]"
    problem = zone_problem(receipt.consumer_zone)
    if problem:
        return f"bad consumer zone: {problem}"
    attested_by, attestation = cited(
        host, receipt.attestation, zome_index, ClaimAttestation, "attestation"
    )
    if attested_by.action.author != receipt.distributor:
        return "the receipt's distributor did not make the attestation it cites"
    if attestation.claim != receipt.claim:
        return "the attestation is not of the receipt's claim"
    claimed_by, _ = cited(host, receipt.claim, zome_index, GenerationClaim, "generation claim")
    if claimed_by.action.author == receipt.consumer:
        return "a producer does not receive its own energy"
    if receipt.energy_wh > attestation.energy_wh:
        return "the delivered energy exceeds the attested energy"
    return None


def delivered_wh(
    receipt: ConsumptionReceipt,
    activity: Sequence[SignedAction],
    session_type: AppEntryType,
    zome_index: int,
    host: IntegrityHost,
) -> int:
    """The energy delivered against ``receipt``'s attestation by the receipts in
    ``activity`` (the distributor's chain before it) and ``receipt`` itself."""
    return receipt.energy_wh + sum(
        earlier.energy_wh
        for earlier in session_values(activity, session_type, zome_index, ConsumptionReceipt, host)
        if earlier.attestation == receipt.attestation
    )


def check_receipt(
    receipt: ConsumptionReceipt, op: Op, host: IntegrityHost, rules: CurrencyRules
) -> Outcome:
    """:func:`receipt_problem`; the author (either party, on its own record) may trade; and on
    the distributor's own record, all its receipts of one attestation together stay within the
    attested energy."""
    session = op.session
    if not isinstance(session, CountersignedEntry):
        return Invalid("a receipt is committed only countersigned by distributor and consumer")
    zome_index = session.preflight.entry_zome
    problem = receipt_problem(receipt, session.preflight.parties, zome_index, host, rules)
    if problem:
        return Invalid(problem)
    action = op.action
    activity = _own_activity(op, host, "a receipt")
    role = "distributor" if action.author == receipt.distributor else "consumer"
    outcome = trading_outcome(role, action.author, activity, host)
    if not outcome:
        return outcome
    if isinstance(action, Create) and action.author == receipt.distributor:
        _, attestation = cited(
            host, receipt.attestation, zome_index, ClaimAttestation, "attestation"
        )
        delivered = delivered_wh(receipt, activity, action.app_entry_type, zome_index, host)
        if delivered > attestation.energy_wh:
            return Invalid(
                f"the receipts of this attestation would deliver {delivered} Wh,"
                f" over the attested {attestation.energy_wh} Wh (the claim is sold out)"
            )
    return VALID


def check_price(price: PriceRecord, op: Op, rules: CurrencyRules) -> Outcome:
    problem = price_problem(price, op.action.author, rules)
    return Invalid(problem) if problem else VALID


def check_entry(value: object, op: Op, host: IntegrityHost, rules: CurrencyRules) -> Outcome:
    """The verdict on an issuance entry (claims, attestations, receipts, prices)."""
    if not isinstance(op.action, Create):
        return Invalid("issuance records are only ever created")
    try:
        if isinstance(value, GenerationClaim):
            return check_generation_claim(value, op, host, rules)
        if isinstance(value, ReductionClaim):
            return check_reduction_claim(value, op, host)
        if isinstance(value, ClaimAttestation):
            return check_attestation(value, op, host, rules)
        if isinstance(value, ConsumptionReceipt):
            return check_receipt(value, op, host, rules)
        if isinstance(value, PriceRecord):
            return check_price(value, op, rules)
    except Refused as exc:
        return Invalid(str(exc))
    return VALID


# ----------------------------------------------------------------- transfers that cite them


def _same_energy(provenance: Provenance, claim: GenerationClaim, level: Verification) -> bool:
    return (provenance.source, provenance.clean, provenance.origin_zone, provenance.trust) == (
        claim.source,
        claim.clean,
        claim.zone,
        level,
    )


def _trade_evidence(
    at: Citing, receipt_hash: ActionHash
) -> tuple[ConsumptionReceipt, SignedAction, ClaimAttestation, SignedAction, GenerationClaim]:
    """The receipt, its attestation (with its action) and the claim (with its action).

    A receipt is cited by its **consumer's own record** of it: the same countersigned entry is
    also on the distributor's chain under another action hash, and a second hash for one
    receipt would let it be settled (or rewarded) twice under "once per chain"."""
    receipt_by, _, receipt = cited_in_session(
        at.host,
        receipt_hash,
        session_type=at.session_type,
        zome_index=at.zome_index,
        cls=ConsumptionReceipt,
        what="consumption receipt",
    )
    if receipt_by.action.author != receipt.consumer:
        raise Refused("a receipt is cited by its consumer's own record of it")
    attested_by, attestation = cited(
        at.host, receipt.attestation, at.zome_index, ClaimAttestation, "attestation"
    )
    claimed_by, claim = cited(at.host, receipt.claim, at.zome_index, GenerationClaim, "claim")
    return receipt, attested_by, attestation, claimed_by, claim


def _trade_value(transfer: Transfer, at: Citing) -> int:
    provenance = transfer.provenance
    if provenance is None or provenance.claim is None or provenance.receipt is None:
        raise Refused(
            "a trade cites the attested claim and the consumption receipt it settles"
            " (provenance.claim and provenance.receipt)"
        )
    receipt, _, attestation, claimed_by, claim = _trade_evidence(at, provenance.receipt)
    if receipt.claim != provenance.claim:
        raise Refused("the receipt is not of the trade's claim")
    if receipt.consumer != transfer.spender.agent:
        raise Refused("the trade's spender is not the receipt's consumer")
    if claimed_by.action.author != transfer.receiver.agent:
        raise Refused("the trade's receiver is not the claim's producer")
    if provenance.energy_wh != receipt.energy_wh:
        raise Refused("the trade's energy is not the receipt's")
    if not _same_energy(provenance, claim, attestation.level):
        raise Refused(
            "the trade's provenance (source, clean, origin zone, trust) is not its claim's and"
            " attestation's"
        )
    terms = transfer.terms or Terms()
    try:
        return value_mc(
            provenance.energy_wh,
            factors(
                at.value_rules,
                clean=claim.clean,
                producer_zone=claim.zone,
                consumer_zone=receipt.consumer_zone,
                need_index=receipt.need_index,
                verification=attestation.level,
                reputation_pm=terms.reputation_pm,
            ),
        )
    except ValueError as exc:
        raise Refused(str(exc)) from exc


def _fee(transfer: Transfer, terms: Terms, at: Citing) -> int | None:
    if terms.cites is None:
        if terms.fee is not None:
            raise Refused(f"a {terms.fee} fee cites the trade it belongs to (terms.cites)")
        return None
    if terms.fee is None:
        raise Refused("a fee citing a trade says which fee it is (terms.fee)")
    trade_by, _, trade = cited_in_session(
        at.host,
        terms.cites,
        session_type=at.session_type,
        zome_index=at.zome_index,
        cls=Transfer,
        what="trade",
    )
    if trade.kind is not Kind.TRADE or trade.provenance is None:
        raise Refused("a fee cites a trade")
    if transfer.spender.agent not in (trade.spender.agent, trade.receiver.agent):
        raise Refused("a fee is paid by a party to the trade it cites")
    if trade_by.action.author != transfer.spender.agent:
        # one hash per trade and payer, or "once per chain" could be dodged with the copy
        raise Refused("a fee cites its payer's own record of the trade")
    rules = at.rules
    if terms.fee is FeeKind.MARKET:
        pm = rules.market_fee_pm
        return None if pm is None else trade.amount_mc * pm // PER_MILLE
    if terms.fee is FeeKind.APP:
        pm = rules.app_fee_pm
        return None if pm is None else trade.amount_mc * pm // PER_MILLE
    if trade.provenance.receipt is None:
        raise Refused("the cited trade has no receipt")
    receipt, attested_by, attestation, _, claim = _trade_evidence(at, trade.provenance.receipt)
    if terms.fee is FeeKind.DISTRIBUTOR:
        if transfer.receiver.agent != attested_by.action.author:
            raise Refused("a distributor fee is paid to the distributor that attested the claim")
        return attestation.fee_mc + trade.amount_mc * attestation.fee_pm // PER_MILLE
    if not is_attester(rules, transfer.receiver.agent):
        raise Refused("a boundary fee is paid to a distributor")
    crossed = boundaries_crossed(claim.zone, receipt.consumer_zone)
    return trade.amount_mc * crossed * rules.boundary_fee_pm // PER_MILLE


def _reduction_reward(transfer: Transfer, cites: ActionHash, at: Citing) -> int:
    provenance = transfer.provenance
    assert provenance is not None
    _, attestation = cited(at.host, cites, at.zome_index, ClaimAttestation, "attestation")
    claimed_by, reduction = cited(
        at.host, attestation.claim, at.zome_index, ReductionClaim, "reduction claim"
    )
    if claimed_by.action.author != transfer.receiver.agent:
        raise Refused("a demand reduction reward is paid to the device that reduced")
    if (
        provenance.energy_wh,
        provenance.clean,
        provenance.origin_zone,
        provenance.trust,
        provenance.claim,
    ) != (attestation.energy_wh, True, reduction.zone, attestation.level, attestation.claim):
        raise Refused(
            "the reward's provenance is not the attested reduction (energy, clean, zone,"
            " trust, claim)"
        )
    return demand_reduction_reward_mc(
        at.value_rules,
        avoided_wh=attestation.energy_wh,
        need_index=need_index_from_cents(reduction.price_cents, reduction.average_cents),
        verification=attestation.level,
        zone=reduction.zone,
    )


def _reward(transfer: Transfer, terms: Terms, at: Citing) -> int:
    provenance = transfer.provenance
    if terms.reward is None or terms.cites is None or provenance is None:
        raise Refused("a reward says which reward it is and cites its basis (terms)")
    if terms.reward is RewardKind.DEMAND_REDUCTION:
        return _reduction_reward(transfer, terms.cites, at)
    receipt, _, attestation, claimed_by, claim = _trade_evidence(at, terms.cites)
    if (
        provenance.energy_wh != receipt.energy_wh
        or provenance.claim != receipt.claim
        or provenance.receipt != terms.cites
        or not _same_energy(provenance, claim, attestation.level)
    ):
        raise Refused("the reward's provenance is not the receipt's energy")
    receiver = transfer.receiver.agent
    if terms.reward is RewardKind.CLEAN_CONSUMPTION:
        if receiver != receipt.consumer:
            raise Refused("a clean consumption reward is paid to the receipt's consumer")
        if not claim.clean:
            raise Refused("a clean consumption reward is for clean energy")
        return receipt.energy_wh * at.rules.clean_consumption_pm // PER_MILLE
    if receiver != claimed_by.action.author:
        raise Refused("a storage release reward is paid to the storer")
    if claim.source is not Source.BATTERY or receipt.need_index <= 0:
        raise Refused("a storage release reward is for a battery's energy where it was needed")
    return receipt.energy_wh * at.rules.storage_release_pm * receipt.need_index // PER_MILLE**2


def _cash(transfer: Transfer, terms: Terms, at: Citing) -> int:
    if terms.cites is None:
        raise Refused(f"a {transfer.kind} cites an oracle's price record (terms.cites)")
    priced_by, price = cited(at.host, terms.cites, at.zome_index, PriceRecord, "price record")
    if not is_oracle(at.rules, priced_by.action.author):
        raise Refused("the price record is not by an oracle named in the DNA")
    if not price.start_us <= at.at_us < price.end_us:
        raise Refused("the transfer's session time is outside the price's interval")
    if price.price_cents <= 0:
        raise Refused("no cash in or out at a price of zero or below")
    if not 0 < terms.money_cents <= MAX_MONEY_CENTS:
        raise Refused(f"money_cents is an integer in [1, {MAX_MONEY_CENTS}]")
    return cash_mc(terms.money_cents, price.price_cents)


def cash_mc(money_cents: int, price_cents: int) -> int:
    """The credits for ``money_cents`` at ``price_cents`` per MWh (1 MWh = 10^6 mc at par),
    rounded down: what a cash-in issues and what a cash-out hands back."""
    return money_cents * MC_PER_MWH // price_cents


def expected_amount(transfer: Transfer, at: Citing) -> int | None:
    """The amount the rules fix for ``transfer`` from what it cites (None: its amount is
    free, as for a plain transfer or donation). Raises :class:`Refused` when what it cites
    does not back it; lets ``UnresolvedDependency`` through when a cited record is missing."""
    terms = transfer.terms or Terms()
    kind = transfer.kind
    if kind is Kind.TRADE:
        return _trade_value(transfer, at)
    if kind is Kind.FEE:
        return _fee(transfer, terms, at)
    if kind is Kind.REWARD:
        return _reward(transfer, terms, at)
    if kind in (Kind.CASH_IN, Kind.CASH_OUT):
        return _cash(transfer, terms, at)
    return None


def settlement_key(transfer: Transfer) -> tuple[str, ...] | None:
    """What a transfer settles that may be settled only once per chain: a trade its receipt,
    a fee or a reward (of one kind) its cited record. None for everything else."""
    terms = transfer.terms
    if transfer.kind is Kind.TRADE and transfer.provenance is not None:
        receipt = transfer.provenance.receipt
        return None if receipt is None else ("trade", receipt.to_text())
    if terms is None or terms.cites is None:
        return None
    if transfer.kind is Kind.FEE:
        return ("fee", str(terms.fee), terms.cites.to_text())
    if transfer.kind is Kind.REWARD:
        return ("reward", str(terms.reward), terms.cites.to_text())
    return None
