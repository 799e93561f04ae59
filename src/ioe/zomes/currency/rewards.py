"""Rewards for demand reduction at price peaks, valued by the currency's rules (pure).

Energy a device did not draw while its zone was short (a price peak) is worth what the same
energy would be worth delivered there and then: the value of a kWh
(:mod:`ioe.zomes.currency.value`) with

- ``source``: clean (energy not drawn burns nothing);
- ``locality``: distance 0 (the reduction happens on the consumer's own site);
- ``demand``: the zone's need at that time, from how far the price stood above its average
  (:func:`need_index_from_price`);
- ``trust``: how the reduction is verified (the device's own signed readings, or a site meter's
  attestation);
- ``reputation``: par.

Prices are per MWh, as markets publish them; they are turned into integer hundredths before any
arithmetic so every node computes the same index.
"""

from __future__ import annotations

import math

from ioe.zomes.currency.value import PER_MILLE, ValueRules, Verification, factors, value_mc


def price_cents(price: float) -> int:
    """A price per MWh in integer hundredths (rounded half away from zero); ``ValueError`` for
    a price that is not a finite number."""
    if not math.isfinite(price):
        raise ValueError(f"a price is a finite number, not {price}")
    cents = abs(price) * 100 + 0.5
    return int(cents) if price >= 0 else -int(cents)


def need_index_from_price(price: float, average: float) -> int:
    """The zone's need index in [-1000, 1000]: 1000 × (price − average) / |average|, clamped.

    A price at its average is 0 (no shortage); twice the average is 1000. An average of zero
    or less (a surplus) makes any positive excess the full 1000 and anything else -1000."""
    return need_index_from_cents(price_cents(price), price_cents(average))


def need_index_from_cents(now: int, mean: int) -> int:
    """:func:`need_index_from_price` for prices already in integer hundredths (what signed
    records carry, so validation recomputes the index without floats)."""
    if mean <= 0:
        return PER_MILLE if now > mean else -PER_MILLE
    index = (now - mean) * PER_MILLE // mean
    return max(-PER_MILLE, min(PER_MILLE, index))


def demand_reduction_reward_mc(
    rules: ValueRules,
    *,
    avoided_wh: int,
    need_index: int,
    verification: Verification,
    zone: str,
) -> int:
    """The reward in milli-credits for ``avoided_wh`` not drawn in ``zone`` at ``need_index``."""
    return value_mc(
        avoided_wh,
        factors(
            rules,
            clean=True,
            producer_zone=zone,
            consumer_zone=zone,
            need_index=need_index,
            verification=verification,
            reputation_pm=PER_MILLE,
        ),
    )
