"""The NEMWeb DISPATCHIS parser on text with the real layout, and fuzzed with garbage."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.market_data import FeedError, PricePoint
from ioe.market_data.nemweb import parse_dispatch_prices, settlement_end_us

PRICE_HEADER = (
    "I,DISPATCH,PRICE,5,SETTLEMENTDATE,RUNNO,REGIONID,DISPATCHINTERVAL,INTERVENTION,RRP,EEP,"
    "ROP,APCFLAG,MARKETSUSPENDEDFLAG,LASTCHANGED,RAISE6SECRRP,RAISE6SECROP,RAISE6SECAPCFLAG,"
    "RAISE60SECRRP,RAISE60SECROP,RAISE60SECAPCFLAG,RAISE5MINRRP,RAISE5MINROP,RAISE5MINAPCFLAG,"
    "RAISEREGRRP,RAISEREGROP,RAISEREGAPCFLAG,LOWER6SECRRP,LOWER6SECROP,LOWER6SECAPCFLAG,"
    "LOWER60SECRRP,LOWER60SECROP,LOWER60SECAPCFLAG,LOWER5MINRRP,LOWER5MINROP,LOWER5MINAPCFLAG,"
    "LOWERREGRRP,LOWERREGROP,LOWERREGAPCFLAG,PRICE_STATUS,PRE_AP_ENERGY_PRICE"
)


def price_row(
    region: str, rrp: str, intervention: int = 0, when: str = "2023/01/17 11:30:00"
) -> str:
    fcas = ",".join(["1.5,1.5,0"] * 8)
    return (
        f'D,DISPATCH,PRICE,5,"{when}",1,{region},20230117138,{intervention},{rrp},0,{rrp},0,0,'
        f'"2023/01/17 11:25:09",{fcas},FIRM,{rrp}'
    )


SAMPLE = "\r\n".join(
    [
        "C,NEMP.WORLD,DISPATCHIS,AEMO,PUBLIC,2023/01/17,11:25:09,0000000377432829,DISPATCHIS,"
        "0000000377432824",
        "I,DISPATCH,CASE_SOLUTION,2,SETTLEMENTDATE,RUNNO,INTERVENTION,CASESUBTYPE,SOLUTIONSTATUS",
        'D,DISPATCH,CASE_SOLUTION,2,"2023/01/17 11:30:00",1,0,,0',
        PRICE_HEADER,
        price_row("NSW1", "105.38"),
        price_row("QLD1", "98.5"),
        price_row("SA1", "-41.02"),
        price_row("SA1", "300", intervention=1),
        price_row("TAS1", "60.1"),
        price_row("VIC1", "88.12"),
        "I,DISPATCH,REGIONSUM,9,SETTLEMENTDATE,RUNNO,REGIONID,DISPATCHINTERVAL,INTERVENTION,"
        "TOTALDEMAND",
        'D,DISPATCH,REGIONSUM,9,"2023/01/17 11:30:00",1,NSW1,20230117138,0,9120.5',
        'C,"END OF REPORT",14',
    ]
)
END_1130 = int(datetime(2023, 1, 17, 1, 30, tzinfo=UTC).timestamp()) * 1_000_000


def test_reads_the_region_price_at_the_interval_end_in_nem_time() -> None:
    assert parse_dispatch_prices(SAMPLE, "NSW1") == [PricePoint(END_1130, 105.38)]
    assert parse_dispatch_prices(SAMPLE.encode(), "vic1") == [PricePoint(END_1130, 88.12)]


def test_the_market_run_wins_over_an_intervention_run() -> None:
    assert parse_dispatch_prices(SAMPLE, "SA1") == [PricePoint(END_1130, -41.02)]
    swapped = SAMPLE.replace(price_row("SA1", "-41.02") + "\r\n", "")
    swapped = swapped.replace(
        price_row("TAS1", "60.1"), price_row("TAS1", "60.1") + "\r\n" + price_row("SA1", "-41.02")
    )
    assert parse_dispatch_prices(swapped, "SA1") == [PricePoint(END_1130, -41.02)]
    only_intervention = SAMPLE.replace(price_row("SA1", "-41.02") + "\r\n", "")
    assert parse_dispatch_prices(only_intervention, "SA1") == [PricePoint(END_1130, 300.0)]


def test_several_intervals_come_out_in_time_order() -> None:
    text = "\n".join(
        [
            PRICE_HEADER,
            price_row("NSW1", "90", when="2023/01/17 11:35:00"),
            price_row("NSW1", "80", when="2023/01/17 11:30:00"),
            price_row("NSW1", "70", when="2023/01/18 00:00:00"),
        ]
    )
    points = parse_dispatch_prices(text, "NSW1")
    assert [p.price for p in points] == [80.0, 90.0, 70.0]
    assert points[1].end_us - points[0].end_us == 300_000_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no DISPATCH,PRICE table"),
        ("C,NEMP.WORLD,DISPATCHIS\nC,END OF REPORT,2", "no DISPATCH,PRICE table"),
        (SAMPLE, "no dispatch price for region 'WA1'"),
        (PRICE_HEADER + "\nX,1,2,3", "unknown row type"),
        (price_row("NSW1", "1"), "before its header"),
        (PRICE_HEADER + "\n" + price_row("NSW1", "abc"), "not a number"),
        (PRICE_HEADER + "\n" + price_row("NSW1", "inf"), "not a usable number"),
        (PRICE_HEADER + "\n" + price_row("NSW1", "1", when="2023/02/30 00:00:00"), "real time"),
        (PRICE_HEADER + "\n" + price_row("NSW1", "1", when="17/01/2023 11:30"), "YYYY/MM/DD"),
        (PRICE_HEADER + "\n" + price_row("NSW1", "1", intervention=7), "INTERVENTION"),
        ("I,DISPATCH,PRICE,5,SETTLEMENTDATE,REGIONID", "lacks RRP"),
        (PRICE_HEADER + '\nD,DISPATCH,PRICE,5,"2023/01/17', "not CSV"),
        (PRICE_HEADER + "\nD,DISPATCH,PRICE,5,x", "too short"),
    ],
)
def test_garbage_is_a_feed_error_that_says_why(text: str, message: str) -> None:
    region = "WA1" if "WA1" in message else "NSW1"
    with pytest.raises(FeedError, match=message):
        parse_dispatch_prices(text, region)


def test_bytes_that_are_not_text_are_refused() -> None:
    with pytest.raises(FeedError, match="not ASCII"):
        parse_dispatch_prices(SAMPLE.encode() + b"\xff", "NSW1")


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)))
def test_settlement_dates_are_nem_time(when: datetime) -> None:
    when = when.replace(microsecond=0)
    text = when.strftime("%Y/%m/%d %H:%M:%S")
    nem = when.replace(tzinfo=timezone(timedelta(hours=10)))
    assert settlement_end_us(text) == int(nem.timestamp()) * 1_000_000


def _mutations() -> st.SearchStrategy[str]:
    lines = SAMPLE.split("\r\n")
    return st.lists(
        st.one_of(
            st.sampled_from(lines),
            st.text(
                alphabet=st.sampled_from('ID C,"0123456789./:-NSWPRICEDISPATCH\n'), max_size=80
            ),
            st.text(max_size=40),
        ),
        max_size=12,
    ).map("\n".join)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=300), _mutations()), region=st.sampled_from(["NSW1", "SA1"]))
def test_fuzzed_text_gives_prices_or_a_feed_error(text: str, region: str) -> None:
    try:
        points = parse_dispatch_prices(text, region)
    except FeedError:
        return
    assert points and all(isinstance(p, PricePoint) for p in points)
    assert [p.end_us for p in points] == sorted({p.end_us for p in points})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_give_prices_or_a_feed_error(data: bytes) -> None:
    with contextlib.suppress(FeedError):
        parse_dispatch_prices(data, "NSW1")
