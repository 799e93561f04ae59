"""The node's local HTTP API (aiohttp), the way the CLI and local apps talk to a running node.

It listens on loopback by default and every request must carry the bearer token from
``node.json`` (readable only by the data directory's owner), so other local users and web pages
cannot drive the node.

    GET  /v1/info                → peer id, addresses, agents, DNAs
    GET  /v1/peers               → connected peers and known members per DNA
    POST /v1/profile             {"name", "zone"} → {"agent", "hash"}
    GET  /v1/profile/{agent}     → {"agent", "name", "zone", "hash"} (from the network)
    GET  /v1/dht                 → DHT counters per DNA
    GET  /v1/directory[?zone=Z]  → the core network's members by their certificates (private
                                 devices only on their owner's node):
    ``ioe.identity.service.directory`` GET  /v1/device              → the bridged device's
    description (device nodes only) GET  /v1/device/values       → its current values by canonical
    name POST /v1/device/values       {"point", "value"} → 204 (checked by the driver first)
    POST /v1/zome/{zome}/{fn}    JSON payload → {"result"} (a call by the node's own agent)
    POST /v1/call                {"agent", "zome", "fn", "payload"?, "secret"?} → {"result"}
                                 (a remote call to another agent, under its grant)
    GET  /v1/grants              → the live capability grants of the node's agent
    POST /v1/grants              {"access", "functions", "assignees"?, "tag"?} →
                                 {"grant", "secret"} (the secret is shown once)
    DELETE /v1/grants/{grant}    → revoke: calls under it are refused from now on
    GET  /v1/wallet, GET /v1/wallet/history, POST /v1/wallet/pay: see ``wallet_api``
    GET  /v1/owner/pending, POST /v1/owner/enroll, GET /v1/owner/devices: ``enrollment_api``
    POST /v1/owner/rescan (devices found again on the network): ``recovery``
    POST /v1/owner/revoke, GET /v1/revocations/{agent}: ``revocations`` (key revocation)
    POST /v1/owner/rotate: ``rotation`` (a device moves to its next agent key)
    POST /v1/owner/transfer/offer|accept, GET /v1/owner/transfers, GET /v1/keys/{agent}/history:
                                 ``transfer`` (ownership transfer)
    GET  /v1/signals             WebSocket: one JSON text message per signal (the token may
                                 also be given as ``?token=``, as browsers cannot set headers)
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ioe import __version__
from ioe.apps.demand import routes as demand_routes
from ioe.appstore import routes as appstore_routes
from ioe.community import routes as community_routes
from ioe.dht.service import DnaNetwork
from ioe.drivers.model import DeviceOffline, PointError
from ioe.engine.capability import SECRET_BYTES
from ioe.engine.cell import Cell
from ioe.engine.schema import decode_as
from ioe.errors import EncodingError, IoEError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.service import (
    enrollment_routes,
    keyset_routes,
    recovery,
    reputation_routes,
    revocations,
    rotation,
    transfer,
)
from ioe.identity.service.directory import OWNER_KIND, directory, entry_for
from ioe.identity.service.host import add_host
from ioe.net.interface import NetworkError
from ioe.services import countersign_routes
from ioe.services.http import MAX_JSON_DEPTH, is_public, json_body, json_depth
from ioe.services.http import error as _error
from ioe.services.jsonvalue import json_ready, secret_from_text, secret_to_text
from ioe.services.remote import RemoteCallError, RemoteUnauthorized
from ioe.services.resolve import resolving
from ioe.wallet import routes as wallet_routes
from ioe.zomes.profile.entries import Profile
from ioe.zomes.profile.validation import PROFILE_LINK

if TYPE_CHECKING:
    from ioe.node.runtime import Node

MAX_BODY = 64 * 1024
NODE_KEY: web.AppKey[Node] = web.AppKey("node")
"""The node, for the core routes of this module only: rooms keep their own keys."""


async def start_api(node: Node, host: str, port: int) -> tuple[web.AppRunner, str]:
    app = web.Application(middlewares=[_auth], client_max_size=MAX_BODY)
    app[NODE_KEY] = node
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/peers", peers)
    app.router.add_post("/v1/profile", set_profile)
    app.router.add_get("/v1/profile/{agent}", get_profile)
    app.router.add_get("/v1/dht", dht_stats)
    app.router.add_get("/v1/directory", list_directory)
    app.router.add_get("/v1/device", device_describe)
    app.router.add_get("/v1/device/values", device_read)
    app.router.add_post("/v1/device/values", device_write)
    app.router.add_post("/v1/zome/{zome}/{fn}", zome_call)
    app.router.add_post("/v1/call", remote_call)
    app.router.add_get("/v1/grants", list_grants)
    app.router.add_post("/v1/grants", create_grant)
    app.router.add_delete("/v1/grants/{grant}", revoke_grant)
    app.router.add_get("/v1/signals", signal_stream)
    countersign_routes.add_routes(app, node)
    add_host(app, node)  # the identity room's routes
    enrollment_routes.add_routes(app)
    keyset_routes.add_routes(app)
    recovery.add_routes(app)
    revocations.add_routes(app)
    transfer.add_routes(app)
    rotation.add_routes(app)
    reputation_routes.add_routes(app)
    wallet_routes.add_routes(app, node.wallet)
    community_routes.add_routes(app, node.communities)
    appstore_routes.add_routes(app, node.appstore)
    demand_routes.add_page_routes(app)
    demand_routes.add_routes(app, node.demand_app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown}:{bound[1]}"


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    if is_public(request):
        page: web.StreamResponse = await handler(request)  # reads its token from the fragment
        return page
    given = request.headers.get("Authorization", "")
    if not given and request.path == "/v1/signals" and "token" in request.query:
        given = f"Bearer {request.query['token']}"
    # a header that is not UTF-8 is a wrong token, not a server error
    offered = given.encode("utf-8", errors="surrogateescape")
    if not hmac.compare_digest(offered, f"Bearer {node.token}".encode()):
        return _error(401, "missing or wrong API token (see node.json)")
    if request.body_exists and json_depth(await request.read()) > MAX_JSON_DEPTH:
        return _error(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RemoteUnauthorized as exc:
        return _error(403, str(exc))
    except RemoteCallError as exc:
        return _error(404 if exc.kind == "unknown" else 400, str(exc))
    except NetworkError as exc:
        return _error(504, f"the other node did not answer: {exc}")
    except (ZomeCallError, ValidationError, EncodingError, PointError, ValueError) as exc:
        return _error(400, str(exc))
    except DeviceOffline as exc:
        return _error(503, str(exc))
    except RecursionError:
        return _error(400, "the request nests too deep")
    except IoEError as exc:
        return _error(500, str(exc))


def _core(node: Node) -> Cell:
    return node.core_cell()


async def info(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return web.json_response(
        {
            "version": __version__,
            "peer_id": node.network.peer_id,
            "addrs": node.network.listen_addrs(),
            "api": node.api_url,
            "agents": [
                {
                    "agent": cell.agent.to_text(),
                    "dna": cell.dna.hash.to_text(),
                    "name": cell.dna.name,
                }
                for cell in node.conductor.cells()
            ],
            "agent": node.conductor.owner_cell.agent.to_text(),
            "owner": node.conductor.owner_agent.to_text(),
            "enrollment": node.enrollment.enrollment.value,
        }
    )


async def peers(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    members = {
        dna_hash.to_text(): [
            {"agent": agent.to_text(), "peer_id": member.peer_id}
            for agent, member in dht.members().items()
        ]
        for dna_hash, dht in node.dnas.items()
    }
    dials = {peer: stats.to_json() for peer, stats in sorted(node.network.dial_stats().items())}
    return web.json_response(
        {"connected": node.network.connected_peers(), "members": members, "dials": dials}
    )


async def set_profile(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    cell = _core(node)
    action = node.call(cell, "profile", "set_profile", body)
    assert isinstance(action, ActionHash)
    return web.json_response({"agent": cell.agent.to_text(), "hash": action.to_text()})


async def latest_profile(dht: DnaNetwork, agent: AgentPubKey) -> tuple[ActionHash, Profile] | None:
    """``agent``'s newest profile as the network holds it (None: it set none)."""
    links = await dht.get_links(agent, PROFILE_LINK)
    for link in reversed(links):
        if not isinstance(link.target, ActionHash):
            continue
        record = await dht.get_record(link.target)
        if record is None or record.entry is None:
            continue
        try:
            return link.target, decode_as(Profile, record.entry.payload)
        except EncodingError:
            continue
    return None


async def get_profile(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        agent = AgentPubKey.from_text(request.match_info["agent"])
    except EncodingError as exc:
        return _error(400, f"not an agent key: {exc}")
    found = await latest_profile(node.dht_for(_core(node)), agent)
    if found is None:
        return _error(404, f"no profile found for {agent.to_text()}")
    action, profile = found
    return web.json_response(
        {
            "agent": agent.to_text(),
            "name": profile.name,
            "zone": profile.zone,
            "hash": action.to_text(),
        }
    )


async def dht_stats(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    out = {}
    for dna_hash, dht in node.dnas.items():
        publishing, published = dht.store.queue_size()
        out[dna_hash.to_text()] = {
            "members": len(dht.members()),
            "publishing": publishing,
            "published": published,
            "held": dht.stats.held,
            "rejected_ops": dht.stats.rejected_ops,
            "refused_peers": dht.stats.refused_peers,
            "gossip_rounds": dht.stats.gossip_rounds,
            "warrants_signed": dht.stats.warrants_signed,
            "warrants_upheld": dht.stats.warrants_upheld,
            "warrants_false": dht.stats.warrants_false,
            "warrants_refused": dht.stats.warrants_refused,
            "blocked_drops": dht.stats.blocked_drops,
        }
    return web.json_response(out)


MAX_PROFILES_LOOKED_UP = 500
"""The directory names at most this many members' owners by their profiles (one get each)."""


async def list_directory(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    dht = node.dht_for(_core(node))
    viewers = {cell.agent for cell in node.conductor.cells()}  # this node's own agents only
    zone = request.query.get("zone") or None
    infos = list(dht.members().values())
    profiles: dict[AgentPubKey, tuple[str, str]] = {}
    for info in infos[:MAX_PROFILES_LOOKED_UP]:
        entry = entry_for(info)
        if entry is not None and entry.kind == OWNER_KIND:
            found = await latest_profile(dht, info.agent)
            if found is not None:
                profiles[info.agent] = (found[1].name, found[1].zone)
    entries = directory(infos, viewers, zone=zone, present=dht.present, profiles=profiles)
    return web.json_response([entry.to_json() for entry in entries])


def _device(node: Node) -> Any:
    if node.device is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "this node bridges no device"}),
            content_type="application/json",
        )
    return node.device


async def device_describe(request: web.Request) -> web.Response:
    return web.json_response(await _device(request.app[NODE_KEY]).describe())


async def device_read(request: web.Request) -> web.Response:
    return web.json_response(await _device(request.app[NODE_KEY]).read())


async def device_write(request: web.Request) -> web.Response:
    device = _device(request.app[NODE_KEY])
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict) or not isinstance(body.get("point"), str):
        return _error(400, "write takes {point, value} or {point, text}")
    if isinstance(body.get("text"), str):
        await device.write_text(body["point"], body["text"])
    elif "value" in body:
        await device.write(body["point"], body["value"])
    else:
        return _error(400, "write takes {point, value} or {point, text}")
    return web.Response(status=204)


async def zome_call(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    payload = await json_body(request) if request.body_exists else None
    zome, fn = request.match_info["zome"], request.match_info["fn"]
    if zome == "capability":
        raise ValueError("grants are managed through /v1/grants")
    cell = _core(node)
    dht = node.dnas.get(cell.dna.hash)
    if dht is None:  # a provisional device: no network to fetch from
        result = node.call(cell, zome, fn, payload)
    else:  # what the call cites but this node lacks is fetched from the DHT, then retried
        result = await resolving(dht, functools.partial(node.call, cell, zome, fn, payload))
    return web.json_response({"result": json_ready(result)})


async def remote_call(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValueError("call takes {agent, zome, fn, payload?, secret?}")
    for key in ("agent", "zome", "fn"):
        if not isinstance(body.get(key), str):
            raise ValueError("call takes {agent, zome, fn, payload?, secret?}")
    secret = body.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise ValueError("secret is the text shown when the grant was made")
    result = await node.remote.call(
        _core(node),
        AgentPubKey.from_text(body["agent"]),
        body["zome"],
        body["fn"],
        body.get("payload"),
        secret=secret_from_text(secret) if secret else None,
    )
    return web.json_response({"result": result})


async def list_grants(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    grants = node.call(_core(node), "capability", "list_grants")
    assert isinstance(grants, dict)
    return web.json_response(
        [
            {
                "grant": action.to_text(),
                "tag": grant.tag,
                "access": grant.access.name.lower(),
                "functions": list(grant.functions),
                "assignees": [a.to_text() for a in grant.assignees],
            }
            for action, grant in grants.items()
        ]
    )


async def create_grant(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValueError("a grant is {access, functions, assignees?, tag?}")
    access = str(body.get("access", ""))
    secret = None if access == "unrestricted" else secrets.token_bytes(SECRET_BYTES)
    payload = {
        "tag": body.get("tag") or f"{access} grant",
        "access": access,
        "functions": body.get("functions"),
        "assignees": body.get("assignees") or [],
        "secret": secret,
    }
    action = node.call(_core(node), "capability", "grant", payload)
    assert isinstance(action, ActionHash)
    return web.json_response(
        {"grant": action.to_text(), "secret": secret_to_text(secret) if secret else None}
    )


async def revoke_grant(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    grant = ActionHash.from_text(request.match_info["grant"])
    action = node.call(_core(node), "capability", "revoke", grant)
    assert isinstance(action, ActionHash)
    return web.json_response({"revoked": grant.to_text(), "hash": action.to_text()})


async def signal_stream(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    socket = web.WebSocketResponse(heartbeat=30.0)
    await socket.prepare(request)
    async with node.signals.listen() as listener:
        receiving = asyncio.ensure_future(socket.receive())
        try:
            while not socket.closed:
                sending = asyncio.ensure_future(listener.next())
                done, _ = await asyncio.wait(
                    {sending, receiving}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiving in done:
                    sending.cancel()
                    message = receiving.result()
                    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                        break
                    receiving = asyncio.ensure_future(socket.receive())  # ignore client text
                    continue
                await socket.send_str(json.dumps(sending.result()))
        finally:
            receiving.cancel()
            await socket.close()
    return socket
