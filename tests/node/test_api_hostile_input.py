"""The node's HTTP API answers hostile requests with a 4xx, never a 500: a header that is not
UTF-8, JSON nested a thousand deep on every route that takes a body, and profile names built to
deceive (bidirectional overrides, zero-width characters, NUL)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ioe.node.runtime import Node
from ioe.services.http import MAX_JSON_DEPTH, json_depth

pytestmark = pytest.mark.anyio

DEEP = ("[" * 1000 + "]" * 1000).encode()


def test_json_depth_by_hand() -> None:
    assert json_depth(b'{"a": [1, {"b": 2}]}') == 3
    assert json_depth(b'"[[[[" ') == 0  # brackets in a string do not count
    assert json_depth(b'["\\"[", [[]]]') == 3  # nor after an escaped quote
    assert json_depth(DEEP) == 1000 > MAX_JSON_DEPTH


async def _raw(node: Node, request: bytes) -> bytes:
    """Send ``request`` as raw bytes to the node's API and return the status line."""
    host, port = node.api_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).strip()
    finally:
        writer.close()


async def test_an_authorization_header_that_is_not_utf8_is_a_401(
    pair: tuple[Node, Node],
) -> None:
    node, _ = pair
    request = b"GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
    status = await _raw(node, request)
    assert status.split()[1] in (b"400", b"401"), status  # refused, never a 500


@pytest.mark.parametrize(
    "path",
    ["/v1/wallet/pay", "/v1/zome/profile/set_profile", "/v1/call", "/v1/countersign",
     "/v1/profile", "/v1/grants"],
)  # fmt: skip
async def test_json_nested_a_thousand_deep_is_a_400(pair: tuple[Node, Node], path: str) -> None:
    node, _ = pair
    headers = {"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(node.api_url + path, data=DEEP, headers=headers) as response,
    ):
        assert response.status == 400, await response.text()
        assert "nests deeper" in (await response.json())["error"]


async def test_a_body_checked_for_depth_still_reaches_the_handler(pair: tuple[Node, Node]) -> None:
    """The depth check reads the body first; the route must still see it (a zome call with a
    map once arrived as no payload at all)."""
    node, _ = pair
    headers = {"Authorization": f"Bearer {node.token}"}
    body = {"name": "Sam", "zone": "au/nsw"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            node.api_url + "/v1/zome/profile/set_profile", json=body, headers=headers
        ) as response,
    ):
        assert response.status == 200, await response.text()
    assert node.call(node.core_cell(), "profile", "my_profile").name == "Sam"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["Sam\u202eesuoh", "Sa\u200bm", "Sam\x00", "Sam\u2066x"])
async def test_profile_names_that_would_deceive_are_refused(
    pair: tuple[Node, Node], name: str
) -> None:
    node, _ = pair
    headers = {"Authorization": f"Bearer {node.token}"}
    body = {"name": name, "zone": "au/nsw"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(node.api_url + "/v1/profile", json=body, headers=headers) as response,
    ):
        assert response.status == 400
        assert "printable" in (await response.json())["error"]
