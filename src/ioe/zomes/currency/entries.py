"""Entry types of the currency zome: the countersigned :class:`Transfer` and its provenance,
and the records that back value (issuance): generation and reduction claims, distributors'
attestations, consumption receipts and oracle prices.

Amounts and balances are integer milli-credits (``_mc``); 1 credit is 1 kWh at par (see
:mod:`ioe.zomes.currency.value`). A transfer is only ever committed as the app entry of a
countersigning session of its spender and its receiver, so the same entry sits on both chains;
so is a consumption receipt (distributor and consumer). Claims, attestations and prices are
plain entries on their author's chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ioe.engine.records import Visibility
from ioe.engine.zome import EntryDef
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.value import Verification

MAX_AMOUNT_MC = 10**15
"""One transfer moves at most a trillion credits (keeps every balance far inside 64 bits)."""
MAX_MEMO = 256


class Kind(StrEnum):
    """Why credit moves."""

    TRADE = "trade"
    """Energy bought and sold: the spender consumed what the receiver supplied."""
    FEE = "fee"
    """A distributor's token tax, a market's matching fee, an app developer's fee."""
    REWARD = "reward"
    """For clean consumption, storage released when needed, demand reduction at peaks."""
    CASH_IN = "cash_in"
    """A reserve account issues credit against money paid in (the spender is the reserve)."""
    CASH_OUT = "cash_out"
    """Credit handed back to a reserve account for money paid out (the receiver is the reserve)."""
    DONATION = "donation"
    TRANSFER = "transfer"
    """Plain credit between agents."""


PROVENANCE_REQUIRED = frozenset({Kind.TRADE, Kind.REWARD})
"""Kinds that pay for energy and must say which energy: they carry a provenance with energy."""


class Source(StrEnum):
    SOLAR = "solar"
    WIND = "wind"
    HYDRO = "hydro"
    BATTERY = "battery"
    GAS = "gas"
    COAL = "coal"
    GRID_MIX = "grid_mix"


CLEAN_SOURCES = frozenset({Source.SOLAR, Source.WIND, Source.HYDRO})
DIRTY_SOURCES = frozenset({Source.GAS, Source.COAL})
DECLARED_SOURCES = frozenset({Source.BATTERY, Source.GRID_MIX})
"""Sources whose cleanliness is declared (what charged the battery, the mix of the grid)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where the energy a transfer pays for came from, so a consumer can see if it was clean.

    ``clean`` follows from ``source`` (solar, wind, hydro are clean; gas, coal are not); for a
    battery or the grid mix it is declared. ``trust`` is how well the energy is verified.
    ``claim`` and ``receipt`` are the action hashes of the generation claim and the consumption
    receipt the transfer settles, when there are such records.
    """

    energy_wh: int
    source: Source
    clean: bool
    origin_zone: str
    trust: Verification
    claim: ActionHash | None = None
    receipt: ActionHash | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """One side of a transfer: its agent, the action hash of its previous transfer record on
    its own chain (None for its first), its balance before and after this transfer, and what
    it had earned before this transfer (its **history**: the sum of the backed trades, rewards
    and fees it received, which raises its credit limit; see ``Transfer.earned_by`` and
    :func:`ledger.credit_limit_mc`)."""

    agent: AgentPubKey
    previous: ActionHash | None
    previous_balance_mc: int
    balance_mc: int
    earned_mc: int = 0


class FeeKind(StrEnum):
    """Which fee a ``fee`` transfer is (each has its own rule, see ``docs/currency.md``)."""

    DISTRIBUTOR = "distributor"
    """The attesting distributor's token tax: its attestation's fee rule on the trade."""
    BOUNDARY = "boundary"
    """Value crossing zone boundaries: the DNA's rate per boundary crossed."""
    MARKET = "market"
    """The market's matching fee (the DNA's rate, when it sets one)."""
    APP = "app"
    """The app developer's fee (the DNA's rate, when it sets one)."""


class RewardKind(StrEnum):
    CLEAN_CONSUMPTION = "clean_consumption"
    """For consuming clean energy: cites the consumption receipt."""
    STORAGE_RELEASE = "storage_release"
    """For storage released while the consumer's zone needed it: cites the receipt."""
    DEMAND_REDUCTION = "demand_reduction"
    """For demand avoided at a price peak: cites the attestation of a reduction claim."""


@dataclass(frozen=True, slots=True)
class Terms:
    """What a transfer cites and the inputs validation needs to recompute its amount.

    - ``trade``: ``reputation_pm`` (the consumer's demand-response multiplier; the consumer
      zone and need index come from the receipt);
    - ``fee``: ``fee`` (which fee) and ``cites`` (the trade's action hash, on either chain);
    - ``reward``: ``reward`` (which reward) and ``cites`` (its basis: a consumption receipt,
      or the attestation of a reduction claim);
    - ``cash_in`` / ``cash_out``: ``cites`` (an oracle's price record) and ``money_cents``
      (the money paid in or out, in hundredths of the price's currency).
    """

    cites: ActionHash | None = None
    fee: FeeKind | None = None
    reward: RewardKind | None = None
    reputation_pm: int = 1000
    money_cents: int = 0


@dataclass(frozen=True, slots=True)
class Transfer:
    """``amount_mc`` moves from the spender to the receiver; both countersign it."""

    amount_mc: int
    kind: Kind
    spender: Party
    receiver: Party
    provenance: Provenance | None = None
    memo: str = ""
    terms: Terms | None = None

    def party(self, agent: AgentPubKey) -> Party | None:
        if agent == self.spender.agent:
            return self.spender
        if agent == self.receiver.agent:
            return self.receiver
        return None

    def delta_mc(self, agent: AgentPubKey) -> int:
        """How this transfer changes ``agent``'s balance (0 if it is not a party)."""
        if agent == self.spender.agent:
            return -self.amount_mc
        if agent == self.receiver.agent:
            return self.amount_mc
        return 0

    @property
    def backed(self) -> bool:
        """Whether the amount is backed by verified energy or work: a trade settling a
        consumption receipt, or a fee or reward citing its basis (the rules then fix the
        amount from what is cited). Plain transfers, donations, uncited fees and cash are
        not."""
        if self.kind is Kind.TRADE:
            return self.provenance is not None and self.provenance.receipt is not None
        if self.kind in (Kind.FEE, Kind.REWARD):
            return self.terms is not None and self.terms.cites is not None
        return False

    def earned_by(self, agent: AgentPubKey) -> int:
        """What this transfer adds to ``agent``'s history (what it has **earned**): the
        amount, when ``agent`` receives a backed transfer; else 0. So history cannot be made
        by plain transfers between friends."""
        if agent == self.receiver.agent and self.backed:
            return self.amount_mc
        return 0

    def counterparty(self, agent: AgentPubKey) -> AgentPubKey:
        return self.receiver.agent if agent == self.spender.agent else self.spender.agent


# --------------------------------------------------------------------------------- issuance

MAX_PERIOD_US = 31 * 86_400 * 1_000_000
"""A claim covers at most 31 days."""
MAX_TELEMETRY_REFS = 64
MAX_PATH = 16
MAX_FEE_PM = 1000
MAX_PRICE_CENTS = 10**9
"""Prices per MWh are at most 10 million (in hundredths); markets cap far below."""
MAX_MONEY_CENTS = 10**12


@dataclass(frozen=True, slots=True)
class GenerationClaim:
    """Energy its author (a generator, or a storer releasing energy) exported over a period,
    from its metered readings. Only an attested claim backs value."""

    energy_wh: int
    source: Source
    clean: bool
    zone: str
    start_us: int
    end_us: int
    telemetry: tuple[ActionHash, ...] = ()
    """The author's own reading batches (telemetry zome) behind the claim, if any."""


@dataclass(frozen=True, slots=True)
class ReductionClaim:
    """Energy its author (a consuming device) did not draw over a period at a price peak.

    ``price_cents`` and ``average_cents`` are the zone's market price per MWh at the time and
    its average, in integer hundredths; they give the need index of the reward."""

    avoided_wh: int
    zone: str
    start_us: int
    end_us: int
    price_cents: int
    average_cents: int


@dataclass(frozen=True, slots=True)
class ClaimAttestation:
    """A distributor validator (a meter, a substation) vouches for a claim on its own chain.

    ``energy_wh`` is what it measured (at most what was claimed), ``level`` how
    (meter- or substation-attested), ``path`` the zones the energy takes from the producer,
    the claim's zone first. Its token tax on each trade of this energy is
    ``fee_mc + trade × fee_pm / 1000`` (rounded down)."""

    claim: ActionHash
    energy_wh: int
    level: Verification
    path: tuple[str, ...]
    fee_mc: int = 0
    fee_pm: int = 0


@dataclass(frozen=True, slots=True)
class ConsumptionReceipt:
    """Energy of an attested claim delivered to a consumer, countersigned by the distributor
    that attested the claim and the consumer. It closes a trade and gives the value's
    consumer-side inputs: the consumer's zone and that zone's need index at delivery."""

    claim: ActionHash
    attestation: ActionHash
    distributor: AgentPubKey
    consumer: AgentPubKey
    energy_wh: int
    consumer_zone: str
    need_index: int = 0


@dataclass(frozen=True, slots=True)
class PriceRecord:
    """A price oracle's signed price for a zone over an interval, per MWh in hundredths."""

    zone: str
    start_us: int
    end_us: int
    price_cents: int
    currency: str = "AUD"


ENTRY_DEFS = (
    EntryDef("transfer", Transfer, Visibility.PUBLIC),
    EntryDef("generation_claim", GenerationClaim, Visibility.PUBLIC),
    EntryDef("reduction_claim", ReductionClaim, Visibility.PUBLIC),
    EntryDef("claim_attestation", ClaimAttestation, Visibility.PUBLIC),
    EntryDef("consumption_receipt", ConsumptionReceipt, Visibility.PUBLIC),
    EntryDef("price_record", PriceRecord, Visibility.PUBLIC),
)
"""The currency zome's entry types, in their (hashed) order: new types go at the end."""


def entry_index(cls: type) -> int:
    """The index of ``cls`` among :data:`ENTRY_DEFS`."""
    return next(i for i, entry_def in enumerate(ENTRY_DEFS) if entry_def.cls is cls)
