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

from ioe.community.rules import RuleError
from ioe.community.service import CommunityError, CommunityService, Listed
from ioe.services.http import error, json_body

COMMUNITIES: web.AppKey[CommunityService] = web.AppKey("communities", CommunityService)


def add_routes(app: web.Application, service: CommunityService) -> None:
    app[COMMUNITIES] = service
    app.router.add_post("/v1/communities", _create)
    app.router.add_get("/v1/communities", _founded)
    app.router.add_get("/v1/communities/{community}", _show)
    app.router.add_get("/v1/community-directory", _directory)
    app.router.add_get("/v1/community-alerts", _alerts)
    app.router.add_post("/v1/communities/{community}/members", _add_member)
    app.router.add_get("/v1/communities/{community}/members", _members)
    app.router.add_delete("/v1/communities/{community}/members/{agent}", _remove_member)
    app.router.add_get("/v1/communities/{community}/rules", _rules)
    app.router.add_put("/v1/communities/{community}/rules", _set_rules)


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


async def _counted(service: CommunityService, listed: Listed) -> dict[str, object]:
    """A community founded here as the API shows it: its manager and its live members."""
    members = await service.members(listed.charter.id.to_text())
    return {**listed.to_json(), "members": 1 + len(members)}


async def _founded(request: web.Request) -> web.Response:
    service = request.app[COMMUNITIES]
    found = [await _counted(service, listed) for listed in service.founded()]
    return web.json_response({"communities": found})


async def _show(request: web.Request) -> web.Response:
    service = request.app[COMMUNITIES]
    try:
        listed = service.show(request.match_info["community"])
    except CommunityError as exc:
        return error(404, str(exc))
    return web.json_response(await _counted(service, listed))


async def _add_member(request: web.Request) -> web.Response:
    body = await json_body(request)
    access = body.get("access") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("member"), str)
        or not isinstance(body.get("role", "member"), str)
        or not (
            access is None or (isinstance(access, list) and all(isinstance(a, str) for a in access))
        )
    ):
        return error(400, "a membership is {member, role?, access?: [see|control|trade]}")
    try:
        member = await request.app[COMMUNITIES].add_member(
            request.match_info["community"],
            body["member"],
            role=body.get("role", "member"),
            access=access,
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(member.to_json())


async def _members(request: web.Request) -> web.Response:
    try:
        found = await request.app[COMMUNITIES].members(request.match_info["community"])
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response({"members": [m.to_json() for m in found]})


async def _remove_member(request: web.Request) -> web.Response:
    try:
        action = await request.app[COMMUNITIES].remove_member(
            request.match_info["community"],
            request.match_info["agent"],
            request.query.get("reason", ""),
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response({"revoked": action.to_text()})


async def _directory(request: web.Request) -> web.Response:
    try:
        found = await request.app[COMMUNITIES].directory(request.query.get("zone", ""))
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response({"communities": [c.to_json() for c in found]})


async def _rules(request: web.Request) -> web.Response:
    try:
        text = request.app[COMMUNITIES].rules_text(request.match_info["community"])
    except CommunityError as exc:
        return error(404, str(exc))
    return web.Response(text=text, content_type="application/json")


async def _set_rules(request: web.Request) -> web.Response:
    text = await request.text()
    try:
        count = request.app[COMMUNITIES].set_rules(request.match_info["community"], text)
    except (CommunityError, RuleError) as exc:
        return error(400, str(exc))
    return web.json_response({"rules": count})


async def _alerts(request: web.Request) -> web.Response:
    return web.json_response({"alerts": list(request.app[COMMUNITIES].alerts)})
