"""HTTP routes of the Demand Management app (added to the node's API by :func:`add_routes`).

GET  /app/demand/            the app's page and its assets (no token: the page reads it
                             from its URL fragment)
GET  /v1/apps/demand         → the app's state (settings, feed, intervals, off-periods)
PUT  /v1/apps/demand/settings  {"threshold_pct", ...} → the settings now in force

The state and settings routes answer 404 while the app does not run on the node: it may start
later (installed into the plug's community from the store) and stop again.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ioe.apps.demand.runner import DemandApp
from ioe.services.http import add_public_get

CurrentApp = Callable[[], DemandApp | None]
APP_KEY: web.AppKey[CurrentApp] = web.AppKey("demand_app")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def add_page_routes(app: web.Application) -> None:
    """The page, served by every node (it shows the app of the node it is opened on)."""
    add_public_get(app, "/app/demand/", page)
    add_public_get(app, "/app/demand/{file}", page)


def add_routes(app: web.Application, current: CurrentApp) -> None:
    """The app's state and settings, of the app ``current()`` says runs here (None: none)."""
    app[APP_KEY] = current
    app.router.add_get("/v1/apps/demand", _state)
    app.router.add_put("/v1/apps/demand/settings", _settings)


def _running(request: web.Request) -> DemandApp:
    demand = request.app[APP_KEY]()
    if demand is None:
        raise web.HTTPNotFound(
            text='{"error": "the demand app does not run on this node"}',
            content_type="application/json",
        )
    return demand


async def _state(request: web.Request) -> web.Response:
    return web.json_response(_running(request).state())


async def _settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    try:
        settings = _running(request).update_settings(body)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(settings.to_value())


async def page(request: web.Request) -> web.StreamResponse:
    """``/app/demand/`` and its assets."""
    name = request.match_info.get("file") or "index.html"
    if "/" in name or name.startswith("."):
        raise web.HTTPNotFound()
    resource = importlib.resources.files("ioe.apps.demand") / "web" / name
    if not resource.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=resource.read_bytes(),
        content_type=CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"),
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
