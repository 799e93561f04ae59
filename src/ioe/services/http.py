"""What every room's HTTP routes share: public pages, JSON bodies, error replies.

Each room adds its own routes to the node's aiohttp application (``add_routes(app, service)``),
keeping what its handlers need under its own typed ``web.AppKey``. Every route needs the node's
bearer token except the ones a room adds with :func:`add_public_get` (an app's static page:
it holds no data, and the calls it makes carry the token it reads from its URL fragment).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_HANDLERS: web.AppKey[set[Handler]] = web.AppKey("public_handlers", set)


def add_public_get(app: web.Application, path: str, handler: Handler) -> None:
    """Serve ``GET path`` without the token."""
    app.router.add_get(path, handler)
    if PUBLIC_HANDLERS not in app:
        app[PUBLIC_HANDLERS] = set()
    app[PUBLIC_HANDLERS].add(handler)


def is_public(request: web.Request) -> bool:
    return request.match_info.route.handler in request.app.get(PUBLIC_HANDLERS, set())


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; ``ValueError`` (a 400) if it is not JSON."""
    try:
        return await request.json()
    except json.JSONDecodeError:
        raise ValueError("the body must be JSON") from None


MAX_JSON_DEPTH = 32
"""No API body nests deeper than this (deeper ones are refused before any handler reads them:
a thousand nested lists would otherwise reach Python's recursion limit as a 500)."""


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of the JSON text ``data`` nest (brackets inside strings
    do not count). Linear, no recursion; garbage gives some number and is refused later."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
