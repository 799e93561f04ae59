"""Departed and enrolled-away peers are not dialled on and on, across real processes on loopback.

An owner's node enrolls a plug (``ioe device plug-in`` → ``ioe owner enroll``): the plug runs
first under a provisional peer id, then, enrolled, under another. Once the plug stops politely,
the owner's node forgets both ids and dials neither; once it is killed (no word said), the
owner's node dials it a few times, less and less often, and still raises its presence alert.
Counted by the owner's own dial counters (``/v1/peers``), not by the clock. Every line the
owner's node logs carries a timestamp, and a failed dial names its peer."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, init, ioe_json, popen, stop, wait_for

from ioe.identity.pairing import normalise_code

pytestmark = pytest.mark.process

LIVENESS_S = "3"  # probes every second: the liveness watch asks for the killed plug often
WINDOW_S = 20.0
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def plug_in(data_dir: Path, bootstrap: str) -> subprocess.Popen[str]:
    return popen(
        "device", "plug-in", "--data-dir", str(data_dir), "--type", "consumption",
        "--name", "Kettle", "--zone", "au/nsw/newtown", "--no-mdns", "--listen", "127.0.0.1:0",
        "--bootstrap", bootstrap, "--liveness-timeout", LIVENESS_S,
    )  # fmt: skip


def read_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the device printed nothing"
    return dict(json.loads(line))


def dials(owner: NodeProcess) -> dict[str, dict[str, Any]]:
    return dict(owner.api("GET", "/v1/peers")["dials"])


def dials_of(owner: NodeProcess, peer: str) -> int:
    return int(dials(owner).get(peer, {}).get("dials", 0))


def state_of(owner: NodeProcess, peer: str) -> str | None:
    entry = dials(owner).get(peer)
    return None if entry is None else str(entry["state"])


def present(owner_dir: Path, agent: str) -> bool | None:
    listed = ioe_json("owner", "devices", "--data-dir", str(owner_dir), "--json")
    return next((bool(d["present"]) for d in listed if d["agent"] == agent), None)


def test_the_owner_stops_dialling_a_plug_that_left(tmp_path: Path) -> None:
    owner_dir, plug_dir = tmp_path / "owner", tmp_path / "plug"
    owner = NodeProcess(owner_dir, init(owner_dir)).start(
        "--no-mdns", "--verbose", "--liveness-timeout", LIVENESS_S
    )
    assert owner.process is not None and owner.process.stderr is not None
    stderr = owner.process.stderr
    log_lines: list[str] = []
    reader = threading.Thread(target=lambda: log_lines.extend(stderr), daemon=True)
    reader.start()  # the owner logs at INFO: never let its pipe fill
    device: subprocess.Popen[str] | None = None
    try:
        # --- a plug runs provisionally, is enrolled, runs enrolled, stops politely
        device = plug_in(plug_dir, owner.addr)
        first = read_line(device)
        provisional = first["peer_id"]
        code = normalise_code((plug_dir / "pairing-code").read_text())

        def pending() -> bool:
            listed = ioe_json("owner", "pending", "--data-dir", str(owner_dir), "--json")
            return any(p["device"] == first["agent"] for p in listed)

        wait_for(pending, timeout=30)
        ioe_json(
            "owner", "enroll", "--data-dir", str(owner_dir), first["agent"], "--code", code,
            "--json",
        )  # fmt: skip
        second = read_line(device)
        assert second["enrollment"] == "enrolled"
        enrolled, agent = second["peer_id"], second["agent"]
        assert enrolled != provisional
        wait_for(lambda: present(owner_dir, agent), timeout=60)
        stop(device)  # SIGTERM: it says it is leaving

        # Both of its ids are forgotten, and then dialled no more.
        wait_for(lambda: state_of(owner, provisional) == "forgotten", timeout=30)
        wait_for(lambda: state_of(owner, enrolled) == "forgotten", timeout=30)
        before = {peer: dials_of(owner, peer) for peer in (provisional, enrolled)}
        time.sleep(WINDOW_S)
        after = {peer: dials_of(owner, peer) for peer in (provisional, enrolled)}
        assert after == before, f"dialled a plug that left: {before} → {after}"
        assert before[provisional] == 0  # never dialled at all: it always dialled us

        # --- it comes back (it dials the owner, which knows it again), then is killed
        device = plug_in(plug_dir, owner.addr)
        assert read_line(device)["peer_id"] == enrolled
        wait_for(lambda: state_of(owner, enrolled) == "reachable", timeout=60)
        wait_for(lambda: present(owner_dir, agent), timeout=60)
        start = dials_of(owner, enrolled)
        device.send_signal(signal.SIGKILL)
        device.wait(timeout=30)
        # the presence alert still comes (the liveness probes fail without a dial each)...
        wait_for(lambda: present(owner_dir, agent) is False, timeout=60)
        time.sleep(WINDOW_S)
        stats = dials(owner)[enrolled]
        made = stats["dials"] - start
        # ...and the plug is dialled a few times, less and less often: at about 0, 1, 3, 7
        # and 15 s, then 31 s after it stopped (one more for a dial in flight), where the
        # liveness watch, gossip, Kademlia and publishing ask for it dozens of times.
        assert 1 <= made <= 7, stats
        assert stats["state"] == "backing off" and stats["skipped"] > made, stats
        assert dials_of(owner, provisional) == 0
    finally:
        if device is not None:
            stop(device)
        owner.stop()
        reader.join(timeout=10)

    # Every line the owner logged has a timestamp (tracebacks continue a timestamped line);
    # a failed dial is a line naming the peer, never py-libp2p's bare error.
    in_traceback = False
    for line in (raw.rstrip("\n") for raw in log_lines):
        if TIMESTAMP.match(line):
            in_traceback = False
        elif line.startswith("Traceback") or in_traceback:
            in_traceback = True
        else:
            pytest.fail(f"a log line without a timestamp: {line!r}")
    failed = [line for line in log_lines if "Failed to open TCP stream" in line]
    assert failed and all(enrolled in line for line in failed)
    assert all(TIMESTAMP.match(line) for line in failed)
    assert all(" ERROR " not in line for line in failed)
