"""HTTP routes of communities (added to the node's API by :func:`add_routes`).

POST /v1/communities                {"name", "zone", "private"?, "parent"?} → the community
                                    ({"community": id, "id", "name", "zone", ...})
GET  /v1/communities                → {"communities": [...]} founded on this node
GET  /v1/communities/{id}           → one of them
GET  /v1/community-directory[?zone=PREFIX] → {"communities": [...]}: public ones in the
                                    zone and below, as the network knows them
"""

from __future__ import annotations

from aiohttp import web

from ioe.community.service import CommunityError, CommunityService
from ioe.services.http import error, json_body

COMMUNITIES: web.AppKey[CommunityService] = web.AppKey("communities", CommunityService)


def add_routes(app: web.Application, service: CommunityService) -> None:
    app[COMMUNITIES] = service
    app.router.add_post("/v1/communities", _create)
    app.router.add_get("/v1/communities", _founded)
    app.router.add_get("/v1/communities/{community}", _show)
    app.router.add_get("/v1/community-directory", _directory)


async def _create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("name"), str)
        or not isinstance(body.get("zone"), str)
        or not isinstance(body.get("private", False), bool)
        or not isinstance(body.get("parent"), str | None)
    ):
        return error(400, "a community is {name, zone, private?, parent?}")
    try:
        listed = await request.app[COMMUNITIES].create(
            body["name"],
            body["zone"],
            private=body.get("private", False),
            parent=body.get("parent"),
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response({"community": listed.charter.id.to_text(), **listed.to_json()})


async def _founded(request: web.Request) -> web.Response:
    found = request.app[COMMUNITIES].founded()
    return web.json_response({"communities": [c.to_json() for c in found]})


async def _show(request: web.Request) -> web.Response:
    try:
        listed = request.app[COMMUNITIES].show(request.match_info["community"])
    except CommunityError as exc:
        return error(404, str(exc))
    return web.json_response(listed.to_json())


async def _directory(request: web.Request) -> web.Response:
    try:
        found = await request.app[COMMUNITIES].directory(request.query.get("zone", ""))
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response({"communities": [c.to_json() for c in found]})
