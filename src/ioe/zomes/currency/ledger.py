"""The ledger's pure core: currency settings, credit limits, balances (no I/O, no clock).

Mutual credit: every agent starts at 0; a transfer lowers the spender's balance and raises the
receiver's by the same amount, so balances always sum to zero. An agent may go negative down to
its **credit limit**, which comes from the DNA's rules (HoloFuel-style: by the kind of device the
agent is, with a default, raised by its **history**: a share of what it has earned in trades,
rewards and fees, carried forward transfer by transfer like its balance). Validation
(:mod:`ioe.zomes.currency.validation`) and the zome functions (:mod:`ioe.zomes.currency.api`)
both build on these functions.

DNA properties, all optional (defaults in brackets)::

    currency:
      name: "Community Power Credit"
      symbol: "CPC"
      credit_limits:
        default_mc: 100000                 # 100 credits
        by_device_type: {storage: 200000, reserve: 0}
        history_pm: 250                    # + this share of what the agent has earned ...
        history_max_mc: 400000             # ... up to this much (400 credits)
      device_types: {<agent key text>: <device type>}
      oracles: [<agent key text>, ...]     # price oracles ([])
      fees: {boundary_pm: 0, market_pm: null, app_pm: null}
      rewards: {clean_consumption_pm: 50, storage_release_pm: 100}

``by_device_type`` is merged over the built-in table. ``device_types`` names each agent's
device type for now; the identity zome (enrollment certificates) will supply it next.
``reserve`` marks reserve accounts, the only agents that may pay out ``cash_in`` or receive
``cash_out``; give them a limit to let them issue credit. ``distributor`` and ``monitor``
mark the distributor validators that may attest claims and sign consumption receipts.
``pool`` marks subsidy pools: no credit (they pay out what contributors paid in), and they
spend only on rewards. ``oracles`` are the agents whose price records set cash-in and
cash-out rates. Fee and reward rates are per mille (see ``docs/currency.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ioe.encoding import Value
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.entries import MAX_AMOUNT_MC, Kind, Party, Provenance, Terms, Transfer

CURRENCY_PROPERTY = "currency"
DEFAULT_NAME = "Community Power Credit"
DEFAULT_SYMBOL = "CPC"
MC_PER_CREDIT = 1000
DEFAULT_LIMIT_MC = 100 * MC_PER_CREDIT
RESERVE = "reserve"
"""The device type of a reserve account (cash in / cash out)."""
POOL = "pool"
"""The device type of a subsidy pool (funded by contributions, pays rewards)."""
ATTESTERS = frozenset({"distributor", "monitor"})
"""Device types of distributor validators: they attest claims and sign receipts."""
PRODUCERS = frozenset({"generator", "storage"})
"""Device types that may claim generation (an agent with no device type named may too)."""
DEFAULT_LIMITS_BY_DEVICE_TYPE: Mapping[str, int] = MappingProxyType(
    {"storage": 200 * MC_PER_CREDIT, RESERVE: 0, POOL: 0}
)
DEFAULT_HISTORY_PM = 250
DEFAULT_HISTORY_MAX_MC = 400 * MC_PER_CREDIT
NO_HISTORY = frozenset({RESERVE, POOL})
"""Device types whose limit history does not raise: reserves issue credit only against money,
and pools pay out only what was paid in."""
DEFAULT_CLEAN_CONSUMPTION_PM = 50
DEFAULT_STORAGE_RELEASE_PM = 100
MAX_RATE_PM = 1000
PER_MILLE = 1000
MAX_ORACLES = 64
MAX_LIMIT_MC = 10**15
MAX_NAME = 64
MAX_SYMBOL = 8
MAX_DEVICE_TYPE = 32
_KNOWN = frozenset(
    {"name", "symbol", "credit_limits", "device_types", "oracles", "fees", "rewards"}
)
_KNOWN_LIMITS = frozenset({"default_mc", "by_device_type", "history_pm", "history_max_mc"})
_KNOWN_FEES = frozenset({"boundary_pm", "market_pm", "app_pm"})
_KNOWN_REWARDS = frozenset({"clean_consumption_pm", "storage_release_pm"})


def _text(value: object, what: str, longest: int) -> str:
    if type(value) is not str or not 0 < len(value) <= longest or value != value.strip():
        raise ValueError(f"currency: {what} is text of 1 to {longest} characters")
    return value


def _limit(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_LIMIT_MC:
        raise ValueError(f"currency: {what} is an integer of milli-credits in [0, {MAX_LIMIT_MC}]")
    return value


def _map(value: object, what: str) -> dict[str, Value]:
    if not isinstance(value, dict):
        raise ValueError(f"currency: {what} is a map")
    return value


def _rate(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_RATE_PM:
        raise ValueError(f"currency: {what} is an integer per mille in [0, {MAX_RATE_PM}]")
    return value


def _section(given: Mapping[str, Value], name: str, known: frozenset[str]) -> dict[str, Value]:
    section = _map(given.get(name, {}), name)
    unknown = set(section) - known
    if unknown:
        raise ValueError(f"currency: unknown {name} settings {sorted(unknown)}")
    return section


@dataclass(frozen=True, slots=True)
class CurrencyRules:
    """The currency's settings, from the DNA properties."""

    name: str = DEFAULT_NAME
    symbol: str = DEFAULT_SYMBOL
    default_limit_mc: int = DEFAULT_LIMIT_MC
    limits_by_device_type: Mapping[str, int] = field(
        default_factory=lambda: DEFAULT_LIMITS_BY_DEVICE_TYPE
    )
    history_pm: int = DEFAULT_HISTORY_PM
    """Per mille of what an agent has earned that is added to its limit."""
    history_max_mc: int = DEFAULT_HISTORY_MAX_MC
    """The most history adds to a limit."""
    device_types: Mapping[str, str] = field(default_factory=dict)
    """Agent key text → device type (until identity supplies it)."""
    oracles: frozenset[str] = frozenset()
    """Agent key texts of the price oracles."""
    boundary_fee_pm: int = 0
    """Per zone boundary crossed, per mille of the trade's amount."""
    market_fee_pm: int | None = None
    """The market's matching fee, per mille of the trade (None: not fixed by the DNA)."""
    app_fee_pm: int | None = None
    """The app developer's fee, per mille of the trade (None: not fixed by the DNA)."""
    clean_consumption_pm: int = DEFAULT_CLEAN_CONSUMPTION_PM
    """Reward per Wh of clean energy consumed, per mille of a milli-credit."""
    storage_release_pm: int = DEFAULT_STORAGE_RELEASE_PM
    """Reward per Wh of storage released, per mille of a milli-credit at full need."""

    @classmethod
    def from_properties(cls, properties: Mapping[str, Value]) -> CurrencyRules:
        """The rules in a DNA's ``currency`` property; ``ValueError`` saying what is wrong."""
        given = _map(properties.get(CURRENCY_PROPERTY, {}), "the currency property")
        unknown = set(given) - _KNOWN
        if unknown:
            raise ValueError(f"currency: unknown settings {sorted(unknown)}")
        name = _text(given.get("name", DEFAULT_NAME), "name", MAX_NAME)
        symbol = _text(given.get("symbol", DEFAULT_SYMBOL), "symbol", MAX_SYMBOL)
        limits = _map(given.get("credit_limits", {}), "credit_limits")
        unknown = set(limits) - _KNOWN_LIMITS
        if unknown:
            raise ValueError(f"currency: unknown credit_limits settings {sorted(unknown)}")
        default = _limit(limits.get("default_mc", DEFAULT_LIMIT_MC), "credit_limits.default_mc")
        by_type = dict(DEFAULT_LIMITS_BY_DEVICE_TYPE)
        for device_type, limit in _map(limits.get("by_device_type", {}), "by_device_type").items():
            _text(device_type, "a device type", MAX_DEVICE_TYPE)
            by_type[device_type] = _limit(limit, f"the credit limit of {device_type}")
        device_types: dict[str, str] = {}
        for agent, device_type in _map(given.get("device_types", {}), "device_types").items():
            device_types[agent] = _text(device_type, "a device type", MAX_DEVICE_TYPE)
        oracles = given.get("oracles", [])
        if not isinstance(oracles, list) or len(oracles) > MAX_ORACLES:
            raise ValueError(f"currency: oracles is a list of at most {MAX_ORACLES} agent keys")
        for oracle in oracles:
            _text(oracle, "an oracle's agent key", 128)
        fees = _section(given, "fees", _KNOWN_FEES)
        rewards = _section(given, "rewards", _KNOWN_REWARDS)
        market, app = fees.get("market_pm"), fees.get("app_pm")
        return cls(
            name=name,
            symbol=symbol,
            default_limit_mc=default,
            limits_by_device_type=MappingProxyType(by_type),
            history_pm=_rate(
                limits.get("history_pm", DEFAULT_HISTORY_PM), "credit_limits.history_pm"
            ),
            history_max_mc=_limit(
                limits.get("history_max_mc", DEFAULT_HISTORY_MAX_MC),
                "credit_limits.history_max_mc",
            ),
            device_types=device_types,
            oracles=frozenset(str(o) for o in oracles),
            boundary_fee_pm=_rate(fees.get("boundary_pm", 0), "fees.boundary_pm"),
            market_fee_pm=None if market is None else _rate(market, "fees.market_pm"),
            app_fee_pm=None if app is None else _rate(app, "fees.app_pm"),
            clean_consumption_pm=_rate(
                rewards.get("clean_consumption_pm", DEFAULT_CLEAN_CONSUMPTION_PM),
                "rewards.clean_consumption_pm",
            ),
            storage_release_pm=_rate(
                rewards.get("storage_release_pm", DEFAULT_STORAGE_RELEASE_PM),
                "rewards.storage_release_pm",
            ),
        )


def device_type_of(rules: CurrencyRules, agent: AgentPubKey) -> str | None:
    """The device type the rules know ``agent`` by (None: not named)."""
    return rules.device_types.get(agent.to_text())


def is_attester(rules: CurrencyRules, agent: AgentPubKey) -> bool:
    """Whether ``agent`` is a distributor validator (device type distributor or monitor)."""
    return device_type_of(rules, agent) in ATTESTERS


def is_oracle(rules: CurrencyRules, agent: AgentPubKey) -> bool:
    return agent.to_text() in rules.oracles


def credit_limit_mc(rules: CurrencyRules, agent: AgentPubKey, earned_mc: int = 0) -> int:
    """How far below zero ``agent``'s balance may go: its device type's limit (else the
    default) plus ``history_pm`` per mille of what it has ``earned_mc`` (trades, rewards and
    fees received), at most ``history_max_mc`` more. Reserves and pools get no history bonus.
    Never lower with more history (property-tested)."""
    device_type = device_type_of(rules, agent)
    if device_type is None:
        base = rules.default_limit_mc
    else:
        base = rules.limits_by_device_type.get(device_type, rules.default_limit_mc)
    if device_type in NO_HISTORY or earned_mc <= 0:
        return base
    return base + min(rules.history_max_mc, earned_mc * rules.history_pm // PER_MILLE)


def format_mc(amount_mc: int, symbol: str = DEFAULT_SYMBOL) -> str:
    """``-1234`` → ``"-1.234 CPC"`` (exact: no floats)."""
    sign = "-" if amount_mc < 0 else ""
    whole, milli = divmod(abs(amount_mc), MC_PER_CREDIT)
    return f"{sign}{whole}.{milli:03d} {symbol}"


# ------------------------------------------------------------------------------- balances


@dataclass(frozen=True, slots=True)
class Position:
    """Where an agent's ledger stands: its latest transfer record (None: none yet), the
    balance after it, and what it had earned by then (its history)."""

    previous: ActionHash | None = None
    balance_mc: int = 0
    earned_mc: int = 0


START = Position()


class LedgerError(ValueError):
    """A sequence of transfers that does not follow (a chain the rules would refuse)."""


def party_problem(party: Party, delta_mc: int) -> str | None:
    """Whether a party's balances follow from each other: a first transfer starts at 0, and
    the resulting balance is the previous one changed by exactly ``delta_mc``."""
    if party.previous is None and (party.previous_balance_mc != 0 or party.earned_mc != 0):
        return "a first transfer starts from a zero balance and no history"
    if party.earned_mc < 0:
        return "what an agent has earned is not negative"
    if party.balance_mc != party.previous_balance_mc + delta_mc:
        return (
            f"the resulting balance {party.balance_mc} is not {party.previous_balance_mc}"
            f" {'+' if delta_mc >= 0 else '-'} {abs(delta_mc)}"
        )
    return None


def limit_problem(rules: CurrencyRules, transfer: Transfer) -> str | None:
    """Whether the spender ends below its credit limit."""
    limit = credit_limit_mc(rules, transfer.spender.agent, transfer.spender.earned_mc)
    if transfer.spender.balance_mc < -limit:
        return (
            f"the spender's balance {transfer.spender.balance_mc} would go below its credit limit"
            f" of -{limit}"
        )
    return None


def follows(position: Position, party: Party) -> str | None:
    """Whether ``party``'s side of a transfer continues from ``position``."""
    if party.previous != position.previous:
        return "the previous transfer is not the agent's latest (a replay, or a stale state)"
    if party.previous_balance_mc != position.balance_mc:
        return "the previous balance is not the balance after the agent's latest transfer"
    if party.earned_mc != position.earned_mc:
        return "what the agent has earned is not what its earlier transfers add up to"
    return None


def after(action_hash: ActionHash, transfer: Transfer, agent: AgentPubKey) -> Position:
    """``agent``'s position right after ``transfer`` (its record ``action_hash``), as the
    transfer itself states it."""
    party = transfer.party(agent)
    if party is None:
        raise LedgerError("the agent is not a party to the transfer")
    return Position(action_hash, party.balance_mc, party.earned_mc + transfer.earned_by(agent))


def advance(
    position: Position, agent: AgentPubKey, action_hash: ActionHash, transfer: Transfer
) -> Position:
    """The position after ``transfer``, committed by ``agent`` as ``action_hash``."""
    party = transfer.party(agent)
    if party is None:
        raise LedgerError("the agent is not a party to the transfer")
    problem = follows(position, party) or party_problem(party, transfer.delta_mc(agent))
    if problem:
        raise LedgerError(problem)
    return after(action_hash, transfer, agent)


def replay(agent: AgentPubKey, transfers: Iterable[tuple[ActionHash, Transfer]]) -> Position:
    """Recompute an agent's position from its chain's transfers (oldest first)."""
    position = START
    for action_hash, transfer in transfers:
        position = advance(position, agent, action_hash, transfer)
    return position


def next_transfer(
    spender: AgentPubKey,
    spender_at: Position,
    receiver: AgentPubKey,
    receiver_at: Position,
    *,
    amount_mc: int,
    kind: Kind,
    provenance: Provenance | None = None,
    memo: str = "",
    terms: Terms | None = None,
) -> Transfer:
    """The transfer that continues both positions by ``amount_mc`` (not yet checked: see
    :func:`ioe.zomes.currency.validation.transfer_problem`)."""
    if type(amount_mc) is not int or not 0 < amount_mc <= MAX_AMOUNT_MC:
        raise LedgerError(f"an amount is an integer of milli-credits in [1, {MAX_AMOUNT_MC}]")
    return Transfer(
        amount_mc=amount_mc,
        kind=Kind(kind),
        spender=Party(
            spender,
            spender_at.previous,
            spender_at.balance_mc,
            spender_at.balance_mc - amount_mc,
            spender_at.earned_mc,
        ),
        receiver=Party(
            receiver,
            receiver_at.previous,
            receiver_at.balance_mc,
            receiver_at.balance_mc + amount_mc,
            receiver_at.earned_mc,
        ),
        provenance=provenance,
        memo=memo,
        terms=terms,
    )
