"""Forgetting peers that left: a DNA network whose member's node departs (or whose infos all
expire) drops it from its Kademlia table and provider records and has the network forget it,
so nothing dials it any more; it is dialled again once it announces itself. A peer still a
member of another DNA network on the same node is not forgotten by the network. On the
in-memory network."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from dht_kit import FAST, Clock, eventually

from ioe.crypto.keys import KeyPair
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.net.interface import PeerUnreachable
from ioe.net.kademlia import key_location
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.zomes import profile

pytestmark = pytest.mark.anyio

# Forgetting does not depend on who may join: DNAs without a membrane rule.
DNA = DnaDef("forgetting-test", (profile.integrity,), (profile.coordinator,))
OTHER_DNA = DnaDef("forgetting-test-2", (profile.integrity,), (profile.coordinator,))
CONFIG = dataclasses.replace(FAST, liveness_timeout_s=0.6, request_timeout_s=0.3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclasses.dataclass
class Member:
    net: MemoryNetwork
    dhts: dict[str, DnaNetwork]
    db: SqliteDatabase
    cell: Cell

    @property
    def dht(self) -> DnaNetwork:
        return self.dhts[DNA.name]

    async def close(self, *, depart: bool = True) -> None:
        for dht in self.dhts.values():
            if depart and not dht.closed:
                await dht.depart()
            await dht.close()
        await self.net.close()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Member] = []
    clock = Clock()

    async def start(
        hub: MemoryHub,
        index: int,
        dnas: tuple[DnaDef, ...] = (DNA,),
        config: DhtConfig = CONFIG,
    ) -> Member:
        keys = KeyPair(bytes([index + 1]) * 32)
        earlier = [m for m in made if m.net.peer_id == f"node-{index}"]
        db = (
            earlier[0].db
            if earlier
            else SqliteDatabase.open(tmp_path / f"n{index}.sqlite", dnas=list(dnas))
        )
        net = MemoryNetwork(hub, f"node-{index}")
        await net.start()
        dhts = {}
        cell = None
        for dna in dnas:
            cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
            if cell.store.head() is None:
                cell.genesis(None, now_us=clock())
            dht = DnaNetwork(dna, db, net, clock=clock, config=config)
            dht.add_cell(cell)
            await dht.start()
            dhts[dna.name] = dht
        assert cell is not None
        member = Member(net, dhts, db, cell)
        made.append(member)
        return member

    start.clock = clock  # type: ignore[attr-defined]
    yield start
    for member in made:
        if not all(d.closed for d in member.dhts.values()):
            await member.close(depart=False)
    for db in {id(m.db): m.db for m in made}.values():
        db.close()


async def joined(members: list[Member], dna: DnaDef = DNA) -> None:
    for member in members[1:]:
        await member.net.connect(members[0].net.listen_addrs()[0])
    await eventually(
        lambda: all(len(m.dhts[dna.name].members()) == len(members) for m in members),
        what="never all members",
    )


async def test_a_departed_peer_is_forgotten_and_dialled_again_once_it_is_back(
    nodes: Any,
) -> None:
    hub = MemoryHub()
    a, b, c = [await nodes(hub, i) for i in range(3)]
    await joined([a, b, c])
    gone = c.net.peer_id
    await eventually(lambda: gone in a.dht.routing.table, what="c never in a's table")
    await c.close()  # says it is leaving
    await eventually(
        lambda: (
            a.net.dial_stats().get(gone) is not None
            and a.net.dial_stats()[gone].state == "forgotten"
        ),
        what="a never forgot c",
    )
    assert gone not in a.dht.routing.table
    providers = a.dht.routing.providers.get(key_location(bytes(DNA.hash)))
    assert gone not in {peer for peer, _ in providers}
    # gossip, liveness, discovery and publishing go on for a while: none dials it
    await asyncio.sleep(CONFIG.liveness_timeout_s * 4)
    assert a.net.dial_stats()[gone].dials == 0
    with pytest.raises(PeerUnreachable, match="forgotten"):
        await a.net.request(gone, a.dht.protocol_ping, b"\xf5", timeout=1.0)

    # c starts again and joins through b only: its new info, gossiped, makes a dial it again
    back = await nodes(hub, 2)
    await back.net.connect(b.net.listen_addrs()[0])
    await eventually(
        lambda: a.net.dial_stats()[gone].state == "reachable", what="a never heard c again"
    )
    await eventually(lambda: back.cell.agent in a.dht.members(), what="c never a member")
    await a.net.request(gone, a.dht.protocol_ping, b"\xf5", timeout=2.0)
    await back.close()


async def test_a_peer_whose_infos_expired_is_forgotten(nodes: Any) -> None:
    hub = MemoryHub()
    short = dataclasses.replace(CONFIG, agent_info_ttl_s=30.0, agent_info_refresh_s=3600.0)
    a, b = await nodes(hub, 0), await nodes(hub, 1, config=short)
    await joined([a, b])
    gone = b.net.peer_id
    await b.close(depart=False)  # no word said
    nodes.clock.now += 60_000_000  # its infos (30 s) expire; a's own (20 min) do not
    await eventually(
        lambda: (
            a.net.dial_stats().get(gone) is not None
            and a.net.dial_stats()[gone].state == "forgotten"
        ),
        what="a never forgot b",
    )
    assert a.dht.members().keys() == {a.cell.agent}


async def test_a_peer_still_in_another_dna_network_is_not_forgotten(nodes: Any) -> None:
    hub = MemoryHub()
    both = (DNA, OTHER_DNA)
    a, b = await nodes(hub, 0, both), await nodes(hub, 1, both)
    await joined([a, b])
    await joined([a, b], OTHER_DNA)
    peer = b.net.peer_id
    await eventually(lambda: peer in a.dht.routing.table, what="b never in a's table")
    # b leaves one app network only (as when an app is uninstalled)
    await b.dhts[DNA.name].depart()
    await b.dhts[DNA.name].close()
    await eventually(lambda: b.cell.agent not in a.dht.members(), what="never left")
    await eventually(lambda: peer not in a.dht.routing.table, what="still in the table")
    assert peer not in a.net.dial_stats() or a.net.dial_stats()[peer].state != "forgotten"
    assert await a.net.request(peer, a.dhts[OTHER_DNA.name].protocol_ping, b"\xf5", timeout=2.0)
    # and when it leaves the other one too, it is forgotten
    await b.dhts[OTHER_DNA.name].depart()
    await eventually(
        lambda: peer in a.net.dial_stats() and a.net.dial_stats()[peer].state == "forgotten",
        what="never forgotten",
    )
