"""AEMO NEMWeb dispatch prices: a parser for the DISPATCHIS report's CSV (pure).

AEMO's report files hold several tables in one CSV. The first field of each row says what it
is: ``C`` rows are comments and control lines (the file's header and its ``END OF REPORT``
trailer); an ``I`` row names the columns of the ``D`` rows of one table that follow it, e.g.::

    C,NEMP.WORLD,DISPATCHIS,AEMO,PUBLIC,2023/01/17,11:25:09,0000000377432829,DISPATCHIS,...
    I,DISPATCH,PRICE,5,SETTLEMENTDATE,RUNNO,REGIONID,DISPATCHINTERVAL,INTERVENTION,RRP,...
    D,DISPATCH,PRICE,5,"2023/01/17 11:30:00",1,NSW1,20230117138,0,105.38,...
    I,DISPATCH,REGIONSUM,...
    C,"END OF REPORT",...

Fields 1–3 of ``I`` and ``D`` rows name the report, the table and its layout version; the
columns are matched by name, so a new version that adds columns still parses. Of the
``DISPATCH,PRICE`` table this reads ``SETTLEMENTDATE`` — the **end** of the 5-minute interval,
in NEM time (UTC+10 all year, no daylight saving) — ``REGIONID``, ``INTERVENTION`` and ``RRP``
(the regional reference price, AUD/MWh). When an intervention run priced an interval too, the
market run (``INTERVENTION`` 0) is the price.

The text comes from the internet: anything that is not this layout raises :class:`FeedError`
with a clear message — never another exception — and the input is bounded before parsing.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta, timezone

from ioe.market_data.base import FeedError, PricePoint, checked_price

__all__ = [
    "MAX_CSV_BYTES",
    "NEM_UTC_OFFSET_S",
    "REGIONS",
    "parse_dispatch_prices",
    "settlement_end_us",
]

NEM_UTC_OFFSET_S = 10 * 3600
REGIONS = ("NSW1", "QLD1", "SA1", "TAS1", "VIC1")
MAX_CSV_BYTES = 16 * 1024 * 1024
"""A DISPATCHIS file is about 100 kB; anything over 16 MB is not one."""
MAX_FIELDS = 1000

_DATE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})\Z")
_WANTED = ("SETTLEMENTDATE", "REGIONID", "RRP")
_NEM_TIME = timezone(timedelta(seconds=NEM_UTC_OFFSET_S))


def settlement_end_us(text: str) -> int:
    """``"2023/01/17 11:30:00"`` (NEM time) as µs since the epoch; ``FeedError`` if malformed."""
    match = _DATE.match(text.strip())
    if match is None:
        raise FeedError(f"settlement date {text[:40]!r} is not YYYY/MM/DD hh:mm:ss")
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        when = datetime(year, month, day, hour, minute, second, tzinfo=_NEM_TIME)
    except ValueError:
        raise FeedError(f"settlement date {text[:40]!r} is not a real time") from None
    return int(when.timestamp()) * 1_000_000


def _text(data: str | bytes) -> str:
    if len(data) > MAX_CSV_BYTES:
        raise FeedError(f"the file is over {MAX_CSV_BYTES} bytes: not a dispatch report")
    if isinstance(data, bytes):
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise FeedError("the file is not ASCII text: not a dispatch report") from None
    return data


def parse_dispatch_prices(data: str | bytes, region: str) -> list[PricePoint]:
    """The dispatch prices of ``region`` (e.g. ``"NSW1"``) in a DISPATCHIS CSV, in time order.

    ``FeedError`` when the text is not such a report or has no price for the region."""
    text = _text(data)
    region = region.upper()
    columns: dict[str, int] | None = None
    # per interval end: (intervention, price) — the market run (0) wins
    found: dict[int, tuple[bool, float]] = {}
    saw_table = False
    try:
        rows = csv.reader(text.splitlines(), strict=True)
        for line, row in enumerate(rows, start=1):
            if len(row) > MAX_FIELDS:
                raise FeedError(f"line {line}: {len(row)} fields: not a dispatch report")
            if not row or row[0] == "C":
                continue
            kind = row[0]
            if kind not in ("I", "D"):
                raise FeedError(f"line {line}: unknown row type {kind[:10]!r}")
            if len(row) < 4:
                raise FeedError(f"line {line}: an {kind} row has report, table and version")
            is_price = row[1] == "DISPATCH" and row[2] == "PRICE"
            if kind == "I":
                columns = None
                if is_price:
                    columns = _price_columns(row, line)
                    saw_table = True
                continue
            if not is_price:
                continue
            if columns is None:
                raise FeedError(f"line {line}: a DISPATCH,PRICE data row before its header")
            _read_row(row, columns, line, region, found)
    except csv.Error as exc:
        raise FeedError(f"not CSV: {exc}") from None
    if not saw_table:
        raise FeedError("no DISPATCH,PRICE table: not a dispatch report")
    if not found:
        raise FeedError(f"no dispatch price for region {region[:10]!r}")
    return [PricePoint(end, found[end][1]) for end in sorted(found)]


def _price_columns(row: list[str], line: int) -> dict[str, int]:
    names = [name.strip().upper() for name in row]
    columns: dict[str, int] = {}
    for index, name in enumerate(names[4:], start=4):
        if name in columns:
            raise FeedError(f"line {line}: column {name[:40]!r} named twice")
        columns[name] = index
    missing = [name for name in _WANTED if name not in columns]
    if missing:
        raise FeedError(f"line {line}: the DISPATCH,PRICE header lacks {', '.join(missing)}")
    return columns


def _read_row(
    row: list[str],
    columns: dict[str, int],
    line: int,
    region: str,
    found: dict[int, tuple[bool, float]],
) -> None:
    width = max(columns[name] for name in _WANTED)
    if len(row) <= width:
        raise FeedError(f"line {line}: a DISPATCH,PRICE row with {len(row)} fields is too short")
    if row[columns["REGIONID"]].strip().upper() != region:
        return
    end_us = settlement_end_us(row[columns["SETTLEMENTDATE"]])
    price = checked_price(row[columns["RRP"]].strip(), f"line {line}")
    intervention = False
    where = columns.get("INTERVENTION")
    if where is not None and where < len(row):
        flag = row[where].strip()
        if flag not in ("0", "1", ""):
            raise FeedError(f"line {line}: INTERVENTION {flag[:10]!r} is not 0 or 1")
        intervention = flag == "1"
    previous = found.get(end_us)
    if previous is None or (previous[0] and not intervention):
        found[end_us] = (intervention, price)
    elif previous[0] == intervention and previous[1] != price:
        raise FeedError(f"line {line}: two different prices for {region} at one time")
