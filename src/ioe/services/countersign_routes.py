"""HTTP routes for countersigning (added to the node's API by :func:`add_routes`).

    POST /v1/countersign        {"with": [agent, ...], "entry": {"type": name, "value": {...}},
                                 "witness"?: agent, "timeout_s"?: seconds}
                                → {"hash", "session", "entry_hash", "elapsed_ms"}
                                  409 {"error"} when refused, abandoned or the chain is locked
    GET  /v1/countersign        → {"locks": [{agent, session, phase}],
                                   "committed": [{session, hash, seq, parties}]}
    POST /v1/countersign/ping   {"with": agent, "count"?: n} → {"rtt_ms": [...]} (benchmarks)

The sessions run on the node's core cell (the owner's agent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from ioe.encoding import Value, encode
from ioe.engine.cell import Cell
from ioe.engine.countersigning import CountersignedEntry
from ioe.engine.ports import ChainQuery
from ioe.engine.records import ActionType, Entry
from ioe.engine.schema import from_value, to_value
from ioe.errors import ChainLocked, EncodingError, IoEError
from ioe.hashing import AgentPubKey, DnaHash
from ioe.services.countersign import Countersigner, CountersignError

MAX_PING_COUNT = 10_000


class CountersignHost(Protocol):
    """What the routes use of their node: its core cell and each DNA's countersigner."""

    @property
    def countersigners(self) -> Mapping[DnaHash, Countersigner]: ...

    def core_cell(self) -> Cell: ...


COUNTERSIGN_HOST: web.AppKey[CountersignHost] = web.AppKey("countersign_host")


def add_routes(app: web.Application, host: CountersignHost) -> None:
    app[COUNTERSIGN_HOST] = host
    app.router.add_post("/v1/countersign", start_session)
    app.router.add_get("/v1/countersign", session_status)
    app.router.add_post("/v1/countersign/ping", ping)


def _node(request: web.Request) -> CountersignHost:
    return request.app[COUNTERSIGN_HOST]


def _core(node: CountersignHost) -> tuple[Cell, Countersigner]:
    try:
        cell = node.core_cell()
    except IoEError as exc:
        raise CountersignError(str(exc)) from None
    return cell, node.countersigners[cell.dna.hash]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _agent(text: Any) -> AgentPubKey:
    if not isinstance(text, str):
        raise ValueError("agents are given as text keys")
    return AgentPubKey.from_text(text)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


async def start_session(request: web.Request) -> web.Response:
    started = time.perf_counter()
    node = _node(request)
    body = await _body(request)
    cell, signer = _core(node)
    others = body.get("with")
    if not isinstance(others, list) or not others:
        return _error(400, '"with" lists the other parties\' agent keys')
    spec = body.get("entry")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return _error(400, '"entry" is {"type": entry type name, "value": {...}}')
    cls = _entry_class(cell.dna, spec["type"])
    if cls is None:
        return _error(400, f"no entry type {spec['type']!r} in this DNA")
    try:
        value: object = from_value(cls, spec.get("value"))
    except EncodingError as exc:
        return _error(400, f"the entry does not fit {spec['type']}: {exc}")
    witness = _agent(body["witness"]) if body.get("witness") else None
    timeout_s = body.get("timeout_s", 10.0)
    if not isinstance(timeout_s, int | float):
        return _error(400, "timeout_s is a number of seconds")
    try:
        action, entry = await signer.start_session(
            cell,
            [_agent(a) for a in others],
            value,
            witness=witness,
            timeout_s=float(timeout_s),
        )
    except (CountersignError, ChainLocked) as exc:
        return _error(409, str(exc))
    return web.json_response(
        {
            "hash": action.to_text(),
            "session": entry.session_id.hex(),
            "entry_hash": Entry.app(encode(to_value(entry))).hash().to_text(),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )


def _entry_class(dna: Any, name: str) -> type | None:
    for zome in dna.integrity_zomes:
        for entry_def in zome.entry_defs:
            if entry_def.name == name:
                cls: type = entry_def.cls
                return cls
    return None


async def session_status(request: web.Request) -> web.Response:
    node = _node(request)
    cell, signer = _core(node)
    entry_type, _ = cell.dna.entry_type_for(CountersignedEntry)
    committed: list[Value] = []
    for record in cell.store.query(
        ChainQuery(action_type=ActionType.CREATE, entry_type=entry_type)
    ):
        value = cell.entry_value(record)
        if isinstance(value, CountersignedEntry):
            committed.append(
                {
                    "session": value.session_id.hex(),
                    "hash": record.action_hash.to_text(),
                    "seq": record.action.seq,
                    "parties": [p.to_text() for p in value.preflight.parties],
                }
            )
    return web.json_response({"locks": signer.status(), "committed": committed})


async def ping(request: web.Request) -> web.Response:
    node = _node(request)
    body = await _body(request)
    _, signer = _core(node)
    agent = _agent(body.get("with"))
    count = body.get("count", 100)
    if not isinstance(count, int) or not 0 < count <= MAX_PING_COUNT:
        return _error(400, f"count is 1 to {MAX_PING_COUNT}")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await signer.ping(agent)
        times.append(round((time.perf_counter() - started) * 1000, 3))
    return web.json_response({"rtt_ms": times})
