"""Entry types of the currency zome: the countersigned :class:`Transfer` and its provenance.

Amounts and balances are integer milli-credits (``_mc``); 1 credit is 1 kWh at par (see
:mod:`ioe.zomes.currency.value`). A transfer is only ever committed as the app entry of a
countersigning session of its spender and its receiver, so the same entry sits on both chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
    its own chain (None for its first), its balance before and after this transfer."""

    agent: AgentPubKey
    previous: ActionHash | None
    previous_balance_mc: int
    balance_mc: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """``amount_mc`` moves from the spender to the receiver; both countersign it."""

    amount_mc: int
    kind: Kind
    spender: Party
    receiver: Party
    provenance: Provenance | None = None
    memo: str = ""

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

    def counterparty(self, agent: AgentPubKey) -> AgentPubKey:
        return self.receiver.agent if agent == self.spender.agent else self.spender.agent
