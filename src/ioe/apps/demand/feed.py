"""Where the Demand Management app's prices come from: a file, a bundled day, or AEMO live.

``--demand-prices`` names a ``time,price`` CSV file, a bundled recording by region (``nsw1``,
``sa1``) or ``nemweb:REGION`` for AEMO's live 5-minute prices (:func:`ioe.market_data.live.
poll_nemweb`). A recording is replayed at ``speed`` intervals per real interval.

Prices are read as the NEM states them: Australian dollars per MWh, interval ends in NEM time
(UTC+10), which is how the page shows them; a bundled or live feed also names its region.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from ioe.apps.demand.runner import FeedInfo
from ioe.market_data import BUNDLED_REGIONS, PricePoint, bundled_prices, replay
from ioe.market_data.csv_feed import load_price_csv
from ioe.market_data.live import poll_nemweb


def _points(prices: str) -> tuple[list[PricePoint], str]:
    path = Path(prices)
    if path.exists():
        rows = load_price_csv(path)
        return [PricePoint(row.end_us, row.price) for row in rows], path.name
    if prices in BUNDLED_REGIONS:
        return bundled_prices(prices), f"nem_{prices}.csv (bundled)"
    raise ValueError(
        f"--demand-prices: {prices!r} is not a file, a bundled region {sorted(BUNDLED_REGIONS)}"
        " or nemweb:REGION"
    )


def check_prices(prices: str) -> None:
    """``ValueError`` saying what is wrong with a ``--demand-prices`` source (a file is read)."""
    if prices.startswith("nemweb:"):
        if not prices.split(":", 1)[1].strip():
            raise ValueError("--demand-prices nemweb:REGION names a region (NSW1, VIC1, ...)")
        return
    try:
        _points(prices)
    except OSError as exc:
        raise ValueError(f"--demand-prices: {prices}: {exc.strerror or exc}") from None


def open_feed(prices: str, speed: float) -> tuple[AsyncIterator[PricePoint], FeedInfo]:
    """The feed named by ``prices``, and how to show it."""
    if prices.startswith("nemweb:"):
        region = prices.split(":", 1)[1].upper()
        return poll_nemweb(region), FeedInfo(f"AEMO NEMWeb live, {region}", region=region)
    points, name = _points(prices)
    if len(points) < 2:
        raise ValueError(f"{prices}: a replay needs at least two intervals")
    interval_s = (points[1].end_us - points[0].end_us) // 1_000_000
    if speed <= 0:
        raise ValueError("--demand-speed is a positive number")
    info = FeedInfo(
        source=f"replay of {name} at {speed:g}x",
        interval_s=interval_s,
        pace_s=interval_s / speed,
        region=prices.upper() if prices in BUNDLED_REGIONS and name.endswith("(bundled)") else None,
    )
    return replay(points, speed=speed), info
