"""Two nodes of the core DNA on the in-memory network, for node-level tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest

from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dht.service import DhtConfig
from ioe.faults import NO_FAULTS, Faults
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig

FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


Pair = Callable[..., Awaitable[tuple[Node, Node]]]


@pytest.fixture
async def make_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """``await make_pair(countersign_accept=(...), faults={"alice": ...})``: two started,
    connected nodes."""
    nodes: list[Node] = []

    async def make(
        countersign_accept: tuple[str, ...] = (), faults: Mapping[str, Faults] | None = None
    ) -> tuple[Node, Node]:
        hub = MemoryHub()
        made = []
        for name in ("alice", "bob"):
            key = tmp_path / f"{name}.key"
            create_device_key_file(key)
            conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
            config = NodeConfig(dht=FAST, countersign_accept=countersign_accept)
            node = Node(
                conductor,
                config,
                network=MemoryNetwork(hub),
                faults=(faults or {}).get(name, NO_FAULTS),
            )
            await node.start()
            nodes.append(node)
            made.append(node)
        alice, bob = made
        await bob.network.connect(alice.network.listen_addrs()[0])
        await eventually(
            lambda: all(len(n.dht_for(n.conductor.owner_cell).members()) == 2 for n in made)
        )
        return alice, bob

    try:
        yield make
    finally:
        for node in nodes:
            await node.close()
            node.conductor.close()


@pytest.fixture
async def pair(make_pair: Pair) -> tuple[Node, Node]:
    return await make_pair()
