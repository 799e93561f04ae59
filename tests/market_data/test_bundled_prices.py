"""The bundled real NEM days: how they were made, and that they load."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ioe.market_data import PricePoint, bundled_price_rows, bundled_prices
from ioe.market_data.opennem import opennem_prices, price_csv_text, select_days

SHARED = Path("/work/shared/data/opennem-nem-7d")
PRICES = Path(__file__).resolve().parents[2] / "src" / "ioe" / "data" / "prices"


@pytest.mark.parametrize("region", ["nsw1", "sa1"])
def test_three_whole_nem_days_of_five_minute_prices(region: str) -> None:
    points = bundled_prices(region)
    assert len(points) == 3 * 288
    first = datetime.fromtimestamp(points[0].end_us / 1e6, UTC)
    assert first == datetime(2023, 1, 17, 14, 5, tzinfo=UTC)  # 00:05 NEM time on the 18th
    assert all(b.end_us - a.end_us == 300_000_000 for a, b in itertools.pairwise(points))
    assert bundled_price_rows(region)[0].time == "2023-01-18T00:05:00+10:00"


def test_an_unknown_region_says_which_exist() -> None:
    with pytest.raises(KeyError, match="nsw1, sa1"):
        bundled_prices("wa1")


def test_the_converter_reads_start_plus_i_intervals() -> None:
    export = {
        "network": "nem",
        "data": [
            {"id": "au.nem.sa1.demand", "history": {}},
            {
                "id": "au.nem.sa1.price",
                "history": {"start": "2023-01-17T23:55:00+10:00", "interval": "5m",
                            "data": [10, None, 30.5, 40]},
            },
        ],
    }  # fmt: skip
    points = opennem_prices(export, "SA1")
    start = int(datetime(2023, 1, 17, 13, 55, tzinfo=UTC).timestamp()) * 1_000_000
    assert points == [
        PricePoint(start, 10.0),
        PricePoint(start + 600_000_000, 30.5),
        PricePoint(start + 900_000_000, 40.0),
    ]
    day = select_days(points, date(2023, 1, 18), 1)
    assert [p.price for p in day] == [30.5, 40.0]  # 23:55 belongs to the 17th
    assert price_csv_text(day).splitlines() == [
        "time,price",
        "2023-01-18T00:05:00+10:00,30.5",
        "2023-01-18T00:10:00+10:00,40.0",
    ]


@pytest.mark.skipif(not SHARED.is_dir(), reason="the OpenNEM source files are not here")
@pytest.mark.parametrize("region", ["nsw1", "sa1"])
def test_the_bundled_files_are_what_the_converter_makes(region: str) -> None:
    export = json.loads((SHARED / f"nem_{region}_7d.json").read_text())
    points = select_days(opennem_prices(export, region), date(2023, 1, 18), 3)
    assert price_csv_text(points) == (PRICES / f"nem_{region}.csv").read_text()
