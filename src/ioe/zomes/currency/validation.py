"""Integrity rules of the currency zome (pure: no clock, no I/O).

A :class:`~ioe.zomes.currency.entries.Transfer` is valid only as the app entry of a
countersigning session, committed on both chains. Each party's committing record is judged with
the app value (``op.app_entry``) and the session (``op.session``):

1. on its own (:func:`transfer_problem`): a positive amount, two different agents, the kind's
   rules, a consistent provenance, both parties' balances following from their previous
   balances by exactly the amount, and the spender not below its credit limit;
2. against the session (:func:`session_problem`): its parties are exactly spender and receiver;
3. against the author's own chain (:func:`chain_outcome`): the author may trade (an owner
   agent, or a device whose enrollment certificate's policy says ``may_trade``: an unenrolled
   or ``--no-trade`` device never pays nor is paid); the author's "previous transfer" is
   its latest transfer before this record (walked back through its agent activity; Unresolved
   while that is missing), and its previous balance is that transfer's resulting balance for it.
   So a replayed transfer, a stale state or a made-up balance are refused.

Both parties' records carry the same entry, so each side's chain rule is judged on that side's
record, and every other rule on both.

4. against what it cites (:func:`ioe.zomes.currency.issuance.expected_amount`): a trade, a fee,
   a reward, a cash-in or cash-out pays exactly what its cited records (receipt, attestation,
   claim, price) and the DNA's rules give; and (:func:`settled_outcome`) the author's chain has
   not settled the same receipt, or paid the same fee or reward, before.

The issuance records (claims, attestations, receipts, prices) are judged by
:func:`ioe.zomes.currency.issuance.check_entry`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ioe.engine.countersigning import CountersignedEntry
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import AppEntryType, Create, EntryKind, SignedAction
from ioe.engine.schema import decode_as
from ioe.engine.zome import IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.zomes.currency import issuance
from ioe.zomes.currency.entries import (
    CLEAN_SOURCES,
    DIRTY_SOURCES,
    ENTRY_DEFS,
    MAX_AMOUNT_MC,
    MAX_MEMO,
    PROVENANCE_REQUIRED,
    ClaimAttestation,
    ConsumptionReceipt,
    GenerationClaim,
    Kind,
    PriceRecord,
    Provenance,
    ReductionClaim,
    Terms,
    Transfer,
)
from ioe.zomes.currency.ledger import (
    POOL,
    RESERVE,
    START,
    CurrencyRules,
    after,
    device_type_of,
    follows,
    limit_problem,
    party_problem,
)
from ioe.zomes.currency.value import MAX_ENERGY_WH, PER_MILLE, ValueRules
from ioe.zones import zone_problem

CURRENCY_ZOME = "currency"
ISSUANCE_TYPES = (
    GenerationClaim,
    ReductionClaim,
    ClaimAttestation,
    ConsumptionReceipt,
    PriceRecord,
)
MAX_REPUTATION_PM = 10 * PER_MILLE


def validate(op: Op, host: IntegrityHost) -> Outcome:
    value = op.app_entry
    if op.type not in (OpType.STORE_RECORD, OpType.STORE_ENTRY):
        return VALID
    if not isinstance(value, (Transfer, *ISSUANCE_TYPES)):
        return VALID
    try:
        rules = CurrencyRules.from_properties(host.dna_properties)
    except ValueError as exc:
        return Invalid(str(exc))
    if not isinstance(value, Transfer):
        return issuance.check_entry(value, op, host, rules)
    transfer = value
    session = op.session
    if not isinstance(session, CountersignedEntry):
        return Invalid("a transfer is committed only countersigned by its spender and receiver")
    problem = transfer_problem(transfer, rules) or session_problem(transfer, session)
    if problem:
        return Invalid(problem)
    outcome = cited_outcome(transfer, session, op.signed_action, host, rules)
    if not outcome:
        return outcome
    outcome = chain_outcome(transfer, session, op.signed_action, host)
    if not outcome:
        return outcome
    return settled_outcome(transfer, session, op.signed_action, host)


def cited_outcome(
    transfer: Transfer,
    session: CountersignedEntry,
    signed: SignedAction,
    host: IntegrityHost,
    rules: CurrencyRules,
) -> Outcome:
    """The amount is what the cited records and the rules give (when they fix it)."""
    action = signed.action
    if not isinstance(action, Create):
        return Invalid("a transfer is only ever created")
    try:
        value_rules = ValueRules.from_properties(host.dna_properties)
        at = issuance.Citing(
            host,
            action.app_entry_type,
            session.preflight.entry_zome,
            rules,
            value_rules,
            session.preflight.session_time_us,
        )
        expected = issuance.expected_amount(transfer, at)
    except (issuance.Refused, ValueError) as exc:
        return Invalid(str(exc))
    if expected is not None and transfer.amount_mc != expected:
        return Invalid(
            f"the {transfer.kind}'s amount {transfer.amount_mc} mc is not what the rules give"
            f" ({expected} mc)"
        )
    return VALID


def settled_outcome(
    transfer: Transfer, session: CountersignedEntry, signed: SignedAction, host: IntegrityHost
) -> Outcome:
    """The author's chain has not settled what this transfer settles (its receipt, its fee,
    its reward) before: the whole chain is read, so only transfers that cite are checked."""
    key = issuance.settlement_key(transfer)
    action = signed.action
    if key is None or not isinstance(action, Create) or action.prev is None:
        return VALID
    activity = host.must_get_agent_activity(action.author, action.prev)
    preflight = session.preflight
    try:
        for earlier in issuance.session_values(
            activity, action.app_entry_type, preflight.entry_zome, Transfer, host
        ):
            if issuance.settlement_key(earlier) == key:
                return Invalid(f"this chain has already settled this {key[0]}")
    except issuance.Refused as exc:
        return Invalid(str(exc))
    return VALID


def provenance_problem(provenance: Provenance, kind: Kind) -> str | None:
    if not 0 <= provenance.energy_wh <= MAX_ENERGY_WH:
        return f"the energy is an integer of Wh in [0, {MAX_ENERGY_WH}]"
    if kind in PROVENANCE_REQUIRED and provenance.energy_wh == 0:
        return f"a {kind} pays for some energy (energy_wh > 0)"
    if provenance.source in CLEAN_SOURCES and not provenance.clean:
        return f"{provenance.source} energy is clean"
    if provenance.source in DIRTY_SOURCES and provenance.clean:
        return f"{provenance.source} energy is not clean"
    return zone_problem(provenance.origin_zone)


def transfer_problem(transfer: Transfer, rules: CurrencyRules) -> str | None:
    """Every rule a transfer obeys on its own (no chain, no session), or None."""
    if not 0 < transfer.amount_mc <= MAX_AMOUNT_MC:
        return f"the amount is an integer of milli-credits in [1, {MAX_AMOUNT_MC}]"
    spender, receiver = transfer.spender, transfer.receiver
    if spender.agent == receiver.agent:
        return "an agent cannot pay itself"
    if len(transfer.memo) > MAX_MEMO:
        return f"a memo has at most {MAX_MEMO} characters"
    kind = transfer.kind
    if transfer.provenance is None:
        if kind in PROVENANCE_REQUIRED:
            return f"a {kind} carries the provenance of its energy"
    else:
        problem = provenance_problem(transfer.provenance, kind)
        if problem:
            return f"bad provenance: {problem}"
    if kind is Kind.CASH_IN and device_type_of(rules, spender.agent) != RESERVE:
        return "only a reserve account pays out cash_in"
    if kind is Kind.CASH_OUT and device_type_of(rules, receiver.agent) != RESERVE:
        return "only a reserve account receives cash_out"
    if kind is not Kind.REWARD and device_type_of(rules, spender.agent) == POOL:
        return "a subsidy pool pays out only rewards"
    problem = terms_problem(transfer.terms)
    if problem:
        return f"bad terms: {problem}"
    for role, party, delta in (
        ("spender", spender, -transfer.amount_mc),
        ("receiver", receiver, transfer.amount_mc),
    ):
        problem = party_problem(party, delta)
        if problem:
            return f"the {role}: {problem}"
    return limit_problem(rules, transfer)


def terms_problem(terms: Terms | None) -> str | None:
    if terms is None:
        return None
    if not 0 <= terms.reputation_pm <= MAX_REPUTATION_PM:
        return f"reputation_pm is an integer per mille in [0, {MAX_REPUTATION_PM}]"
    if terms.money_cents < 0:
        return "money_cents is not negative"
    return None


def session_problem(transfer: Transfer, session: CountersignedEntry) -> str | None:
    """The session's parties are exactly the spender and the receiver (in either order)."""
    parties = session.preflight.parties
    if len(parties) != 2 or set(parties) != {transfer.spender.agent, transfer.receiver.agent}:
        return "the session's parties are not exactly the spender and the receiver"
    return None


class _Corrupt(Exception):
    """A transfer record on the chain that cannot be read (its chain is invalid)."""


def latest_transfer(
    activity: Sequence[SignedAction],
    session_type: AppEntryType,
    transfer_type: tuple[int, int],
    host: IntegrityHost,
) -> tuple[ActionHash, Transfer] | None:
    """The last transfer record in ``activity`` (a chain, oldest first), or None.

    A transfer record is a ``Create`` of a countersigned entry (``session_type``) whose app
    entry is of ``transfer_type`` (zome index, entry index). Only the records after the latest
    transfer are looked at."""
    for signed in reversed(activity):
        action = signed.action
        if not isinstance(action, Create) or action.app_entry_type != session_type:
            continue
        entry = host.must_get_entry(action.created_entry)
        if entry.kind is not EntryKind.APP:
            raise _Corrupt("a countersigned record without an app entry")
        try:
            session = decode_as(CountersignedEntry, entry.payload)
            preflight = session.preflight
            if (preflight.entry_zome, preflight.entry_index) != transfer_type:
                continue
            return signed.hash, decode_as(Transfer, preflight.entry)
        except EncodingError as exc:
            raise _Corrupt(f"an earlier countersigned record does not decode: {exc}") from exc
    return None


def chain_outcome(
    transfer: Transfer, session: CountersignedEntry, signed: SignedAction, host: IntegrityHost
) -> Outcome:
    """The author's side follows its own chain: its chain starts with a membership that lets
    it trade, and its latest transfer before this record and the balance after it lead here."""
    action = signed.action
    party = transfer.party(action.author)
    if party is None:
        return Invalid("the author is neither the spender nor the receiver")
    if not isinstance(action, Create) or action.prev is None:
        return Invalid("a transfer is created after its author's chain head")
    activity = host.must_get_agent_activity(action.author, action.prev)
    role = "spender" if action.author == transfer.spender.agent else "receiver"
    outcome = issuance.trading_outcome(role, action.author, activity, host)
    if not outcome:
        return outcome
    preflight = session.preflight
    try:
        latest = latest_transfer(
            activity,
            action.app_entry_type,
            (preflight.entry_zome, preflight.entry_index),
            host,
        )
    except _Corrupt as exc:
        return Invalid(str(exc))
    position = START
    if latest is not None:
        previous_hash, previous = latest
        if previous.party(action.author) is None:
            return Invalid("the author's previous transfer record does not name it")
        position = after(previous_hash, previous, action.author)
    problem = follows(position, party)
    if problem:
        return Invalid(problem)
    return VALID


integrity = IntegrityZome(
    name=CURRENCY_ZOME,
    # 3: site meters (monitor certificates) attest their owner's devices' claims. A change of
    # what validation accepts is a new network: nodes on other rules would warrant each other.
    # 4: a party carries what it has earned, and history raises the credit limit.
    # 5: whoever pays, is paid, claims or takes part in a receipt may trade (its certificate's
    # policy, read from the start of its chain; owner agents may).
    version="5",
    entry_defs=ENTRY_DEFS,
    validate=validate,
)
