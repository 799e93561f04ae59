"""What every price feed gives: points of (interval end, price), and one error for bad feeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ioe.errors import IoEError

__all__ = ["MAX_ABS_PRICE", "FeedError", "PricePoint"]

MAX_ABS_PRICE = 1e9
"""Prices beyond ±10⁹ per MWh are garbage (the NEM's cap is about 2 × 10⁴)."""


class FeedError(IoEError, ValueError):
    """A price feed sent something that is not prices (garbage, the wrong layout, too much
    data), or could not be reached. The plug goes to its safe state and the user is told."""


@dataclass(frozen=True, slots=True)
class PricePoint:
    """The price of one market interval, known at its end."""

    end_us: int
    """The end of the interval, in µs since the Unix epoch (UTC)."""
    price: float
    """Per MWh, in the market's currency (AUD for the NEM)."""


def checked_price(text: str, what: str) -> float:
    """A price from its text, or ``FeedError`` naming ``what`` when it is not a usable number."""
    try:
        if "_" in text:  # float() reads "1_000"; no market writes that
            raise ValueError(text)
        price = float(text)
    except ValueError:
        raise FeedError(f"{what}: price {text[:40]!r} is not a number") from None
    if not math.isfinite(price) or abs(price) > MAX_ABS_PRICE:
        raise FeedError(f"{what}: price {text[:40]!r} is not a usable number")
    return price
