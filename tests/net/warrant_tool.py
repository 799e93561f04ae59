"""Test helper (run as a script) playing the cheats of the warrant tests against real nodes.

    python warrant_tool.py fork DATA_DIR
        Sign a second action at the owner chain's head sequence number (same previous action)
        and put its ops in the publish queue: the data dir's ``ioe node run`` publishes it.
    python warrant_tool.py lie DATA_DIR BOOTSTRAP VICTIM
        Run a node from DATA_DIR, join through BOOTSTRAP, and send every member a warrant
        claiming VICTIM forked — citing one of VICTIM's actions twice.
    python warrant_tool.py garbage DATA_DIR BOOTSTRAP
        Run a node, join, and send garbled, truncated and oversized warrants to every member.

Each prints one JSON line. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from nodes import PASSPHRASE

from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock
from ioe.engine.dht import DhtOp, publishable_ops
from ioe.engine.ops import OpType
from ioe.engine.records import Record, SignedAction
from ioe.engine.warrants import MAX_WARRANT_BYTES, Warrant, WarrantKind
from ioe.hashing import AgentPubKey
from ioe.net.interface import NetworkError, PeerId
from ioe.node.runtime import Node, NodeConfig
from ioe.store.dht import SqliteDhtStore

WAIT_S = 30.0


def fork(data_dir: Path) -> dict[str, object]:
    with Conductor.open(data_dir, Unlock(passphrase=PASSPHRASE)) as conductor:
        cell = conductor.owner_cell
        head = cell.query()[-1]
        alt = dataclasses.replace(head.action, timestamp=head.action.timestamp + 1)
        signed = SignedAction.sign(alt, cell.keys)
        ops = publishable_ops(Record(signed, head.entry))
        SqliteDhtStore(conductor.db, cell.dna.hash).enqueue(ops, conductor.clock())
        return {"agent": cell.agent.to_text(), "seq": alt.seq, "fork": signed.hash.to_text()}


async def _with_node(data_dir: Path, bootstrap: str, job: str, victim: str | None) -> object:
    with Conductor.open(data_dir, Unlock(passphrase=PASSPHRASE)) as conductor:
        node = Node(conductor, NodeConfig(bootstrap=(bootstrap,), mdns=False))
        await node.start()
        try:
            dht = node.dht_for(conductor.owner_cell)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while len(dht.members()) < 4 and loop.time() < deadline:  # itself and 3 honest nodes
                await asyncio.sleep(0.2)
            peers = sorted({PeerId(i.peer_id) for i in dht.members().values()})
            peers = [p for p in peers if p != node.network.peer_id]
            for peer in peers:  # introduce ourselves first: a stranger's warrant is refused
                await dht.exchange_agent_infos(peer)
            if job == "lie":
                assert victim is not None
                payloads = [await _lie(dht, conductor, AgentPubKey.from_text(victim), deadline)]
            else:
                payloads = _garbage(dht, conductor)
            results: dict[str, list[str]] = {}
            for peer in peers:
                for payload in payloads:
                    try:
                        reply = await node.network.request(
                            peer, dht.protocol_warrant, payload, timeout=10
                        )
                        results.setdefault(peer, []).append(f"reply {reply!r}")
                    except NetworkError as exc:
                        results.setdefault(peer, []).append(f"{type(exc).__name__}: {exc}")
            return {"agent": conductor.owner_cell.agent.to_text(), "results": results}
        finally:
            await node.close()


async def _lie(dht: object, conductor: Conductor, victim: AgentPubKey, deadline: float) -> bytes:
    from ioe.dht.service import DnaNetwork  # noqa: PLC0415

    assert isinstance(dht, DnaNetwork)
    loop = asyncio.get_running_loop()
    actions: list[SignedAction] = []
    while not actions and loop.time() < deadline:
        actions = await dht.get_agent_activity(victim)
        if not actions:
            await asyncio.sleep(0.3)
    if not actions:
        raise SystemExit("no activity of the victim found")
    same = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, actions[-1])
    return Warrant.sign(
        conductor.owner_cell.keys,
        kind=WarrantKind.FORK,
        dna_hash=dht.dna.hash,
        author=victim,
        evidence=(same, same),
        reason="forked (a lie)",
        now_us=conductor.clock(),
    ).to_bytes()


def _garbage(dht: object, conductor: Conductor) -> list[bytes]:
    cell = conductor.owner_cell
    head = cell.query()[-1].signed_action
    op = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, head)
    good_shape = Warrant.sign(
        cell.keys,
        kind=WarrantKind.FORK,
        dna_hash=cell.dna.hash,
        author=cell.agent,
        evidence=(op, op),
        reason="x",
        now_us=conductor.clock(),
    ).to_bytes()
    return [
        b"garbage, not a warrant",
        good_shape[: len(good_shape) // 2],
        good_shape + b"\x00",
        b"\x00" * (MAX_WARRANT_BYTES + 1),
        b"\x89" + b"\xff" * 64,
    ]


def main(argv: list[str]) -> int:
    mode, data_dir = argv[0], Path(argv[1])
    if mode == "fork":
        result: object = fork(data_dir)
    elif mode in ("lie", "garbage"):
        victim = argv[3] if mode == "lie" else None
        result = asyncio.run(_with_node(data_dir, argv[2], mode, victim))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
