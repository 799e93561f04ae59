"""The live NEM price: the newest DISPATCHIS report from AEMO's public NEMWeb site.

Every 5 minutes AEMO adds a zip file to ``Reports/Current/DispatchIS_Reports/``, named
``PUBLIC_DISPATCHIS_<YYYYMMDDhhmm>_<sequence>.zip``; the folder's listing is a plain HTML page
of links. :func:`fetch_latest_prices` reads the listing, picks the newest file by the time and
sequence in its name, downloads it, unzips its one CSV and parses it (:mod:`.nemweb`).

Everything fetched is untrusted and bounded: the listing, the zip and the unzipped CSV each
have a size cap (a "zip bomb" declares a small file and inflates to gigabytes — the inflated
bytes are counted as they are read), and the zip may hold only a few members. Network failures
and anything malformed become :class:`FeedError`. The base URL is a parameter, so tests serve
the same layout from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import zipfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import aiohttp

from ioe.market_data.base import FeedError, PricePoint
from ioe.market_data.nemweb import MAX_CSV_BYTES, parse_dispatch_prices

__all__ = [
    "MAX_LISTING_BYTES",
    "MAX_ZIP_BYTES",
    "NEMWEB_DISPATCHIS_URL",
    "fetch_latest_prices",
    "newest_report_url",
    "poll_nemweb",
    "read_zipped_csv",
]

log = logging.getLogger(__name__)

NEMWEB_DISPATCHIS_URL = "https://nemweb.com.au/Reports/Current/DispatchIS_Reports/"
MAX_LISTING_BYTES = 8 * 1024 * 1024
"""The listing holds a few days of files (about 1 MB)."""
LIVE_POLL_S = 30.0
MAX_ZIP_BYTES = 4 * 1024 * 1024
MAX_ZIP_MEMBERS = 4
_NAME = re.compile(r"PUBLIC_DISPATCHIS_([0-9]{12})_([0-9]{1,20})\.zip\Z", re.IGNORECASE)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value)


def newest_report_url(listing: str, base_url: str) -> str:
    """The URL of the newest DISPATCHIS zip linked from a directory ``listing`` (HTML)
    fetched from ``base_url``. ``FeedError`` when it links none."""
    links = _Links()
    try:
        links.feed(listing)
        links.close()
    except Exception as exc:
        raise FeedError(f"the listing is not HTML: {exc}") from None
    best: tuple[str, int, str] | None = None
    for href in links.hrefs:
        name = urlsplit(href).path.rsplit("/", 1)[-1]
        match = _NAME.match(name)
        if match is None:
            continue
        key = (match.group(1), int(match.group(2)), href)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        raise FeedError("the listing links no PUBLIC_DISPATCHIS_*.zip file")
    url = urljoin(base_url, best[2])
    if urlsplit(url).scheme not in ("http", "https"):
        raise FeedError(f"the listing links a file that is not on the web: {url[:80]!r}")
    return url


def read_zipped_csv(data: bytes, *, max_bytes: int = MAX_CSV_BYTES) -> bytes:
    """The one CSV inside a report zip, read at most ``max_bytes`` far whatever the zip says."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise FeedError(f"the zip holds {len(members)} files, not one report")
            csvs = [m for m in members if m.filename.upper().endswith(".CSV")]
            if len(csvs) != 1:
                raise FeedError(f"the zip holds {len(csvs)} CSV files, not one")
            if csvs[0].file_size > max_bytes:
                raise FeedError(f"the report inflates to {csvs[0].file_size} bytes: too big")
            with archive.open(csvs[0]) as member:
                content = member.read(max_bytes + 1)
    except FeedError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise FeedError(f"not a readable zip file: {exc}") from None
    except (ValueError, EOFError, RuntimeError) as exc:  # corrupt streams, encrypted members
        raise FeedError(f"not a readable zip file: {exc}") from None
    if len(content) > max_bytes:
        raise FeedError(f"the report inflates to over {max_bytes} bytes: too big")
    return content


async def _get(session: aiohttp.ClientSession, url: str, limit: int) -> bytes:
    async with session.get(url, allow_redirects=True) as response:
        if response.status != 200:
            raise FeedError(f"{url}: HTTP {response.status}")
        if response.content_length is not None and response.content_length > limit:
            raise FeedError(f"{url}: {response.content_length} bytes is more than {limit}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise FeedError(f"{url}: more than {limit} bytes")
        return bytes(body)


async def fetch_latest_prices(
    region: str,
    *,
    base_url: str = NEMWEB_DISPATCHIS_URL,
    session: aiohttp.ClientSession | None = None,
    timeout_s: float = 30.0,
) -> list[PricePoint]:
    """The prices of ``region`` (``"NSW1"``…) in the newest DISPATCHIS report under
    ``base_url`` (usually one point: the interval that just ended). ``FeedError`` on any
    failure. Pass a ``session`` to reuse connections between polls."""
    listing_url = base_url if base_url.endswith("/") else base_url + "/"
    own = session is None
    client = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
    try:
        listing = await _get(client, listing_url, MAX_LISTING_BYTES)
        url = newest_report_url(listing.decode("utf-8", errors="replace"), listing_url)
        data = await _get(client, url, MAX_ZIP_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FeedError(f"NEMWeb could not be read: {exc or type(exc).__name__}") from None
    finally:
        if own:
            await client.close()
    return parse_dispatch_prices(read_zipped_csv(data), region)


async def poll_nemweb(
    region: str, *, poll_s: float = LIVE_POLL_S, base_url: str = NEMWEB_DISPATCHIS_URL
) -> AsyncIterator[PricePoint]:
    """AEMO's live 5-minute prices of ``region``: the newest DISPATCHIS report every
    ``poll_s``, each interval once. A failed poll is logged and retried; a consumer that must
    act on silence (the demand app's stopped-feed watch) watches the pace itself."""
    last: int | None = None
    while True:
        try:
            points = await fetch_latest_prices(region, base_url=base_url)
        except FeedError as exc:
            log.warning("NEMWeb poll failed: %s", exc)
            points = []
        for point in points:
            if last is None or point.end_us > last:
                last = point.end_us
                yield point
        await asyncio.sleep(poll_s)
