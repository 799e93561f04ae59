"""The new-device flow across real processes on loopback: a device plugged in asks to be
enrolled, the owner sees it pending, a wrong code is refused, the right one enrolls it, and the
enrolled device's agent becomes a member of the owner's core network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nodes import NodeProcess, env, init, members, wait_for

from ioe.identity.pairing import generate_code, normalise_code
from ioe.node.client import call_api

pytestmark = pytest.mark.process


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=90,
        check=False,
    )


def _wrong(code: str) -> str:
    other = generate_code(bytes(7))
    return other if other != code else generate_code(bytes([1] * 7))


def test_plug_in_pending_wrong_code_enrolled_member(tmp_path: Path) -> None:
    owner_dir, device_dir = tmp_path / "owner", tmp_path / "device"
    owner_agent = init(owner_dir)
    owner = NodeProcess(owner_dir, owner_agent).start("--no-mdns")
    device = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ioe",
            "device",
            "plug-in",
            "--data-dir",
            str(device_dir),
            "--type",
            "generator",
            "--name",
            "Roof PV",
            "--zone",
            "au/nsw/newtown",
            "--no-mdns",
            "--listen",
            "127.0.0.1:0",
            "--bootstrap",
            owner.addr,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert device.stdout is not None
        first = json.loads(device.stdout.readline())
        assert first["enrollment"] == "unenrolled"
        code_file = device_dir / "pairing-code"
        assert code_file.stat().st_mode & 0o777 == 0o600
        code = normalise_code(code_file.read_text())

        def listed() -> list[dict[str, str]]:
            done = ioe("owner", "pending", "--data-dir", str(owner_dir), "--json")
            return [p for p in json.loads(done.stdout) if p["device"] == first["agent"]]

        pending = wait_for(listed, timeout=30)
        assert pending == [{"device": first["agent"], "name": "Roof PV", "type": "generator"}]

        wrong = ioe(
            "owner", "enroll", "--data-dir", str(owner_dir), first["agent"],
            "--code", _wrong(code), "--json",
        )  # fmt: skip
        assert wrong.returncode != 0
        assert "wrong pairing code" in wrong.stderr

        done = ioe(
            "owner", "enroll", "--data-dir", str(owner_dir), first["agent"],
            "--code", code, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        agent = json.loads(done.stdout.strip().splitlines()[-1])["agent"]

        second = json.loads(device.stdout.readline())
        assert second["enrollment"] == "enrolled"
        assert second["agent"] == agent

        info = call_api(device_dir, "GET", "/v1/info")
        assert info["agent"] == agent
        assert info["owner"] == owner_agent

        devices = json.loads(ioe("owner", "devices", "--data-dir", str(owner_dir), "--json").stdout)
        assert [d["agent"] for d in devices] == [agent]
        assert (
            ioe("owner", "pending", "--data-dir", str(owner_dir), "--json").stdout.strip() == "[]"
        )

        def member() -> bool:
            peers = owner.api("GET", "/v1/peers")
            return any(m["agent"] == agent for ms in peers["members"].values() for m in ms)

        wait_for(member, timeout=30)
        # the provisional identity said it left when its node closed: no longer a member
        wait_for(lambda: first["agent"] not in members(owner), timeout=30)
        again = ioe("owner", "enroll", "--data-dir", str(owner_dir), first["agent"], "--code", code)
        assert again.returncode != 0
    finally:
        device.terminate()
        device.wait(timeout=30)
        for stream in (device.stdout, device.stderr):
            if stream is not None:
                stream.close()
        owner.stop()
