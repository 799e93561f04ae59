"""Keyset routes of the node API (``docs/identity.md``, "Enterprise keysets (M of N)").

GET  /v1/owner/keyset              → the keyset this node signs under (see ``keyset_json``)
POST /v1/owner/keyset              {"signers": [key], "required", "revoker"?} → the new keyset
GET  /v1/owner/approvals           → signing requests from portfolio nodes, pending or decided
POST /v1/owner/approvals/{id}      {"approve": bool} → the request, signed or refused
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ioe.errors import IoEError
from ioe.identity.service.host import IDENTITY_HOST
from ioe.identity.service.keyset import create_keyset, keyset_json, node_keyset, parse_keys

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/owner/keyset", show)
    app.router.add_post("/v1/owner/keyset", create)
    app.router.add_get("/v1/owner/approvals", approvals)
    app.router.add_post("/v1/owner/approvals/{id}", decide)


def _node(request: web.Request) -> IdentityHost:
    return request.app[IDENTITY_HOST]


def _error(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400)


async def show(request: web.Request) -> web.Response:
    conductor = _node(request).conductor
    try:
        return web.json_response(keyset_json(node_keyset(conductor), conductor))
    except IoEError as exc:
        return _error(str(exc))


async def create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error("the body is not JSON")
    signers = body.get("signers") if isinstance(body, dict) else None
    if (
        not isinstance(signers, list)
        or not all(isinstance(s, str) for s in signers)
        or type(body.get("required")) is not int
        or not isinstance(body.get("revoker"), str | None)
    ):
        return _error("keyset takes {signers: [key], required, revoker?}")
    conductor = _node(request).conductor
    try:
        revoker = body.get("revoker")
        keyset = create_keyset(
            conductor,
            parse_keys(signers),
            body["required"],
            parse_keys([revoker], "revoker")[0] if revoker else None,
        )
        return web.json_response(keyset_json(keyset, conductor))
    except IoEError as exc:
        return _error(str(exc))


async def approvals(request: web.Request) -> web.Response:
    return web.json_response(_node(request).keyset_signing.pending())


async def decide(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error("the body is not JSON")
    if not isinstance(body, dict) or type(body.get("approve")) is not bool:
        return _error("an approval takes {approve: true|false}")
    try:
        result = _node(request).keyset_signing.decide(request.match_info["id"], body["approve"])
    except IoEError as exc:
        return _error(str(exc))
    return web.json_response(result)
