"""Test helper (run as a script): an outsider that presents a forged enrollment certificate.

    python membrane_tool.py GENUINE_CERT_FILE DB_FILE BOOTSTRAP

It copies a genuine certificate's keyset and (public) owner binding, names its own fresh key as
the device and signs the certificate itself. It runs a modified build of the core DNA with the
membrane rules dropped (rules are not hashed into the DNA, so it speaks on the same network),
writes a profile, joins through BOOTSTRAP and tries to swap agent infos and publish its ops.
It prints one JSON line (its agent and peer id, what the node answered), then stays connected
until its stdin closes (at most ``WAIT_S``). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from ioe.crypto.keys import KeyPair
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.dnas import core_dna
from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops
from ioe.engine.dna import DnaDef
from ioe.identity.certificate import EnrollmentCertificate
from ioe.net.interface import NetworkError, PeerId
from ioe.net.p2p import P2PConfig, P2PNetwork
from ioe.store.sqlite import SqliteDatabase

WAIT_S = 60.0


def clock() -> int:
    return time.time_ns() // 1000


def lax_core_dna() -> DnaDef:
    dna = core_dna()
    zomes = tuple(dataclasses.replace(zome, membrane=None) for zome in dna.integrity_zomes)
    lax = DnaDef(dna.name, zomes, dna.coordinator_zomes, dna.properties, dna.network_seed)
    assert lax.hash == dna.hash
    return lax


async def _attempt(net: P2PNetwork, peer: PeerId, protocol: str, payload: bytes) -> str:
    try:
        await net.request(peer, protocol, payload, timeout=10)
    except NetworkError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


async def run(cert_file: Path, db_file: Path, bootstrap: str) -> None:
    genuine = EnrollmentCertificate.from_bytes(cert_file.read_bytes())
    keys = KeyPair(os.urandom(32))
    forged = dataclasses.replace(genuine, device=keys.agent, signatures=()).signed_by(keys)
    proof = forged.to_bytes()
    dna = lax_core_dna()
    db = SqliteDatabase.open(db_file, dnas=[dna])
    cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
    cell.genesis(proof, now_us=clock())
    cell.call("profile", "set_profile", {"name": "Forger", "zone": "au/nsw"}, now_us=clock())
    net = P2PNetwork(keys.seed(), P2PConfig())
    await net.start()
    dht = DnaNetwork(dna, db, net, clock=clock, config=DhtConfig(gossip_interval_s=0.5))
    dht.add_cell(cell, proof)
    await dht.start()
    try:
        peer = await net.connect(bootstrap)
        infos = encode([info.to_bytes() for info in dht.store.agent_infos(clock())])
        ops = [op.to_bytes() for record in cell.query() for op in publishable_ops(record)]
        result = {
            "agent": keys.agent.to_text(),
            "peer_id": net.peer_id,
            "agents": await _attempt(net, peer, dht.protocol_agents, infos),
            "publish": await _attempt(
                net, peer, dht.protocol_publish, encode({"ops": ops, "to": []})
            ),
        }
        print(json.dumps(result), flush=True)
        loop = asyncio.get_running_loop()
        reading = loop.run_in_executor(None, sys.stdin.readline)
        await asyncio.wait_for(reading, WAIT_S)
        result = {"still_connected": peer in net.connected_peers()}
        result["agents_again"] = await _attempt(net, peer, dht.protocol_agents, infos)
        print(json.dumps(result), flush=True)
    finally:
        await dht.close()
        await net.close()
        db.close()


def main(argv: list[str]) -> int:
    asyncio.run(run(Path(argv[0]), Path(argv[1]), argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
