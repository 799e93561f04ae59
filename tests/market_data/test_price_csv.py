"""The generic time,price file: what it accepts, the line it blames, and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.market_data import FeedError, PricePoint
from ioe.market_data.csv_feed import interval_of, load_price_csv, parse_price_csv

GOOD = """time,price
2023-01-18T00:05:00+10:00,87.13
2023-01-18T00:10:00+10:00,-12

2023-01-18T00:20:00+10:00,15000
"""


def test_reads_times_as_interval_ends_and_keeps_their_text() -> None:
    rows = parse_price_csv(GOOD)
    assert [r.time for r in rows] == [
        "2023-01-18T00:05:00+10:00",
        "2023-01-18T00:10:00+10:00",
        "2023-01-18T00:20:00+10:00",
    ]
    assert [r.line for r in rows] == [2, 3, 5]
    assert rows[0].point == PricePoint(
        int(datetime(2023, 1, 17, 14, 5, tzinfo=UTC).timestamp()) * 1_000_000, 87.13
    )
    assert interval_of(rows) == 300  # the 10-minute step is a missing interval


def test_other_columns_and_orders_and_utc() -> None:
    rows = parse_price_csv("region,price,time\nNSW1,5.5,2023-01-18T00:05:00Z\n")
    assert rows[0].price == 5.5 and rows[0].time == "2023-01-18T00:05:00Z"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("time,price\n", "no prices"),
        ("2023-01-18T00:05:00+10:00,87.13\n", "line 1: the header"),
        ("time,price\n2023-01-18T00:05:00,1\n", "line 2: .*no UTC offset"),
        ("time,price\nyesterday,1\n", "line 2: .*not ISO 8601"),
        ("time,price\n2023-01-18T00:05:00+10:00,abc\n", "line 2: price 'abc' is not a number"),
        ("time,price\n2023-01-18T00:05:00+10:00,nan\n", "line 2: .*not a usable number"),
        ("time,price\n2023-01-18T00:05:00+10:00\n", "line 2: 1 field"),
        (GOOD + "2023-01-18T00:20:00+10:00,1\n", "line 6: time .* is not after line 5"),
        ('time,price\n"2023,1\n', "not CSV"),
        ("time,time,price\nx,y,1\n", "twice"),
    ],
)
def test_mistakes_name_their_line(text: str, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_price_csv(text)


def test_files(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(GOOD)
    assert len(load_price_csv(path)) == 3
    with pytest.raises(FeedError, match=r"missing\.csv"):
        load_price_csv(tmp_path / "missing.csv")
    path.write_bytes(b"time,price\n\xff\n")
    with pytest.raises(FeedError, match="not UTF-8"):
        load_price_csv(path)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(
            st.one_of(
                st.sampled_from(GOOD.splitlines()),
                st.text(alphabet=st.sampled_from('0123456789-+:TZ.,time,price"e'), max_size=40),
            ),
            max_size=8,
        ).map("\n".join),
    )
)
def test_fuzzed_files_give_rows_or_a_feed_error(text: str) -> None:
    try:
        rows = parse_price_csv(text)
    except FeedError:
        return
    ends = [r.end_us for r in rows]
    assert rows and ends == sorted(set(ends))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.floats(-1000, 20000, allow_nan=False)),
        min_size=1,
        max_size=30,
    )
)
def test_written_series_read_back(steps: list[tuple[int, float]]) -> None:
    end = 1_674_000_000
    lines = ["time,price"]
    expected = []
    for gap, price in steps:
        end += gap * 300
        when = datetime.fromtimestamp(end, UTC).isoformat()
        lines.append(f"{when},{price!r}")
        expected.append(PricePoint(end * 1_000_000, price))
    assert [r.point for r in parse_price_csv("\n".join(lines))] == expected
