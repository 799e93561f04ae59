"""Real nodes for a check, in this process: each with its own data directory, owner account and
HTTP API on loopback, all on one asyncio loop in a background thread, so that a check written
as plain synchronous code (a fuzz loop, a list of probes) can talk to them while they serve.

Nodes share an in-memory network by default (no sockets but the API's); ``p2p=True`` gives a
node the real libp2p network on 127.0.0.1, as ``ioe node run`` has.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dht.service import DhtConfig
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.services.http import PUBLIC_HANDLERS

T = TypeVar("T")
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)
"""Short timers: a check waits for the network in tenths of a second, not in tens."""
TIMEOUT_S = 60.0


class ScratchNodes:
    """Start with :meth:`add`, talk through :meth:`run`, end with :meth:`close` (or ``with``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nodes: dict[str, Node] = {}
        self.key_files: dict[str, Path] = {}
        self._hub = MemoryHub()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = TIMEOUT_S) -> T:
        """Run ``coroutine`` on the nodes' loop and wait (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def call(self, node: Node, zome: str, fn: str, payload: object = None) -> object:
        """``node`` calls its own core cell's ``zome.fn``, on the nodes' loop (where its other
        writes happen, so they cannot interleave)."""

        async def call() -> object:
            return node.call(node.core_cell(), zome, fn, payload)

        return self.run(call())

    def add(self, name: str, *, p2p: bool = False) -> Node:
        """A new owner's node, started, in ``workdir/name`` (unlocked by a device key file)."""
        data_dir = self.workdir / name
        key_file = self.workdir / f"{name}.key"
        create_device_key_file(key_file)
        conductor, _ = Conductor.init(data_dir, Unlock(key_file=key_file))
        network = None if p2p else MemoryNetwork(self._hub)
        config = NodeConfig(dht=FAST)

        async def start() -> Node:
            node = Node(conductor, config, network=network)
            await node.start()
            return node

        try:
            node = self.run(start())
        except BaseException:
            conductor.close()
            raise
        self.nodes[name] = node
        self.key_files[name] = key_file
        return node

    def close(self) -> None:
        """Stop every node, close its database, stop the loop (idempotent)."""
        for node in list(self.nodes.values()):
            try:
                self.run(node.close())
            finally:
                node.conductor.close()
        self.nodes.clear()
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=TIMEOUT_S)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> ScratchNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """One route of a node's HTTP API: method, path template, and whether it is served
    without the token (an app's static page)."""

    method: str
    path: str
    public: bool


def api_routes(node: Node) -> list[Route]:
    """Every route of ``node``'s HTTP API, as its application holds them (the ``HEAD`` routes
    aiohttp adds for each ``GET`` left out)."""
    app = node._api_runner.app
    public = app.get(PUBLIC_HANDLERS, set())
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method != "HEAD" and isinstance(path, str):
            routes.add(Route(route.method, path, route.handler in public))
    return sorted(routes)
