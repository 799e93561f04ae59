"""Hostile peers on a real libp2p network: forged and tampered ops, oversized and garbage frames,
plaintext-only peers, and agents outside the membrane."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

from ioe.crypto.keys import KeyPair, verify
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.encoding import Value, decode, encode
from ioe.engine.cell import Cell
from ioe.engine.dht import AgentInfo, DhtOp, publishable_ops
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import VALID, Invalid, Outcome
from ioe.engine.records import Entry, SignedAction
from ioe.engine.zome import CoordinatorZome, EntryDef, IntegrityZome
from ioe.hashing import AgentPubKey
from ioe.net.frames import HEADER, MAX_FRAME
from ioe.net.interface import PeerId, RequestRefused
from ioe.net.p2p import (
    MAX_BUFFERED_PER_PEER,
    MAX_INBOUND_STREAMS_PER_PEER,
    RPC_PROTOCOL,
    STRANGER_MAX_FRAME,
    P2PNetwork,
)
from ioe.store.dht import OpStatus
from ioe.store.sqlite import SqliteDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def clock() -> int:
    return time.time_ns() // 1000


MEMBRANE_CONTEXT = b"ioe/test-membrane/v1"


@dataclass(frozen=True)
class Note:
    text: str


def membrane(agent: AgentPubKey, proof: bytes | None, properties: Mapping[str, Value]) -> Outcome:
    """The test DNA's rule: the proof is the gatekeeper's signature of the agent key."""
    gatekeeper = AgentPubKey(properties["gatekeeper"])
    if proof is None or not verify(gatekeeper, MEMBRANE_CONTEXT, bytes(agent), proof):
        return Invalid("not admitted by the gatekeeper")
    return VALID


notes = CoordinatorZome("notes")


@notes.function
def add(ctx, text):  # type: ignore[no-untyped-def]
    return ctx.create(Note(text))


GATEKEEPER = KeyPair(bytes([99]) * 32)
DNA = DnaDef(
    "membrane-test",
    (IntegrityZome("notes", "1", (EntryDef("note", Note),), (), membrane=membrane),),
    (notes,),
    {"gatekeeper": bytes(GATEKEEPER.agent)},
)


@dataclass
class Peer:
    keys: KeyPair
    db: SqliteDatabase
    cell: Cell
    net: P2PNetwork
    dht: DnaNetwork


@pytest.fixture
async def make_peer(tmp_path: Path) -> AsyncIterator:  # type: ignore[type-arg]
    made: list[Peer] = []

    async def make(n: int, *, admitted: bool = True) -> Peer:
        keys = KeyPair(bytes([n]) * 32)
        proof = GATEKEEPER.sign(MEMBRANE_CONTEXT, bytes(keys.agent)) if admitted else None
        db = SqliteDatabase.open(tmp_path / f"p{n}.sqlite", dnas=[DNA])
        cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
        cell.genesis(proof, now_us=clock()) if admitted else None
        net = P2PNetwork(keys.seed())
        await net.start()
        dht = DnaNetwork(DNA, db, net, clock=clock, config=DhtConfig(gossip_interval_s=0.5))
        dht.add_cell(cell, proof)
        await dht.start()
        peer = Peer(keys, db, cell, net, dht)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.dht.close()
        await peer.net.close()
        peer.db.close()


async def eventually(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_agents_without_the_membrane_proof_are_kept_out(make_peer) -> None:  # type: ignore[no-untyped-def]
    a, b = await make_peer(1), await make_peer(2)
    outsider = await make_peer(3, admitted=False)
    await b.net.connect(a.net.listen_addrs()[0])
    await outsider.net.connect(a.net.listen_addrs()[0])
    await eventually(lambda: len(a.dht.members()) == 2 and len(b.dht.members()) == 2)
    await asyncio.sleep(1.0)
    assert outsider.keys.agent not in a.dht.members()
    assert outsider.keys.agent not in b.dht.members()
    # The outsider's requests are refused, whatever it asks.
    for protocol, body in [
        (a.dht.protocol_get, encode({"kind": "record", "basis": b"x" * 35})),
        (a.dht.protocol_publish, encode({"ops": [], "to": []})),
        (a.dht.protocol_agents, encode([])),
    ]:
        with pytest.raises(RequestRefused, match="not a member"):
            await outsider.net.request(a.net.peer_id, protocol, body)
    assert a.dht.stats.refused_peers >= 3


async def _member_pair(make_peer):  # type: ignore[no-untyped-def]
    honest = await make_peer(1)
    attacker = await make_peer(2)
    await attacker.net.connect(honest.net.listen_addrs()[0])
    await eventually(lambda: len(honest.dht.members()) == 2)
    return honest, attacker


async def _publish(attacker: Peer, honest: Peer, op: DhtOp) -> list[Value]:
    body = encode({"ops": [op.to_bytes()], "to": [[bytes(honest.keys.agent)]]})
    reply = await attacker.net.request(honest.net.peer_id, honest.dht.protocol_publish, body)
    result: list[Value] = decode(reply)
    return result


async def test_forged_and_tampered_ops_are_rejected(make_peer) -> None:  # type: ignore[no-untyped-def]
    honest, attacker = await _member_pair(make_peer)
    attacker.cell.call("notes", "add", "genuine", now_us=clock())
    record = attacker.cell.query()[-1]
    store_record = publishable_ops(record)[0]

    # A forged signature: the same action signed by someone else's key.
    forger = KeyPair(bytes([42]) * 32)
    forged_signed = SignedAction(
        record.action, forger.sign(b"ioe/action/v1", record.action_hash), record.action_hash
    )
    forged = replace(store_record, signed_action=forged_signed)
    receipts = await _publish(attacker, honest, forged)
    assert receipts == [] or all(r[2] is False for r in receipts)
    assert honest.dht.store.op_status(forged.hash) in (None, OpStatus.INVALID)

    # A tampered entry: its hash no longer matches; the op is malformed and never stored.
    tampered = DhtOp(
        store_record.op_type, store_record.signed_action, Entry.app(encode({"text": "evil"}))
    )
    body = encode(
        {
            "ops": [
                encode(
                    [
                        int(tampered.op_type),
                        tampered.signed_action.to_bytes(),
                        tampered.entry.to_bytes(),
                    ]
                )
            ],
            "to": [[bytes(honest.keys.agent)]],
        }
    )  # type: ignore[union-attr]
    reply = decode(
        await attacker.net.request(honest.net.peer_id, honest.dht.protocol_publish, body)
    )
    assert reply == []
    assert honest.dht.stats.rejected_ops >= 2

    # The node is still up and still accepts the genuine op.
    receipts = await _publish(attacker, honest, store_record)
    assert [r[2] for r in receipts] == [True]
    assert honest.dht.store.op_status(store_record.hash) is OpStatus.VALID


async def _raw_write(attacker: P2PNetwork, peer: PeerId, data: bytes) -> None:
    """Write raw bytes on a fresh RPC stream from the attacker's libp2p host (trio side)."""

    async def write() -> None:
        stream = await attacker._host.new_stream(ID.from_base58(peer), [RPC_PROTOCOL])
        await stream.write(data)
        await trio.sleep(0.3)
        with contextlib.suppress(Exception):  # the honest side may already have reset it
            await stream.close()

    await attacker._call(write)


async def test_oversized_and_garbage_frames_are_refused_and_the_node_stays_up(make_peer) -> None:  # type: ignore[no-untyped-def]
    honest, attacker = await _member_pair(make_peer)
    witness = await make_peer(3)
    await witness.net.connect(honest.net.listen_addrs()[0])
    for data in [
        (2**31).to_bytes(HEADER, "big") + b"\x00" * 64,  # announces a 2 GiB frame
        (12).to_bytes(HEADER, "big") + b"\xff" * 12,  # garbage CBOR
        (0).to_bytes(HEADER, "big"),  # an empty frame
        (5).to_bytes(HEADER, "big") + encode([9, 1, "x", b""])[:5],  # truncated then valid length
    ]:
        await _raw_write(attacker.net, honest.net.peer_id, data)
    reply = await witness.net.request(
        honest.net.peer_id,
        honest.dht.protocol_agents,
        encode([i.to_bytes() for i in witness.dht.members().values()]),
    )
    assert any(AgentInfo.from_bytes(i).agent == honest.keys.agent for i in decode(reply))


async def _half_sent_frames(
    attacker: P2PNetwork, peer: PeerId, streams: int, announced: int, sent: int
) -> int:
    """Open ``streams`` RPC streams to ``peer``, each announcing a frame of ``announced`` bytes
    and sending ``sent`` of them, and keep them open; how many the peer reset at once."""
    reset = 0

    async def attack() -> None:
        nonlocal reset
        opened = []
        for _ in range(streams):
            stream = await attacker._host.new_stream(ID.from_base58(peer), [RPC_PROTOCOL])
            opened.append(stream)
            try:
                await stream.write(announced.to_bytes(HEADER, "big"))
                for start in range(0, sent, 64 * 1024):
                    await stream.write(b"\x00" * min(64 * 1024, sent - start))
            except Exception:  # the peer reset this stream: it refused it
                reset += 1
        await trio.sleep(0.5)

    await attacker._call(attack)
    return reset


async def test_half_sent_large_frames_cannot_exhaust_the_nodes_memory(make_peer) -> None:  # type: ignore[no-untyped-def]
    """A peer announcing 4 MiB frames on many streams and never finishing them holds at most
    one peer's budget of the node's memory; a stranger may not announce large frames at all."""
    honest, attacker = await _member_pair(make_peer)
    witness = await make_peer(3)
    await witness.net.connect(honest.net.listen_addrs()[0])
    await _half_sent_frames(attacker.net, honest.net.peer_id, 12, MAX_FRAME, MAX_FRAME - 1)
    await eventually(lambda: honest.net._buffered_total <= MAX_BUFFERED_PER_PEER)
    assert honest.net._inbound.get(attacker.net.peer_id, 0) <= MAX_INBOUND_STREAMS_PER_PEER
    # a stranger (not a member's peer) may not even announce one
    honest.net.set_member_peers(frozenset({witness.net.peer_id}))
    stranger = await make_peer(4, admitted=False)
    await stranger.net.connect(honest.net.listen_addrs()[0])
    await _half_sent_frames(stranger.net, honest.net.peer_id, 3, STRANGER_MAX_FRAME + 1, 1024)
    await eventually(lambda: honest.net._buffered_by_peer.get(stranger.net.peer_id, 0) == 0)
    reply = await witness.net.request(
        honest.net.peer_id,
        honest.dht.protocol_agents,
        encode([i.to_bytes() for i in witness.dht.members().values()]),
    )
    assert any(AgentInfo.from_bytes(i).agent == honest.keys.agent for i in decode(reply))


def _plaintext_dial(addr: str, result: list[BaseException | None]) -> None:
    async def main() -> None:
        keys = create_new_key_pair(bytes([7]) * 32)
        host = new_host(key_pair=keys, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(keys)})
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        async with host.run(listen):
            try:
                with trio.fail_after(10):
                    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
                result.append(None)
            except BaseException as exc:  # the refusal is what we want to see
                result.append(exc)

    trio.run(main)


async def test_a_plaintext_only_peer_is_refused(make_peer) -> None:  # type: ignore[no-untyped-def]
    honest = await make_peer(1)
    result: list[BaseException | None] = []
    thread = threading.Thread(target=_plaintext_dial, args=(honest.net.listen_addrs()[0], result))
    thread.start()
    await asyncio.to_thread(thread.join, 30)
    assert result and result[0] is not None, "a plaintext-only peer must not connect"
    assert honest.net.connected_peers() == []
