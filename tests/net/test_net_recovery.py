"""Recovering an owner on a new machine, across real processes on loopback: owner A enrolls a
plug; a third node keeps the network alive; A's machine is lost (its data directory deleted);
``ioe recover`` with the 24 words into a new directory, then ``ioe node run``, brings back A's
chain (verified, continued without a fork) and its device list, and A commands the plug again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, blocked, env, init, wait_for

from ioe.identity.pairing import normalise_code

pytestmark = pytest.mark.process


def ioe(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
        input=stdin,
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


def dht(node: NodeProcess) -> dict[str, Any]:
    (stats,) = node.api("GET", "/v1/dht").values()
    return stats  # type: ignore[no-any-return]


def test_a_recovered_owner_regains_its_chain_and_its_plug(tmp_path: Path) -> None:
    a_dir, a2_dir, keeper_dir, plug_dir = (tmp_path / n for n in ("a", "a2", "keeper", "plug"))
    made = last_json(ioe("init", "--data-dir", str(a_dir), "--json"))
    mnemonic, owner = made["mnemonic"], made["owner"]
    keeper = NodeProcess(keeper_dir, init(keeper_dir)).start("--no-mdns")
    owner_node: NodeProcess | None = NodeProcess(a_dir, owner).start(
        "--no-mdns", "--bootstrap", keeper.addr
    )
    recovered: NodeProcess | None = None
    plug = device(
        "plug-in", "--data-dir", str(plug_dir), "--type", "consumption", "--name", "Kettle",
        "--bootstrap", keeper.addr, "--bootstrap", owner_node.addr,
    )  # fmt: skip
    try:
        assert plug.stdout is not None
        provisional = json.loads(plug.stdout.readline())["agent"]
        code = normalise_code((plug_dir / "pairing-code").read_text())

        def pending() -> bool:
            listed = last_json(ioe("owner", "pending", "--data-dir", str(a_dir), "--json"))
            return any(p["device"] == provisional for p in listed)

        wait_for(pending, timeout=30)
        enrolled = last_json(
            ioe("owner", "enroll", "--data-dir", str(a_dir), provisional, "--code", code, "--json")
        )
        plug_agent = enrolled["agent"]
        assert json.loads(plug.stdout.readline())["enrollment"] == "enrolled"
        stop(plug)  # back as the enrolled plug, now with a (simulated) switch to command
        plug = device(
            "run", "--data-dir", str(plug_dir), "--driver", "sim", "--sim", "plug",
            "--name", "Kettle", "--bootstrap", keeper.addr,
        )  # fmt: skip
        assert plug.stdout is not None
        assert json.loads(plug.stdout.readline())["addrs"]
        info = last_json(ioe("node", "info", "--data-dir", str(plug_dir), "--json"))
        assert (info["agent"], info["owner"]) == (plug_agent, owner)

        # A's history is on the network before its machine is lost
        assert owner_node is not None
        node_a = owner_node
        wait_for(lambda: dht(node_a)["publishing"] == 0, timeout=60)
        rounds = dht(node_a)["gossip_rounds"]
        wait_for(lambda: dht(node_a)["gossip_rounds"] >= rounds + 3, timeout=60)
        old_records = last_json(ioe("chain", "verify", "--data-dir", str(a_dir), "--json"))
        owner_node.stop()
        owner_node = None
        shutil.rmtree(a_dir)

        again = last_json(
            ioe("recover", "--data-dir", str(a2_dir), "--json", stdin=mnemonic + "\n")
        )
        assert again == {"owner": owner}
        recovered = NodeProcess(a2_dir, owner).start("--no-mdns", "--bootstrap", keeper.addr)
        node_a2 = recovered

        devices = last_json(ioe("owner", "devices", "--data-dir", str(a2_dir), "--json"))
        assert [(d["agent"], d["index"], d["name"]) for d in devices] == [(plug_agent, 1, "Kettle")]

        def switched_off() -> bool:
            done = ioe(
                "device", "write", "--data-dir", str(a2_dir), "--remote", plug_agent,
                "switch", "off",
            )  # fmt: skip
            return done.returncode == 0

        wait_for(switched_off, timeout=60, interval=1.0)
        read = last_json(ioe("device", "read", "--data-dir", str(plug_dir), "--json"))
        assert read["switch"] is False

        verified = last_json(ioe("chain", "verify", "--data-dir", str(a2_dir), "--json"))
        assert verified["ok"] is True
        assert verified["records"] >= old_records["records"]
        wait_for(lambda: dht(node_a2)["publishing"] == 0, timeout=60)
        assert owner not in {b["agent"] for b in blocked(keeper_dir)}
        assert dht(keeper)["warrants_signed"] == 0
    finally:
        stop(plug)
        for node in (owner_node, recovered, keeper):
            if node is not None:
                node.stop()
