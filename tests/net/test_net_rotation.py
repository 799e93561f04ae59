"""Key rotation end to end across real processes on loopback: an owner enrolls a plug (plug-in →
enroll), then rotates its key with `ioe key rotate`; the plug restarts in-process as agent 1 of
its seed, and a third member learns the revocation: history links the keys and the old key is no
longer a member there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, members, wait_for

from ioe.identity.pairing import normalise_code

pytestmark = pytest.mark.process


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=150,
        check=False,
    )


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def test_rotation_end_to_end(tmp_path: Path) -> None:
    home, third_dir, plug_dir = (tmp_path / n for n in ("home", "third", "plug"))
    third = NodeProcess(third_dir, init(third_dir)).start("--no-mdns")
    owner = NodeProcess(home, init(home)).start("--no-mdns", "--bootstrap", third.addr)
    plug = subprocess.Popen(
        [sys.executable, "-m", "ioe", "device", "plug-in", "--data-dir", str(plug_dir),
         "--type", "consumption", "--name", "Kettle", "--bootstrap", owner.addr,
         "--no-mdns", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )  # fmt: skip
    try:
        assert plug.stdout is not None
        provisional = json.loads(plug.stdout.readline())["agent"]
        code = normalise_code((plug_dir / "pairing-code").read_text())

        def pending() -> bool:
            listed = last_json(ioe("owner", "pending", "--data-dir", str(home), "--json"))
            return any(p["device"] == provisional for p in listed)

        wait_for(pending, timeout=30)
        old = last_json(
            ioe("owner", "enroll", "--data-dir", str(home), provisional, "--code", code, "--json")
        )["agent"]
        enrolled = json.loads(plug.stdout.readline())  # restarted in-process, enrolled
        assert (enrolled["agent"], enrolled["enrollment"]) == (old, "enrolled")
        wait_for(lambda: old in members(owner) and old in members(third), timeout=60)

        # Only the owner rotates, and only its own devices.
        refused = ioe("key", "rotate", "--data-dir", str(third_dir), old)
        assert refused.returncode != 0 and "not a device this owner enrolled" in refused.stderr

        rotated = last_json(
            ioe("key", "rotate", "--data-dir", str(home), old, "--reason", "test", "--json")
        )
        new = rotated["agent"]
        assert new != old and rotated["previous"] == old
        assert (rotated["index"], rotated["agent_index"]) == (1, 1)
        assert rotated["revocation"]["replacement"] == new

        # The plug restarts in-process as its next agent.
        restarted = json.loads(plug.stdout.readline())
        assert restarted["agent"] == new
        info = last_json(ioe("node", "info", "--data-dir", str(plug_dir), "--json"))
        assert (info["agent"], info["owner"]) == (new, owner.owner)

        [device] = last_json(ioe("owner", "devices", "--data-dir", str(home), "--json"))
        assert (device["agent"], device["agent_index"], device["index"]) == (new, 1, 1)
        assert device["rotated_from"]["agent"] == old

        # The third member learns the revocation: history old → new, the old key is out.
        def history() -> list[str]:
            found = last_json(ioe("key", "history", "--data-dir", str(third_dir), old, "--json"))
            return list(found["history"]) if len(found["history"]) > 1 else []

        assert wait_for(history, timeout=60, interval=1.0) == [old, new]
        wait_for(lambda: old not in members(third), timeout=60)
        wait_for(lambda: new in members(third), timeout=60)
        [revocation] = last_json(
            ioe("key", "revocations", "--data-dir", str(third_dir), old, "--json")
        )
        assert revocation["id"] == rotated["revocation"]["id"]
    finally:
        stop(plug)
        owner.stop()
        third.stop()
