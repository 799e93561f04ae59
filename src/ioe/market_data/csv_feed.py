"""A generic price file for any market: CSV with a header and columns ``time,price``.

::

    time,price
    2023-01-18T00:05:00+10:00,87.13
    2023-01-18T00:10:00+10:00,85.02

``time`` is the **end** of the interval, ISO 8601 with a UTC offset (``Z`` or ``+10:00``);
``price`` is per MWh in the market's currency. Rows are in time order, each after the one
before; other columns are ignored. Every mistake is a :class:`FeedError` naming its line.
The text of each time is kept as written, so a replay can report intervals exactly as the
file names them.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ioe.market_data.base import FeedError, PricePoint, checked_price

__all__ = [
    "MAX_FILE_BYTES",
    "PriceRow",
    "interval_of",
    "load_price_csv",
    "parse_price_csv",
]

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A year of 5-minute prices is about 3 MB."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One row of a price file: where it was, its time as written, and its point."""

    line: int
    time: str
    point: PricePoint

    @property
    def end_us(self) -> int:
        return self.point.end_us

    @property
    def price(self) -> float:
        return self.point.price


def _end_us(text: str, line: int) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FeedError(f"line {line}: time {text[:40]!r} is not ISO 8601") from None
    offset = when.utcoffset()
    if offset is None:
        raise FeedError(f"line {line}: time {text[:40]!r} has no UTC offset (add +10:00 or Z)")
    try:
        return (when - _EPOCH) // _MICROSECOND
    except (OverflowError, ValueError):
        raise FeedError(f"line {line}: time {text[:40]!r} is out of range") from None


def parse_price_csv(text: str) -> list[PriceRow]:
    """The rows of a ``time,price`` file's text, in order (``FeedError`` on any mistake)."""
    if len(text) > MAX_FILE_BYTES:
        raise FeedError(f"the price file is over {MAX_FILE_BYTES} bytes")
    lines = text.splitlines()
    rows: list[PriceRow] = []
    columns: tuple[int, int] | None = None
    try:
        for line, row in enumerate(csv.reader(lines, strict=True), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _header(row, line)
                continue
            rows.append(_row(row, line, columns, rows[-1] if rows else None))
    except csv.Error as exc:
        raise FeedError(f"the price file is not CSV: {exc}") from None
    if columns is None:
        raise FeedError("the price file is empty: it needs a header line time,price")
    if not rows:
        raise FeedError("the price file has a header but no prices")
    return rows


def _header(row: list[str], line: int) -> tuple[int, int]:
    names = [cell.strip().lower().lstrip("\ufeff") for cell in row]
    if "time" not in names or "price" not in names:
        shown = ",".join(row)[:60]
        raise FeedError(f"line {line}: the header is {shown!r}; it needs columns time,price")
    if names.count("time") > 1 or names.count("price") > 1:
        raise FeedError(f"line {line}: the header names time or price twice")
    return names.index("time"), names.index("price")


def _row(
    row: list[str], line: int, columns: tuple[int, int], previous: PriceRow | None
) -> PriceRow:
    time_col, price_col = columns
    if len(row) <= max(columns):
        raise FeedError(f"line {line}: {len(row)} field(s); expected time and price")
    time = row[time_col].strip()
    end_us = _end_us(time, line)
    price = checked_price(row[price_col].strip(), f"line {line}")
    if previous is not None and end_us <= previous.end_us:
        raise FeedError(
            f"line {line}: time {time[:40]} is not after line {previous.line}'s "
            f"{previous.time[:40]}"
        )
    return PriceRow(line, time, PricePoint(end_us, price))


def load_price_csv(path: str | Path) -> list[PriceRow]:
    """The rows of the price file at ``path`` (``FeedError`` when it cannot be read or parsed)."""
    target = Path(path)
    try:
        with target.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FeedError(f"{target}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FeedError(f"{target}: not UTF-8 text") from None
    try:
        return parse_price_csv(text)
    except FeedError as exc:
        raise FeedError(f"{target}: {exc}") from None


def interval_of(points: Sequence[PriceRow | PricePoint], default_s: int = 300) -> int:
    """The interval length of a series, in seconds: the smallest step between two times
    (longer steps are missing intervals); ``default_s`` for a single point. ``FeedError`` when
    that is not a whole number of seconds."""
    steps = [b.end_us - a.end_us for a, b in itertools.pairwise(points)]
    if not steps:
        return default_s
    step = min(steps)
    if step % 1_000_000 or step > 86_400 * 1_000_000:
        raise FeedError(f"the interval ({step} µs) is not a whole number of seconds up to a day")
    return step // 1_000_000
