"""HTTP routes of the app store (added to the node's API by :func:`add_routes`).

GET  /v1/store                      → {"apps": [...]}: the newest listing of every app
GET  /v1/store/{app}[?developer=A]  → the app's newest listing
POST /v1/store                      {"manifest": TEXT} (a manifest file) → the listing
POST /v1/store/{app}/install        {"community", "settings"?, "periods"?, "developer"?} → the
                                    installation ({"installation", "state", "granted", ...})
POST /v1/store/{app}/uninstall      {"community", "reason"?} → {"uninstalled": action}
GET  /v1/store-subscriptions        → {"subscriptions": [...]}: installations made here
GET  /v1/store-installations?community=ID → {"installations": [...]}: into that community
GET  /v1/running-apps               → {"running": [...]}: the apps running on this node
GET  /v1/running-apps/{app}/board?topic=T → {"posts": [...]} in the app's network

(``/v1/apps/<app>`` is each app's own API, served by the app where it runs.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ioe.appstore.service import AppStore, AppStoreError
from ioe.errors import IoEError
from ioe.services.http import error, json_body

APP_STORE: web.AppKey[AppStore] = web.AppKey("app_store", AppStore)


def add_routes(app: web.Application, store: AppStore) -> None:
    app[APP_STORE] = store
    app.router.add_get("/v1/store", _list)
    app.router.add_post("/v1/store", _publish)
    app.router.add_get("/v1/store/{app}", _show)
    app.router.add_post("/v1/store/{app}/install", _install)
    app.router.add_post("/v1/store/{app}/uninstall", _uninstall)
    app.router.add_get("/v1/store-subscriptions", _subscriptions)
    app.router.add_get("/v1/store-installations", _installations)
    app.router.add_get("/v1/running-apps", _running)
    app.router.add_get("/v1/running-apps/{app}/board", _board)


def _now(store: AppStore) -> int:
    return store.host.conductor.clock()


async def _list(request: web.Request) -> web.Response:
    listings = await request.app[APP_STORE].listings()
    return web.json_response({"apps": [item.to_json() for item in listings]})


async def _show(request: web.Request) -> web.Response:
    store = request.app[APP_STORE]
    try:
        listing = await store.listing(
            request.match_info["app"], request.query.get("developer") or None
        )
    except AppStoreError as exc:
        return error(404, str(exc))
    return web.json_response(listing.to_json())


async def _publish(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("manifest"), str):
        return error(400, "publish takes {manifest: the manifest file's text}")
    try:
        listing = await request.app[APP_STORE].publish(body["manifest"])
    except (AppStoreError, IoEError) as exc:
        return error(400, str(exc))
    return web.json_response(listing.to_json())


def _install_body(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("community"), str):
        return "install takes {community, settings?, periods?, developer?}"
    periods = body.get("periods")
    if periods is not None and (type(periods) is not int or periods < 1):
        return "periods is a whole number of at least 1"
    if not isinstance(body.get("developer"), str | None):
        return "developer is an agent key"
    if not isinstance(body.get("settings"), dict | str | None):
        return "settings is a JSON object"
    return None


async def _install(request: web.Request) -> web.Response:
    body = await json_body(request)
    problem = _install_body(body)
    if problem:
        return error(400, problem)
    try:
        installed = await request.app[APP_STORE].install(
            body["community"],
            request.match_info["app"],
            settings=body.get("settings"),
            developer=body.get("developer"),
            periods=body.get("periods"),
        )
    except (AppStoreError, IoEError) as exc:
        return error(400, str(exc))
    return web.json_response(installed)


async def _uninstall(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("community"), str):
        return error(400, "uninstall takes {community, reason?}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        return error(400, "reason is text")
    try:
        action = await request.app[APP_STORE].uninstall(
            body["community"], request.match_info["app"], reason
        )
    except (AppStoreError, IoEError) as exc:
        return error(400, str(exc))
    return web.json_response({"uninstalled": action.to_text(), "app": request.match_info["app"]})


async def _subscriptions(request: web.Request) -> web.Response:
    store = request.app[APP_STORE]
    found = await store.subscriptions()
    return web.json_response({"subscriptions": [i.to_json(_now(store)) for i in found]})


async def _installations(request: web.Request) -> web.Response:
    store = request.app[APP_STORE]
    try:
        found = await store.installations_of(request.query.get("community", ""))
    except AppStoreError as exc:
        return error(400, str(exc))
    return web.json_response({"installations": [i.to_json(_now(store)) for i in found]})


async def _running(request: web.Request) -> web.Response:
    return web.json_response({"running": request.app[APP_STORE].running_json()})


async def _board(request: web.Request) -> web.Response:
    topic = request.query.get("topic", "")
    try:
        posts = await request.app[APP_STORE].board(request.match_info["app"], topic)
    except AppStoreError as exc:
        return error(404, str(exc))
    return web.json_response({"posts": posts})
