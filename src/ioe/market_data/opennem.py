"""OpenNEM's JSON exports turned into ``time,price`` files (how the bundled prices were made).

An OpenNEM "power" export (e.g. its 7-day file for a NEM region) holds series such as
``au.nem.nsw1.price``, each with a ``history`` of evenly spaced values::

    {"id": "au.nem.nsw1.price", "units": "AUD/MWh",
     "history": {"start": "2023-01-17T11:30:00+10:00", "last": "...", "interval": "5m",
                 "data": [105.38, ...]}}

The i-th value belongs to the time ``start + i × interval``. OpenNEM (now Open Electricity)
stamps each value with AEMO's ``SETTLEMENTDATE``, which marks the **end** of the interval, so
these times are interval ends — the same convention as the ``time,price`` files. Missing values
(``null``) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from ioe.market_data.base import FeedError, PricePoint
from ioe.market_data.nemweb import NEM_UTC_OFFSET_S

__all__ = ["opennem_prices", "price_csv_text", "select_days"]

_INTERVALS_S = {"5m": 300, "30m": 1800, "1h": 3600}


def opennem_prices(export: Mapping[str, Any], region: str) -> list[PricePoint]:
    """The price series of ``region`` (``"nsw1"``…) in an OpenNEM export, as interval ends."""
    network = str(export.get("network", "nem")).lower()
    wanted = f"au.{network}.{region.lower()}.price"
    for series in export.get("data", []):
        if isinstance(series, Mapping) and series.get("id") == wanted:
            break
    else:
        raise FeedError(f"the export has no series {wanted}")
    history = series["history"]
    interval_s = _INTERVALS_S.get(str(history.get("interval")))
    if interval_s is None:
        raise FeedError(f"{wanted}: unknown interval {history.get('interval')!r}")
    start = datetime.fromisoformat(str(history["start"]))
    if start.utcoffset() is None:
        raise FeedError(f"{wanted}: the start time has no UTC offset")
    start_us = int(start.timestamp()) * 1_000_000
    return [
        PricePoint(start_us + i * interval_s * 1_000_000, float(value))
        for i, value in enumerate(history["data"])
        if value is not None
    ]


def select_days(
    points: Iterable[PricePoint], first_day: date, days: int, utc_offset_s: int = NEM_UTC_OFFSET_S
) -> list[PricePoint]:
    """The points of ``days`` whole market days from ``first_day`` (local to ``utc_offset_s``):
    intervals ending after its midnight, up to and including the last day's closing midnight."""
    zone = timezone(timedelta(seconds=utc_offset_s))
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone)
    start_us = int(start.timestamp()) * 1_000_000
    end_us = start_us + days * 86_400 * 1_000_000
    return [p for p in points if start_us < p.end_us <= end_us]


def price_csv_text(points: Iterable[PricePoint], utc_offset_s: int = NEM_UTC_OFFSET_S) -> str:
    """A ``time,price`` file of ``points``, times in ISO 8601 at ``utc_offset_s``."""
    zone = timezone(timedelta(seconds=utc_offset_s))
    lines = ["time,price"]
    for point in points:
        when = datetime.fromtimestamp(point.end_us // 1_000_000, UTC).astimezone(zone)
        lines.append(f"{when.isoformat()},{float(point.price)!r}")
    return "\n".join(lines) + "\n"
