"""Ownership transfer end to end across real processes on loopback: owner A enrolls a plug, offers
it to owner B, B accepts; the plug restarts as B's device under a new key, B commands it and A no
longer can, and a third member learns the transfer: the old key is no longer a member there and
its key history leads to the new key."""

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


def device(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ioe", "device", *args, "--no-mdns", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


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


def switch(data_dir: Path, agent: str, value: str) -> subprocess.CompletedProcess[str]:
    return ioe("device", "write", "--data-dir", str(data_dir), "--remote", agent, "switch", value)


def test_transfer_end_to_end(tmp_path: Path) -> None:
    a_dir, b_dir, third_dir, plug_dir = (tmp_path / n for n in ("a", "b", "third", "plug"))
    third = NodeProcess(third_dir, init(third_dir)).start("--no-mdns")
    owner_a = NodeProcess(a_dir, init(a_dir)).start("--no-mdns", "--bootstrap", third.addr)
    owner_b = NodeProcess(b_dir, init(b_dir)).start("--no-mdns", "--bootstrap", third.addr)
    plug = device(
        "plug-in", "--data-dir", str(plug_dir), "--type", "consumption", "--name", "Kettle",
        "--bootstrap", owner_a.addr,
    )  # fmt: skip
    try:
        assert plug.stdout is not None
        provisional = json.loads(plug.stdout.readline())["agent"]
        code = normalise_code((plug_dir / "pairing-code").read_text())

        def pending() -> bool:
            listed = last_json(ioe("owner", "pending", "--data-dir", str(a_dir), "--json"))
            return any(p["device"] == provisional for p in listed)

        wait_for(pending, timeout=30)
        old = last_json(
            ioe("owner", "enroll", "--data-dir", str(a_dir), provisional, "--code", code, "--json")
        )["agent"]
        assert json.loads(plug.stdout.readline())["enrollment"] == "enrolled"
        stop(plug)  # back as the enrolled plug, with a (simulated) switch to command
        plug = device(
            "run", "--data-dir", str(plug_dir), "--driver", "sim", "--sim", "plug",
            "--name", "Kettle", "--bootstrap", third.addr,
        )  # fmt: skip
        assert plug.stdout is not None
        assert json.loads(plug.stdout.readline())["addrs"]
        wait_for(lambda: switch(a_dir, old, "on").returncode == 0, timeout=60, interval=1.0)
        wait_for(
            lambda: {old, owner_a.owner, owner_b.owner} <= members(owner_a) & members(owner_b),
            timeout=60,
        )

        # A offers, B sees the offer; only a device A enrolled can be offered.
        refused = ioe(
            "owner", "transfer", "offer", "--data-dir", str(b_dir), old, "--to", owner_a.owner
        )
        assert refused.returncode != 0 and "not a device this owner enrolled" in refused.stderr
        offered = last_json(
            ioe("owner", "transfer", "offer", "--data-dir", str(a_dir), old,
                "--to", owner_b.owner, "--json")
        )  # fmt: skip
        assert offered["to"] == owner_b.owner
        [offer] = last_json(ioe("owner", "transfer", "pending", "--data-dir", str(b_dir), "--json"))
        assert (offer["device"], offer["from"], offer["name"]) == (old, owner_a.owner, "Kettle")

        accepted = last_json(
            ioe("owner", "transfer", "accept", "--data-dir", str(b_dir), old, "--json")
        )
        new = accepted["agent"]
        assert new != old and accepted["previous"] == old

        # The plug restarts in-process as B's device under its new key.
        restarted = json.loads(plug.stdout.readline())
        assert restarted["addrs"]
        info = last_json(ioe("node", "info", "--data-dir", str(plug_dir), "--json"))
        assert (info["agent"], info["owner"]) == (new, owner_b.owner)

        b_devices = last_json(ioe("owner", "devices", "--data-dir", str(b_dir), "--json"))
        assert [(d["agent"], d["transferred_from"]["agent"]) for d in b_devices] == [(new, old)]
        [a_device] = last_json(ioe("owner", "devices", "--data-dir", str(a_dir), "--json"))
        assert a_device["transferred"]["to"] == owner_b.owner
        assert a_device["transferred"]["agent"] == new

        # B commands it without a grant (its owner); A no longer can.
        wait_for(lambda: switch(b_dir, new, "off").returncode == 0, timeout=60, interval=1.0)
        read = last_json(ioe("device", "read", "--data-dir", str(plug_dir), "--json"))
        assert read["switch"] is False
        assert switch(a_dir, new, "on").returncode != 0
        assert switch(a_dir, old, "on").returncode != 0

        # The third member learns the transfer: history old → new, the old key is out.
        def history() -> list[str]:
            done = ioe("key", "history", "--data-dir", str(third_dir), old, "--json")
            found = last_json(done)
            return list(found["history"]) if len(found["history"]) > 1 else []

        assert wait_for(history, timeout=60, interval=1.0) == [old, new]
        wait_for(lambda: old not in members(third), timeout=60)
        wait_for(lambda: new in members(third), timeout=60)
        done = last_json(ioe("key", "history", "--data-dir", str(third_dir), old, "--json"))
        [transfer] = done["transfers"]
        assert transfer["id"] == accepted["transfer"]
        assert (transfer["old_device"], transfer["new_device"]) == (old, new)
    finally:
        stop(plug)
        for node in (owner_b, owner_a, third):
            node.stop()
