"""Notifications between agents: signals with a kind and a body, nothing written to the chain.

``notify.send {"to": [agent...], "kind": str, "body": any}`` sends a remote signal to each agent;
``notify.emit {"kind": str, "body": any}`` tells this node's own listeners. Receivers see them on
their node's signal stream (``GET /v1/signals``).
"""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import AgentPubKey

coordinator = CoordinatorZome("notify")
MAX_KIND = 64


def _kind(payload: Any) -> str:
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND:
        raise ZomeCallError(f"a notification has a kind of 1 to {MAX_KIND} characters")
    return kind


@coordinator.function
def send(ctx: CallContext, payload: Any) -> int:
    """Signal ``{kind, body}`` to the agents in ``to``; returns how many were addressed."""
    kind = _kind(payload)
    targets = payload.get("to")
    if not isinstance(targets, list) or not targets:
        raise ZomeCallError("notify.send takes {to: [agent, ...], kind, body}")
    agents = []
    for target in targets:
        try:
            agents.append(
                target if isinstance(target, AgentPubKey) else AgentPubKey.from_text(str(target))
            )
        except EncodingError as exc:
            raise ZomeCallError(f"not an agent key: {exc}") from None
    ctx.send_remote_signal("notify", agents, {"kind": kind, "body": payload.get("body")})
    return len(agents)


@coordinator.function
def emit(ctx: CallContext, payload: Any) -> None:
    ctx.emit_signal("notify", {"kind": _kind(payload), "body": payload.get("body")})
