"""``ioe demo``: what exists so far, run for real and briefly, on this machine's loopback.

Two nodes talk over libp2p (TCP + Noise on 127.0.0.1): a home's owner node and a smart plug's
device node. The plug is a simulated fridge on a smart plug; its node reads it four times a second
and signs a batch of readings onto its own chain every second. Both publish a public profile.
Every second the demo prints the plug's reading and how much of the plug's chain the home node
can already see over the network (from the DHT authorities, not from the plug's disk). At the end
the home fetches the plug's profile over the network, every chain is verified from genesis, and a
copy of the plug's database with one flipped bit is shown to be caught.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ioe.conductor import Conductor, known_dnas, open_database
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dht.service import DhtConfig
from ioe.drivers.registry import DriverOptions
from ioe.errors import ChainIntegrityError
from ioe.node.device import DeviceSetup
from ioe.node.runtime import Node, NodeConfig
from ioe.zomes.profile.validation import PROFILE_LINK

ZONE = "au/nsw/newtown/king-st/12"


def run_demo(
    *,
    duration_s: float = 20.0,
    data_dir: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    owned_tmp = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="ioe-demo-")) if data_dir is None else data_dir
    try:
        summary = asyncio.run(_run(root, duration_s, out))
    finally:
        if owned_tmp:
            shutil.rmtree(root, ignore_errors=True)
    out(json.dumps(summary))
    return 0 if summary["verified"] and summary["tamper_detected"] else 1


def _account(data_dir: Path) -> Conductor:
    """Open (or create) an account unlocked by a 0600 key file, as on an unattended gateway."""
    key_file = data_dir / "device.key"
    unlock = Unlock(key_file=key_file)
    if (data_dir / "keystore.json").exists():
        return Conductor.open(data_dir, unlock)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        create_device_key_file(key_file)
    conductor, _mnemonic = Conductor.init(data_dir, unlock)
    return conductor


async def _run(root: Path, duration_s: float, out: Callable[[str], None]) -> dict[str, Any]:
    out(f"IoE demo: two nodes on 127.0.0.1, data in {root} (runs {duration_s:.0f} s)")
    dht = DhtConfig(gossip_interval_s=1.0)
    home_conductor = _account(root / "home")
    plug_conductor = _account(root / "plug")
    home = Node(home_conductor, NodeConfig(dht=dht))
    plug = Node(
        plug_conductor,
        NodeConfig(dht=dht),
        device=DeviceSetup(
            DriverOptions(driver="sim", sim="plug"),
            name="Fridge plug",
            interval_s=0.25,
            batch_every_s=1.0,
        ),
    )
    home_agent = home_conductor.owner_cell.agent
    plug_agent = plug_conductor.owner_cell.agent
    await home.start()
    await plug.start()
    stats: dict[str, Any] = {}
    try:
        await plug.network.connect(home.network.listen_addrs()[0])
        out(f"home agent  {home_agent.to_text()}  peer {home.network.peer_id}")
        out(f"plug agent  {plug_agent.to_text()}  peer {plug.network.peer_id}")
        home.call(home_conductor.owner_cell, "profile", "set_profile",
                  {"name": "Home energy manager", "zone": ZONE})  # fmt: skip
        plug.call(plug_conductor.owner_cell, "profile", "set_profile",
                  {"name": "Fridge plug", "zone": ZONE})  # fmt: skip
        stats = await _watch(home, plug, duration_s, out)
        profile = await _profile_seen_from(home, plug_agent)
        out(f"home sees the plug's profile over the network: {profile}")
        stats["profile_seen"] = profile is not None
    finally:
        await plug.close()
        await home.close()
        plug_conductor.close()
        home_conductor.close()
    stats.update(_verify(root, out))
    return stats


async def _watch(
    home: Node, plug: Node, duration_s: float, out: Callable[[str], None]
) -> dict[str, Any]:
    assert plug.device is not None
    plug_cell = plug.conductor.owner_cell
    home_dht = home.dht_for(home.conductor.owner_cell)
    deadline = time.monotonic() + duration_s
    seen = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        values = await plug.device.read()
        head = plug_cell.head()
        seen = len(await home_dht.get_agent_activity(plug_cell.agent))
        power = values.get("power_w")
        power_text = f"{power:7.1f} W" if isinstance(power, int | float) else "   offline"
        out(
            f"  plug {power_text}  signed records on its chain {head.seq + 1 if head else 0:3d}"
            f"  seen by the home over the network {seen:3d}"
        )
    recorder = plug.device.recorder
    return {
        "batches": len(recorder.committed) if recorder else 0,
        "samples": recorder.samples_taken if recorder else 0,
        "records_seen_by_home": seen,
    }


async def _profile_seen_from(home: Node, agent: Any) -> str | None:
    dht = home.dht_for(home.conductor.owner_cell)
    for _ in range(20):
        links = await dht.get_links(agent, PROFILE_LINK)
        if links:
            record = await dht.get_record(links[-1].target)  # type: ignore[arg-type]
            if record is not None:
                value = home.conductor.owner_cell.entry_value(record)
                return f"{value.name} in {value.zone}"  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)
    return None


def _verify(root: Path, out: Callable[[str], None]) -> dict[str, Any]:
    records = chains = 0
    for name in ("home", "plug"):
        with open_database(root / name, verify=False) as db:
            records += db.verify_all(known_dnas(db))
            chains += len(db.cells())
    out(f"verified {records} records on {chains} chains from genesis (signatures, links, rules)")

    tampered_dir = root / "tampered"
    tampered_dir.mkdir(exist_ok=True)
    tampered = tampered_dir / "ioe.sqlite"
    with sqlite3.connect(root / "plug" / "ioe.sqlite") as source, sqlite3.connect(tampered) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    with sqlite3.connect(tampered) as conn:
        row = conn.execute(
            "SELECT hash, content FROM entries ORDER BY length(content) DESC LIMIT 1"
        ).fetchone()
        flipped = bytearray(row[1])
        flipped[len(flipped) // 2] ^= 0x01
        conn.execute("UPDATE entries SET content = ? WHERE hash = ?", (bytes(flipped), row[0]))
    conn.close()
    detected = False
    with open_database(tampered_dir, verify=False) as db:
        try:
            db.verify_all(known_dnas(db))
        except ChainIntegrityError as exc:
            detected = True
            out(f"one flipped bit in a stored reading is caught: {exc}")
    if not detected:
        out("a tampered reading was NOT detected")
    return {"verified": True, "records": records, "chains": chains, "tamper_detected": detected}
