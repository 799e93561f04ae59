"""Owner routes of the node API (enrollment of devices, ``docs/identity.md``).

GET  /v1/owner/pending   → [{"device", "name", "type", "zone"}] (devices asking to enroll)
POST /v1/owner/enroll    {"device", "code", "zone"?, "private"?, "trade"? (true), "timeout"?}
                         → {"agent", "index", "name"} ("timeout": for officers' approvals)
GET  /v1/owner/devices   → the devices this owner enrolled, with "present" and "last_seen_us"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ioe.identity.service.enrollment import OwnerEnrollment
from ioe.identity.service.enrollment_messages import EnrollmentError
from ioe.identity.service.host import IDENTITY_HOST

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/owner/pending", pending)
    app.router.add_post("/v1/owner/enroll", enroll)
    app.router.add_get("/v1/owner/devices", devices)


def _owner(request: web.Request) -> OwnerEnrollment:
    node: IdentityHost = request.app[IDENTITY_HOST]
    if not isinstance(node.enrollment, OwnerEnrollment):
        raise web.HTTPBadRequest(
            text='{"error": "this node is not an owner\'s node"}', content_type="application/json"
        )
    return node.enrollment


async def pending(request: web.Request) -> web.Response:
    return web.json_response(_owner(request).pending_list())


async def devices(request: web.Request) -> web.Response:
    return web.json_response(_owner(request).device_status())


async def enroll(request: web.Request) -> web.Response:
    owner = _owner(request)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("device"), str)
        or not isinstance(body.get("code"), str)
        or not isinstance(body.get("zone"), str | None)
        or not isinstance(body.get("trade", True), bool)
    ):
        return web.json_response(
            {"error": "enroll takes {device, code, zone?, private?, trade? (true or false)}"},
            status=400,
        )
    try:
        timeout = body.get("timeout")  # seconds to wait for the keyset officers' approvals
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            timeout = None
        result = await owner.enroll(
            body["device"],
            body["code"],
            zone=body.get("zone"),
            private=bool(body.get("private")),
            trade=body.get("trade", True),
            timeout_s=None if timeout is None else max(0.0, float(timeout)),
        )
    except EnrollmentError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)
