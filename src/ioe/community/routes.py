"""HTTP routes of communities (added to the node's API by :func:`add_routes`).

POST /v1/communities                {"name", "zone", "private"?, "parent"?} → the community
                                    ({"community": id, "id", "name", "zone", ...})
GET  /v1/communities                → {"communities": [...]} founded on this node
GET  /v1/communities/{id}           → one of them
GET  /v1/community-directory[?zone=PREFIX] → {"communities": [...]}: public ones in the
                                    zone and below, as the network knows them
GET  /v1/community-alerts           → {"alerts": [...]}
POST /v1/communities/{id}/members   {"member", "role"?, "access"?} → {"state": "member", ...}
                                    (this owner's member) or {"state": "pending", "invitation",
                                    ...} (another owner's, whose node is asked in the background)
GET  /v1/communities/{id}/members   → {"members": [...]}
DELETE /v1/communities/{id}/members/{agent}[?reason=R] → {"revoked": action}
PUT  /v1/communities/{id}/members/{agent}/role {"role", "access"?} → as POST members
GET|PUT /v1/communities/{id}/rules  the rule file (docs/communities.md)
POST /v1/communities/{id}/join      {"device"?, "role"?, "allow"?: [levels], "timeout"?} →
                                    {"state": "member"|"pending"|"refused", "reason"?, ...}
GET  /v1/community-requests         → {"join_requests", "invitations", "approvals", "joins",
                                    "memberships"}
POST /v1/community-requests/{id}/accept {"role"?} | /refuse {"reason"?} → the decided request
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ioe.community.invitation import Invitation
from ioe.community.rules import RuleError
from ioe.community.service import CommunityError, CommunityService, Listed, Member
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
    app.router.add_put("/v1/communities/{community}/members/{agent}/role", _change_role)
    app.router.add_post("/v1/communities/{community}/join", _join)
    app.router.add_get("/v1/community-requests", _requests)
    app.router.add_post("/v1/community-requests/{request}/accept", _accept)
    app.router.add_post("/v1/community-requests/{request}/refuse", _refuse)


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


def _levels(value: object) -> bool:
    """Whether ``value`` is an optional list of access level names."""
    return value is None or (isinstance(value, list) and all(isinstance(a, str) for a in value))


def _made(made: Member | Invitation) -> dict[str, Any]:
    """A membership made at once, or an invitation under way, as the API shows it."""
    if isinstance(made, Invitation):
        return made.to_json()
    return {"state": "member", "community": made.membership.community.to_text(), **made.to_json()}


async def _add_member(request: web.Request) -> web.Response:
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("member"), str)
        or not isinstance(body.get("role", "member"), str)
        or not _levels(body.get("access"))
    ):
        return error(400, "a membership is {member, role?, access?: [see|control|trade]}")
    try:
        made = await request.app[COMMUNITIES].add_member(
            request.match_info["community"],
            body["member"],
            role=body.get("role", "member"),
            access=body.get("access"),
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(_made(made))


async def _change_role(request: web.Request) -> web.Response:
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("role"), str)
        or not _levels(body.get("access"))
    ):
        return error(400, "a new role is {role, access?: [see|control|trade]}")
    try:
        made = await request.app[COMMUNITIES].change_role(
            request.match_info["community"],
            request.match_info["agent"],
            body["role"],
            body.get("access"),
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(_made(made))


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


async def _join(request: web.Request) -> web.Response:
    body = await json_body(request)
    timeout = body.get("timeout", 20.0) if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("device"), str | None)
        or not isinstance(body.get("role"), str | None)
        or not _levels(body.get("allow"))
        or not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 <= timeout <= 600
    ):
        return error(400, "a join is {device?, role?, allow?: [see|control|trade], timeout?: s}")
    try:
        answer = await request.app[COMMUNITIES].joins.join(
            request.match_info["community"],
            device=body.get("device"),
            role=body.get("role"),
            allow=body.get("allow"),
            timeout_s=float(timeout),
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(answer)


async def _requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[COMMUNITIES].joins.listing())


async def _accept(request: web.Request) -> web.Response:
    body = await json_body(request) if request.body_exists else {}
    if not isinstance(body, dict) or not isinstance(body.get("role"), str | None):
        return error(400, "an acceptance is {role?}")
    try:
        done = request.app[COMMUNITIES].joins.accept(
            request.match_info["request"], body.get("role")
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(done)


async def _refuse(request: web.Request) -> web.Response:
    body = await json_body(request) if request.body_exists else {}
    if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str):
        return error(400, "a refusal is {reason?}")
    try:
        done = request.app[COMMUNITIES].joins.refuse(
            request.match_info["request"], body.get("reason", "")
        )
    except CommunityError as exc:
        return error(400, str(exc))
    return web.json_response(done)
