"""HTTP routes of the Demand Management app (added to the node's API by :func:`add_routes`).

GET  /app/demand/            the app's page and its assets (no token: the page reads it
                             from its URL fragment)
GET  /v1/apps/demand         → the app's state (settings, feed, intervals, off-periods)
PUT  /v1/apps/demand/settings  {"threshold_pct", ...} → the settings now in force
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from aiohttp import web

from ioe.apps.demand.runner import DemandApp
from ioe.services.http import add_public_get

APP_KEY: web.AppKey[DemandApp] = web.AppKey("demand_app", DemandApp)
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def add_page_routes(app: web.Application) -> None:
    """The page, served by every node (it shows the app of the node it is opened on)."""
    add_public_get(app, "/app/demand/", page)
    add_public_get(app, "/app/demand/{file}", page)


def add_routes(app: web.Application, demand: DemandApp) -> None:
    """The app's state and settings, on a node that runs it."""
    app[APP_KEY] = demand
    app.router.add_get("/v1/apps/demand", _state)
    app.router.add_put("/v1/apps/demand/settings", _settings)


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[APP_KEY].state())


async def _settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    try:
        settings = request.app[APP_KEY].update_settings(body)
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
