"""The core DNA's membrane on the in-memory network: an agent with no proof, a forged
certificate or a self-signed one is no member of an honest node, its ops are not held, the
refusal says why (in the log), and its peer is refused without being blocked or warranted.

The outsider runs a modified build: the core DNA with every membrane rule dropped. Rules are not
hashed into the DNA (only zome names, versions and types are), so it speaks on the same network
and its own node happily signs and announces its agent info and publishes its chain."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dht_kit import DNA, FAST, Clock, Node, eventually, start_node

from ioe.crypto.derivation import OwnerAccount
from ioe.crypto.keys import KeyPair
from ioe.dht.service import DnaNetwork
from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Valid
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import issue
from ioe.net.interface import RequestRefused
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import device_certificate
from ioe.vocabulary import DeviceType

pytestmark = pytest.mark.anyio

LAX = DnaDef(
    DNA.name,
    tuple(dataclasses.replace(zome, membrane=None) for zome in DNA.integrity_zomes),
    DNA.coordinator_zomes,
    DNA.properties,
    DNA.network_seed,
)
VICTIM = OwnerAccount.from_root_seed(b"\x05" * 32)
"""A real owner whose keyset a forger claims."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def outsider_proof(kind: str, keys: KeyPair) -> bytes | None:
    """The membrane proof an outsider presents (``enrolled``: a genuine one, the control)."""
    if kind == "none":
        return None
    if kind == "enrolled":
        return (
            dataclasses.replace(device_certificate(VICTIM, 9), device=keys.agent, signatures=())
            .signed_by(VICTIM.authorization_key())
            .to_bytes()
        )
    if kind == "forged":  # the victim's keyset and public owner binding, signed by a stranger
        genuine = device_certificate(VICTIM, 9)
        forged = dataclasses.replace(genuine, device=keys.agent, signatures=())
        return forged.signed_by(keys).to_bytes()
    assert kind == "self-signed"  # a keyset of the device's own key
    owner = KeyPair(b"\x44" * 32)
    return (
        issue(
            keyset=Keyset(single_owner(keys.agent)),
            owner_agent=owner,
            device=keys.agent,
            device_type=DeviceType.STORAGE,
            name="Rogue",
            zone="au/nsw",
            networks=(DNA.name,),
            issued_us=1,
            serial=1,
        )
        .signed_by(keys)
        .to_bytes()
    )


REASONS = {
    "none": "no membrane proof",
    "forged": "certificate not authorized",
    "self-signed": "self-signed",
}


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    made: list[Node] = []

    async def honest(hub: MemoryHub, clock: Clock, count: int) -> list[Node]:
        nodes = [await start_node(tmp_path, hub, i, clock) for i in range(count)]
        made.extend(nodes)
        return nodes

    async def outsider(hub: MemoryHub, clock: Clock, kind: str) -> Node:
        keys = KeyPair(b"\x33" * 32)
        proof = outsider_proof(kind, keys)
        dna = DNA if kind == "enrolled" else LAX
        db = SqliteDatabase.open(tmp_path / "outsider.sqlite", dnas=[dna])
        cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
        cell.genesis(proof, now_us=clock())
        cell.call("profile", "set_profile", {"name": "Rogue", "zone": "au/nsw"}, now_us=clock())
        net = MemoryNetwork(hub)
        await net.start()
        dht = DnaNetwork(dna, db, net, clock=clock, config=FAST)
        dht.add_cell(cell, proof)
        await dht.start()
        node = Node(cell, net, dht, db)
        made.append(node)
        return node

    yield honest, outsider
    for node in made:
        await node.close()


def test_the_outsider_build_speaks_on_the_same_network() -> None:
    assert LAX.hash == DNA.hash
    assert LAX.check_membrane(KeyPair(b"\x33" * 32).agent, None) == Valid()
    assert isinstance(DNA.check_membrane(KeyPair(b"\x33" * 32).agent, None), Invalid)


@pytest.mark.parametrize("kind", sorted(REASONS))
async def test_a_non_member_is_refused_but_not_blocked(
    started: tuple[Callable[..., object], Callable[..., object]],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.INFO, logger="ioe.dht.service")
    make_honest, make_outsider = started
    hub, clock = MemoryHub(), Clock()
    honest: list[Node] = await make_honest(hub, clock, 2)  # type: ignore[operator]
    await honest[1].net.connect(honest[0].net.listen_addrs()[0])
    await eventually(lambda: all(len(n.dht.members()) == 2 for n in honest))
    rogue: Node = await make_outsider(hub, clock, kind)  # type: ignore[operator]
    await rogue.net.connect(honest[0].net.listen_addrs()[0])
    agent = rogue.cell.agent
    refusal = f"refused agent info of {agent.short()}: membrane proof refused: {REASONS[kind]}"
    await eventually(lambda: refusal in caplog.text, what="the refusal was not logged")

    # Its ops, sent straight to an honest node, are refused: the sender is no member.
    ops = [op for record in rogue.cell.query() for op in publishable_ops(record)]
    payload = encode({"ops": [op.to_bytes() for op in ops], "to": []})
    with pytest.raises(RequestRefused, match="not a member"):
        await rogue.net.request(honest[0].net.peer_id, rogue.dht.protocol_publish, payload)
    # The rogue's own node knows the honest members (it accepts their infos), so its publisher
    # tries them too; give gossip and publishing rounds a chance, then look.
    await eventually(lambda: honest[0].dht.stats.refused_peers >= 2)
    for node in honest:
        assert agent not in node.dht.members()
        assert all(node.dht.store.op_status(op.hash) is None for op in ops)
        assert not node.dht.blocked_peer(rogue.net.peer_id)
        assert not node.dht.is_blocked(agent)
        assert node.dht.stats.warrants_signed == 0
    # Still connected and still answered: whatever else the peer does (enrollment) goes on.
    assert rogue.net.peer_id in honest[0].net.connected_peers()
    with pytest.raises(RequestRefused, match="not a member"):
        await rogue.net.request(
            honest[0].net.peer_id, rogue.dht.protocol_agents, encode([]), timeout=2.0
        )


async def test_a_device_with_a_genuine_certificate_is_a_member(
    started: tuple[Callable[..., object], Callable[..., object]],
) -> None:
    make_honest, make_outsider = started
    hub, clock = MemoryHub(), Clock()
    honest: list[Node] = await make_honest(hub, clock, 2)  # type: ignore[operator]
    await honest[1].net.connect(honest[0].net.listen_addrs()[0])
    device: Node = await make_outsider(hub, clock, "enrolled")  # type: ignore[operator]
    await device.net.connect(honest[0].net.listen_addrs()[0])
    await eventually(lambda: all(device.cell.agent in n.dht.members() for n in honest))
