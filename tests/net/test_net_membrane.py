"""The core DNA's membrane across real processes on loopback: an owner's node admits its enrolled
device, and refuses a process presenting a forged certificate (``membrane_tool.py``) — without
blocking its peer, and saying why in its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nodes import PASSPHRASE, NodeProcess, blocked, env, init, members, wait_for

from ioe.conductor import Conductor
from ioe.crypto.derivation import OwnerAccount
from ioe.crypto.keystore import Unlock
from ioe.hashing import AgentPubKey
from ioe.identity.device_account import DeviceAccount
from ioe.node.client import call_api
from ioe.testing.membership import device_certificate

pytestmark = pytest.mark.process
TOOL = Path(__file__).with_name("membrane_tool.py")
UNLOCK = Unlock(passphrase=PASSPHRASE)


def enrolled_device(owner_dir: Path, device_dir: Path) -> bytes:
    """Device 1 of the owner, enrolled as ``ioe owner enroll`` would; returns its certificate."""
    with Conductor.open(owner_dir, UNLOCK) as owner:
        account = owner.account
        assert isinstance(account, OwnerAccount)
        cert = device_certificate(account, 1, now_us=owner.clock())
        seed = account.device_seed(1)
    device_dir.mkdir()
    Conductor.adopt_device(device_dir, UNLOCK, DeviceAccount.of(seed, 1, cert)).close()
    return cert.to_bytes()


def start_logged(data_dir: Path, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``ioe node run --verbose`` with its log in a file (a pipe could fill up and stall it)."""
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "ioe", "node", "run", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", "--no-mdns", "--verbose", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env(),
        )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, log.read_text()[-2000:]
    return process, str(json.loads(line)["addrs"][0])


def node_members(data_dir: Path) -> set[str]:
    found = call_api(data_dir, "GET", "/v1/peers", timeout=30)["members"]
    return {m["agent"] for agents in found.values() for m in agents}


def test_a_forged_certificate_is_refused_and_an_enrolled_device_admitted(tmp_path: Path) -> None:
    owner_dir, device_dir = tmp_path / "owner", tmp_path / "device"
    owner_agent = init(owner_dir)
    cert_file = tmp_path / "genuine.cert"
    cert_file.write_bytes(enrolled_device(owner_dir, device_dir))
    owner, addr = start_logged(owner_dir, tmp_path / "owner.log")
    device = NodeProcess(device_dir, owner_agent)
    forger: subprocess.Popen[str] | None = None
    try:
        device.start("--no-mdns", "--bootstrap", addr)
        device_agent = str(device.api("GET", "/v1/info")["agent"])
        wait_for(lambda: device_agent in node_members(owner_dir), timeout=30)
        wait_for(lambda: owner_agent in members(device), timeout=30)

        forger = subprocess.Popen(
            [sys.executable, str(TOOL), str(cert_file), str(tmp_path / "forger.sqlite"), addr],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert forger.stdin is not None and forger.stdout is not None
        line = forger.stdout.readline()
        assert line, forger.stderr.read()[-3000:] if forger.stderr else ""
        tried = json.loads(line)
        assert "not a member" in tried["agents"]
        assert "not a member" in tried["publish"]

        forged = tried["agent"]
        assert forged not in node_members(owner_dir)
        assert forged not in members(device)
        assert blocked(owner_dir) == []

        forger.stdin.write("done\n")
        forger.stdin.flush()
        after = json.loads(forger.stdout.readline())
        assert after["still_connected"] is True  # refused, not hung up on
        assert "not a member" in after["agents_again"]
        assert forger.wait(timeout=60) == 0
        assert device_agent in node_members(owner_dir)
    finally:
        if forger is not None and forger.poll() is None:
            forger.kill()
            forger.wait(timeout=30)
        if forger is not None:
            for stream in (forger.stdin, forger.stdout, forger.stderr):
                if stream is not None:
                    stream.close()
        device.stop()
        owner.terminate()
        owner.wait(timeout=30)
        if owner.stdout is not None:
            owner.stdout.close()
    short = AgentPubKey.from_text(forged).short()
    log = (tmp_path / "owner.log").read_text()
    assert f"refused agent info of {short}: membrane proof refused: certificate not" in log
