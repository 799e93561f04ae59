"""The live NEMWeb fetcher against a local server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from ioe.market_data import FeedError, PricePoint
from ioe.market_data.live import fetch_latest_prices, newest_report_url, read_zipped_csv

CSV = (
    "C,NEMP.WORLD,DISPATCHIS,AEMO,PUBLIC,2023/01/17,11:30:09,0000000377432999,DISPATCHIS,0\r\n"
    "I,DISPATCH,PRICE,5,SETTLEMENTDATE,RUNNO,REGIONID,DISPATCHINTERVAL,INTERVENTION,RRP,EEP\r\n"
    'D,DISPATCH,PRICE,5,"2023/01/17 11:35:00",1,NSW1,20230117139,0,142.5,0\r\n'
    'D,DISPATCH,PRICE,5,"2023/01/17 11:35:00",1,SA1,20230117139,0,-12,0\r\n'
    'C,"END OF REPORT",5\r\n'
)
OLD_CSV = CSV.replace("142.5", "1.0").replace("11:35:00", "11:30:00")
NEW = "PUBLIC_DISPATCHIS_202301171135_0000000377432999.zip"
OLD = "PUBLIC_DISPATCHIS_202301171130_0000000377432829.zip"
FOLDER = "/Reports/Current/DispatchIS_Reports/"


def entry(stamp: str, size: int, name: str) -> str:
    return f' {stamp} {size:>12} <A HREF="{FOLDER}{name}">{name}</A><br>'


LISTING = "\n".join(
    [
        f"<html><head><title>nemweb.com.au - {FOLDER}</title></head><body>",
        f"<H1>nemweb.com.au - {FOLDER}</H1><hr>",
        '<pre><A HREF="/Reports/Current/">[To Parent Directory]</A><br><br>',
        entry("Tuesday, January 17, 2023 11:25 AM", 20107, OLD),
        entry("Tuesday, January 17, 2023 11:30 AM", 20110, NEW),
        entry("Tuesday, January 17, 2023 11:30 AM", 120, "readme.txt"),
        "</pre><hr></body></html>",
    ]
)


def zipped(name: str, text: str | bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


async def serve(files: dict[str, bytes | str], body: Callable[[str], Awaitable[object]]) -> object:
    """Serve ``files`` (and the listing, or ``files[""]`` in its place) while ``body`` runs."""

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if request.path.endswith("/"):
            listing = str(files.get("", LISTING))
            return web.Response(text=listing, content_type="text/html")
        if name not in files:
            return web.Response(status=404)
        data = files[name]
        return web.Response(body=data if isinstance(data, bytes) else data.encode())

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await asyncio.wait_for(
            body(f"http://127.0.0.1:{port}/Reports/Current/DispatchIS_Reports/"), 30
        )
    finally:
        await runner.cleanup()


def run(files: dict[str, bytes | str], region: str = "NSW1") -> list[PricePoint]:
    async def body(base: str) -> list[PricePoint]:
        return await fetch_latest_prices(region, base_url=base, timeout_s=10)

    result = asyncio.run(serve(files, body))
    assert isinstance(result, list)
    return result


def test_fetches_parses_the_newest_report() -> None:
    files: dict[str, bytes | str] = {
        NEW: zipped(NEW.replace(".zip", ".CSV"), CSV),
        OLD: zipped(OLD.replace(".zip", ".CSV"), OLD_CSV),
    }
    points = run(files)
    assert len(points) == 1 and points[0].price == 142.5
    assert run(files, "SA1")[0].price == -12.0


def test_a_missing_file_or_garbage_is_a_feed_error() -> None:
    with pytest.raises(FeedError, match="HTTP 404"):
        run({})
    with pytest.raises(FeedError, match="not a readable zip"):
        run({NEW: b"PK\x03\x04 not really a zip"})
    with pytest.raises(FeedError, match="no PUBLIC_DISPATCHIS"):
        run({"": "<html>nothing here</html>"})


def test_an_unreachable_server_is_a_feed_error() -> None:
    async def closed_port() -> list[PricePoint]:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await fetch_latest_prices("NSW1", base_url=f"http://127.0.0.1:{port}/", timeout_s=5)

    with pytest.raises(FeedError, match="could not be read"):
        asyncio.run(closed_port())


def test_the_newest_link_is_chosen_by_time_then_sequence() -> None:
    base = "https://example.invalid/Reports/Current/DispatchIS_Reports/"
    assert newest_report_url(LISTING, base) == (
        f"https://example.invalid/Reports/Current/DispatchIS_Reports/{NEW}"
    )
    relative = (
        f'<a href="{OLD}">a</a><a href="PUBLIC_DISPATCHIS_202301171130_0000000377432900.zip">b</a>'
    )
    assert newest_report_url(relative, base).endswith("_0000000377432900.zip")
    with pytest.raises(FeedError, match="not on the web"):
        newest_report_url(f'<a href="file:///etc/{NEW}">x</a>', base)


def test_zip_bombs_and_odd_zips_are_refused() -> None:
    bomb = zipped("PUBLIC_DISPATCHIS.CSV", b"0" * 5_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(FeedError, match="too big"):
        read_zipped_csv(bomb, max_bytes=1_000_000)
    # a zip whose directory lies about the size is cut off while inflating
    lying = bytearray(bomb)
    declared = (5_000_000).to_bytes(4, "little")
    small = (1000).to_bytes(4, "little")
    lying = bytearray(bytes(lying).replace(declared, small))
    with pytest.raises(FeedError):
        read_zipped_csv(bytes(lying), max_bytes=1_000_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.CSV", CSV)
        archive.writestr("b.CSV", CSV)
    with pytest.raises(FeedError, match="2 CSV files"):
        read_zipped_csv(buffer.getvalue())
    assert read_zipped_csv(zipped("x.csv", CSV)) == CSV.encode()
