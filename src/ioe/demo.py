"""``ioe demo``: what exists so far, run for real and briefly.

An owner account is created (unlocked by a device key file, as on an unattended gateway), a smart
plug gets its own agent key derived from the owner's device seed 1, and the plug commits signed
batches of readings from a simulated load to its own chain once a second. At the end every chain
is verified from genesis, and a tampered copy of the database is shown to be caught.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ioe.conductor import Conductor, known_dnas, open_database
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dnas import core_dna
from ioe.errors import ChainIntegrityError
from ioe.inspect import describe_record

PLUG_DEVICE_INDEX = 1
SAMPLE_EVERY_US = 250_000


class SimulatedPlugLoad:
    """A fridge on a smart plug: the compressor cycles on and off; power in mW, energy in mWh.

    Deterministic for a seed; time is passed in.
    """

    def __init__(self, seed: int, start_us: int) -> None:
        self._rng = random.Random(seed)
        self._last_us = start_us
        self._energy_uwh = 0.0
        self._cycle_s = 12.0
        self._duty = 0.45

    def sample(self, now_us: int) -> dict[str, int]:
        phase = (now_us / 1e6 % self._cycle_s) / self._cycle_s
        running = phase < self._duty
        power_w = (85.0 + 10.0 * math.sin(phase * math.pi)) if running else 1.2
        power_w += self._rng.gauss(0.0, 0.4)
        power_w = max(power_w, 0.0)
        elapsed_h = (now_us - self._last_us) / 3.6e9
        self._energy_uwh += power_w * elapsed_h * 1e6
        self._last_us = now_us
        return {
            "power_mw": round(power_w * 1000),
            "energy_mwh": int(self._energy_uwh / 1000),
            "switch": 1,
        }


def run_demo(
    *,
    duration_s: float = 20.0,
    data_dir: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    owned_tmp = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="ioe-demo-")) if data_dir is None else data_dir
    try:
        return _run(root, duration_s, out)
    finally:
        if owned_tmp:
            shutil.rmtree(root, ignore_errors=True)


def _clock_us() -> int:
    return time.time_ns() // 1000


def _run(root: Path, duration_s: float, out: Callable[[str], None]) -> int:
    node_dir = root / "node"
    key_file = root / "device.key"
    if not key_file.exists():
        root.mkdir(parents=True, exist_ok=True)
        create_device_key_file(key_file)
    unlock = Unlock(key_file=key_file)
    out(f"IoE demo: data in {root} (runs {duration_s:.0f} s)")
    if (node_dir / "keystore.json").exists():
        conductor = Conductor.open(node_dir, unlock)
        out("opened existing owner account")
    else:
        conductor, _mnemonic = Conductor.init(node_dir, unlock)
        out("created owner account (recovery phrase withheld in the demo)")
    with conductor:
        owner = conductor.owner_cell
        out(f"owner agent       {owner.agent.to_text()}")
        plug = conductor.install_cell(core_dna(), device=PLUG_DEVICE_INDEX)
        out(f"smart plug agent  {plug.agent.to_text()}  (device seed {PLUG_DEVICE_INDEX})")

        load = SimulatedPlugLoad(seed=7, start_us=_clock_us())
        deadline = time.monotonic() + duration_s
        batches = samples = 0
        last_values: dict[str, int] = {}
        while time.monotonic() < deadline:
            batch: list[dict[str, Any]] = []
            next_flush = time.monotonic() + 1.0
            while time.monotonic() < min(next_flush, deadline):
                now = _clock_us()
                last_values = load.sample(now)
                batch.append({"at_us": now, "values": last_values})
                time.sleep(min(SAMPLE_EVERY_US / 1e6, max(0.0, deadline - time.monotonic())))
            if batch:
                conductor.call(plug, "telemetry", "record_batch", batch)
                batches += 1
                samples += len(batch)
                out(
                    f"  plug committed batch {batches:3d}: {len(batch)} samples, "
                    f"{last_values['power_mw'] / 1000:6.1f} W, "
                    f"{last_values['energy_mwh'] / 1000:7.3f} Wh so far"
                )
        head = plug.head()
        if head is not None:
            last = plug.get(head.hash)
            if last is not None:
                out("last record: " + describe_record(last, plug.dna))
    summary = _verify(node_dir, out)
    summary.update({"batches": batches, "samples": samples})
    out(json.dumps(summary))
    return 0 if summary["verified"] and summary["tamper_detected"] else 1


def _verify(node_dir: Path, out: Callable[[str], None]) -> dict[str, Any]:
    with open_database(node_dir, verify=False) as db:
        started = time.perf_counter()
        records = db.verify_all(known_dnas(db))
        elapsed = time.perf_counter() - started
        chains = len(db.cells())
    out(f"verified {records} records on {chains} chains from genesis in {elapsed * 1000:.0f} ms")

    tampered = node_dir.parent / "tampered.sqlite"
    shutil.copyfile(node_dir / "ioe.sqlite", tampered)
    with sqlite3.connect(tampered) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        row = conn.execute(
            "SELECT hash, content FROM entries ORDER BY length(content) DESC LIMIT 1"
        ).fetchone()
        flipped = bytearray(row[1])
        flipped[len(flipped) // 2] ^= 0x01
        conn.execute("UPDATE entries SET content = ? WHERE hash = ?", (bytes(flipped), row[0]))
    conn.close()
    detected = False
    tamper_dir = node_dir.parent / "tampered"
    tamper_dir.mkdir(exist_ok=True)
    shutil.move(tampered, tamper_dir / "ioe.sqlite")
    with open_database(tamper_dir, verify=False) as db:
        try:
            db.verify_all(known_dnas(db))
        except ChainIntegrityError as exc:
            detected = True
            out(f"one flipped bit in a stored reading is caught: {exc}")
    if not detected:
        out("a tampered reading was NOT detected")
    return {"verified": True, "records": records, "chains": chains, "tamper_detected": detected}
