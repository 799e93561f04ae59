"""The value of a kWh: one pure function, recomputed by validation.

A kWh is not worth the same everywhere and always (the book's "value of a kWh"). Its value in
milli-credits is the energy in Wh (1 credit = 1 kWh at par) times five factors, each an integer in
per-mille (1000 = ×1.0) taken from the DNA's properties:

``source``
    clean or dirty (``clean_pm``, ``dirty_pm``);
``locality``
    local preference, by the zone distance between producer and consumer
    (``locality_pm[d]``, the last entry for anything further; own site > street > suburb > ...);
``demand``
    what the consumer's zone needs at that time: a need index in [-1000, 1000] (negative: surplus,
    positive: shortage) moves the factor linearly by ``demand_slope_pm`` per 1000, clamped to
    [``demand_min_pm``, ``demand_max_pm``];
``trust``
    how well the claim is verified (``trust_pm[level]``: self-reported, device-signed,
    meter-attested, substation-attested);
``reputation``
    the consumer's demand-response reputation multiplier, clamped to
    [``reputation_min_pm``, ``reputation_max_pm``].

    value_mc = floor(energy_wh × source × locality × demand × trust × reputation / 1000^5)

Integer arithmetic only, so every node computes the same number; the result never decreases when
any one factor (or the energy) increases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ioe.encoding import Value
from ioe.vocabulary import Verification as Verification  # noqa: PLC0414 - re-exported
from ioe.zones import zone_distance

PER_MILLE = 1000
MAX_FACTOR_PM = 10_000
MAX_ENERGY_WH = 10**12


@dataclass(frozen=True, slots=True)
class ValueRules:
    clean_pm: int = 1000
    dirty_pm: int = 600
    locality_pm: tuple[int, ...] = (1100, 1050, 1000, 950, 900)
    demand_slope_pm: int = 300
    demand_min_pm: int = 700
    demand_max_pm: int = 1300
    trust_pm: tuple[int, ...] = (500, 800, 1000, 1050)
    reputation_min_pm: int = 800
    reputation_max_pm: int = 1200

    def __post_init__(self) -> None:
        problem = rules_problem(self)
        if problem:
            raise ValueError(f"currency value rules: {problem}")

    @classmethod
    def from_properties(cls, properties: Mapping[str, Value]) -> ValueRules:
        """The rules in a DNA's ``value`` property (defaults for anything not given)."""
        given = properties.get("value", {})
        if not isinstance(given, dict):
            raise ValueError("currency value rules: the value property is a map")
        fields: dict[str, object] = {}
        for name in cls.__dataclass_fields__:
            if name in given:
                item = given[name]
                fields[name] = tuple(item) if isinstance(item, list) else item
        unknown = set(given) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"currency value rules: unknown settings {sorted(unknown)}")
        return cls(**fields)  # type: ignore[arg-type]


def _factor_problem(name: str, value: object) -> str | None:
    if type(value) is not int or not 0 <= value <= MAX_FACTOR_PM:
        return f"{name} is an integer per-mille in [0, {MAX_FACTOR_PM}]"
    return None


def rules_problem(rules: ValueRules) -> str | None:
    """Why ``rules`` cannot be used, or None."""
    for name in ("clean_pm", "dirty_pm", "demand_min_pm", "demand_max_pm"):
        problem = _factor_problem(name, getattr(rules, name))
        if problem:
            return problem
    for name in ("reputation_min_pm", "reputation_max_pm", "demand_slope_pm"):
        problem = _factor_problem(name, getattr(rules, name))
        if problem:
            return problem
    for name in ("locality_pm", "trust_pm"):
        table = getattr(rules, name)
        if not isinstance(table, tuple) or not table:
            return f"{name} is a non-empty list"
        for item in table:
            problem = _factor_problem(name, item)
            if problem:
                return problem
    if len(rules.trust_pm) != len(Verification):
        return f"trust_pm has one entry per verification level ({len(Verification)})"
    if rules.dirty_pm > rules.clean_pm:
        return "dirty energy is not worth more than clean"
    if list(rules.locality_pm) != sorted(rules.locality_pm, reverse=True):
        return "locality_pm does not increase with distance"
    if list(rules.trust_pm) != sorted(rules.trust_pm):
        return "trust_pm does not decrease with better verification"
    if rules.demand_min_pm > PER_MILLE or rules.demand_max_pm < PER_MILLE:
        return "the demand range includes par (1000)"
    if rules.reputation_min_pm > PER_MILLE or rules.reputation_max_pm < PER_MILLE:
        return "the reputation range includes par (1000)"
    return None


@dataclass(frozen=True, slots=True)
class Factors:
    """Each factor of one valuation, in per-mille (shown to users with the value)."""

    source: int
    locality: int
    demand: int
    trust: int
    reputation: int

    def product_pm5(self) -> int:
        return self.source * self.locality * self.demand * self.trust * self.reputation


def factors(
    rules: ValueRules,
    *,
    clean: bool,
    producer_zone: str,
    consumer_zone: str,
    need_index: int,
    verification: Verification,
    reputation_pm: int,
) -> Factors:
    """The five factors for one flow of energy."""
    if type(need_index) is not int or not -PER_MILLE <= need_index <= PER_MILLE:
        raise ValueError("the need index is an integer in [-1000, 1000]")
    if type(reputation_pm) is not int or reputation_pm < 0:
        raise ValueError("the reputation multiplier is a non-negative integer per-mille")
    distance = zone_distance(producer_zone, consumer_zone)
    locality = rules.locality_pm[min(distance, len(rules.locality_pm) - 1)]
    demand = PER_MILLE + need_index * rules.demand_slope_pm // PER_MILLE
    demand = min(max(demand, rules.demand_min_pm), rules.demand_max_pm)
    reputation = min(max(reputation_pm, rules.reputation_min_pm), rules.reputation_max_pm)
    return Factors(
        source=rules.clean_pm if clean else rules.dirty_pm,
        locality=locality,
        demand=demand,
        trust=rules.trust_pm[Verification(verification)],
        reputation=reputation,
    )


def value_mc(energy_wh: int, factors: Factors) -> int:
    """The value of ``energy_wh`` in milli-credits under ``factors`` (rounded down)."""
    if type(energy_wh) is not int or not 0 <= energy_wh <= MAX_ENERGY_WH:
        raise ValueError(f"energy is an integer number of Wh in [0, {MAX_ENERGY_WH}]")
    return energy_wh * factors.product_pm5() // PER_MILLE**5
