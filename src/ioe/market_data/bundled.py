"""Real NEM prices shipped with the package (see ``ioe/data/ATTRIBUTION.md``).

Three market days (18–20 January 2023, NEM time) of 5-minute regional prices for NSW1 and SA1,
as ``time,price`` files in ``ioe/data/prices/``, so the demo and the tests replay real peaks
offline.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from ioe.market_data.base import PricePoint
from ioe.market_data.csv_feed import PriceRow, parse_price_csv

__all__ = ["BUNDLED_REGIONS", "bundled_price_rows", "bundled_prices"]

BUNDLED_REGIONS = ("nsw1", "sa1")


@cache
def bundled_price_rows(region: str = "nsw1") -> tuple[PriceRow, ...]:
    """The rows of the bundled price file of ``region`` (times as written in the file)."""
    key = region.lower()
    if key not in BUNDLED_REGIONS:
        raise KeyError(f"no bundled prices for {region!r} (have: {', '.join(BUNDLED_REGIONS)})")
    resource = resources.files("ioe.data").joinpath("prices").joinpath(f"nem_{key}.csv")
    return tuple(parse_price_csv(resource.read_text("utf-8")))


def bundled_prices(region: str = "nsw1") -> list[PricePoint]:
    """The bundled 5-minute prices of ``region`` (``"nsw1"`` or ``"sa1"``), in time order."""
    return [row.point for row in bundled_price_rows(region)]
