"""What the in-memory DHT tests share: the DNA, a fast configuration, a ticking clock, and one
node (a cell, its database, network and DNA network) built the same way everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ioe.crypto.keys import KeyPair
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import membrane_proof_for

DNA = core_dna()
FAST = DhtConfig(
    replication=3,
    publish_interval_s=0.05,
    gossip_interval_s=0.2,
    request_timeout_s=0.5,
    max_backoff_s=1.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


@dataclass
class Node:
    cell: Cell
    net: MemoryNetwork
    dht: DnaNetwork
    db: SqliteDatabase

    async def close(self) -> None:
        await self.dht.close()
        await self.net.close()
        self.db.close()


async def start_node(
    directory: Path,
    hub: MemoryHub,
    index: int,
    clock: Clock,
    name: str | None = None,
    config: DhtConfig = FAST,
) -> Node:
    """Node ``index`` (its key is ``index + 1`` repeated): genesis unless its database already
    has a chain, then its network and DNA network started."""
    keys = KeyPair(bytes([index + 1]) * 32)
    db = SqliteDatabase.open(directory / f"n{index}.sqlite", dnas=[DNA])
    cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
    if cell.store.head() is None:
        cell.genesis(membrane_proof_for(cell.keys), now_us=clock())
    net = MemoryNetwork(hub, name) if name is not None else MemoryNetwork(hub)
    await net.start()
    dht = DnaNetwork(DNA, db, net, clock=clock, config=config)
    dht.add_cell(cell, membrane_proof_for(keys))
    await dht.start()
    return Node(cell, net, dht, db)


async def eventually(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "did not happen in time"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)
