"""HTTP routes of the node's reputation view (added to the node's API by :func:`add_routes`).

GET  /v1/reputation                  → [{"agent", "score", "basis": {kind: count}}] every
                                       agent this node has observed
GET  /v1/reputation/policy           → {"weights", "start", "half_life_us", "min_score"}
PUT  /v1/reputation/policy           {"weights"?: {kind: int}, "half_life_days"?: number,
                                      "min_score"?: int | null} → the new policy;
                                      400 {"error"} if the pure checks refuse it
GET  /v1/reputation/{agent}          → {"agent", "score", "basis"} (neutral if never seen)
POST /v1/reputation/{agent}/publish  → {"hash", "claimant", "subject", "score", "basis",
                                       "at_us"}: this node's view, a signed claim
GET  /v1/reputation/{agent}/claims   → {"subject", "claims": [{"claimant", "score",
                                       "basis", "at_us", "claimant_score", "weight_pm"}],
                                       "weighted_score"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey
from ioe.identity.reputation import DAY_US
from ioe.identity.service.host import IDENTITY_HOST
from ioe.identity.service.reputation import changed_policy, claims_about, publish_claim, save_policy

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/reputation", all_agents)
    app.router.add_get("/v1/reputation/policy", get_policy)
    app.router.add_put("/v1/reputation/policy", put_policy)
    app.router.add_get("/v1/reputation/{agent}", one_agent)
    app.router.add_post("/v1/reputation/{agent}/publish", publish)
    app.router.add_get("/v1/reputation/{agent}/claims", claims)


def _node(request: web.Request) -> IdentityHost:
    return request.app[IDENTITY_HOST]


def _agent(request: web.Request) -> AgentPubKey:
    try:
        return AgentPubKey.from_text(request.match_info["agent"])
    except (EncodingError, ValueError) as exc:
        raise web.HTTPBadRequest(
            text=f'{{"error": "not an agent key: {exc}"}}', content_type="application/json"
        ) from None


async def all_agents(request: web.Request) -> web.Response:
    return web.json_response(_node(request).reputation.view())


async def one_agent(request: web.Request) -> web.Response:
    return web.json_response(_node(request).reputation.view(_agent(request))[0])


async def get_policy(request: web.Request) -> web.Response:
    return web.json_response(_node(request).reputation.policy().to_value())


def policy_change(body: Any, current: Any) -> Any:
    """The policy a PUT body asks for (``ValueError`` with the reason)."""
    if not isinstance(body, dict) or not set(body) <= {"weights", "half_life_days", "min_score"}:
        raise ValueError("the policy takes {weights?, half_life_days?, min_score?}")
    weights = body.get("weights")
    if weights is not None and not isinstance(weights, dict):
        raise ValueError("weights is a map of event kind to integer")
    days = body.get("half_life_days")
    if days is not None and (type(days) not in (int, float) or not 0 < days <= 36_500):
        raise ValueError("half_life_days is a number of days in (0, 36500]")
    return changed_policy(
        current,
        weights=weights,
        half_life_us=None if days is None else int(days * DAY_US),
        min_score=body.get("min_score"),
        clear_min_score="min_score" in body and body["min_score"] is None,
    )


async def put_policy(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body is not JSON"}, status=400)
    try:
        policy = policy_change(body, node.reputation.policy())
        save_policy(node.conductor.db, policy)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(policy.to_value())


async def publish(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        return web.json_response(await publish_claim(node, _agent(request)))
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def claims(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        return web.json_response(await claims_about(node, _agent(request)))
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)
