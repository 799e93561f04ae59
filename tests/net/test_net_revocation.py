"""Key revocation across real processes on loopback: an owner enrolls a device, revokes its key
with ``ioe key revoke``, and a third member then refuses the device's new records and its calls,
naming the revocation; the owner lists the device as revoked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, members, wait_for

from ioe.identity.pairing import normalise_code
from ioe.node.client import ApiError, call_api

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


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile_name(data_dir: Path, agent: str) -> str | None:
    try:
        return str(call_api(data_dir, "GET", f"/v1/profile/{agent}", timeout=30)["name"])
    except ApiError:
        return None


def test_a_revoked_device_is_refused_by_another_member(tmp_path: Path) -> None:
    owner_dir, third_dir, device_dir = tmp_path / "owner", tmp_path / "third", tmp_path / "device"
    owner = NodeProcess(owner_dir, init(owner_dir)).start("--no-mdns")
    third = NodeProcess(third_dir, init(third_dir)).start("--no-mdns", "--bootstrap", owner.addr)
    device = subprocess.Popen(
        [
            sys.executable, "-m", "ioe", "device", "plug-in", "--data-dir", str(device_dir),
            "--type", "consumption", "--name", "Kettle", "--no-mdns",
            "--listen", "127.0.0.1:0", "--bootstrap", owner.addr,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )  # fmt: skip
    try:
        assert device.stdout is not None
        first = json.loads(device.stdout.readline())
        code = normalise_code((device_dir / "pairing-code").read_text())
        wait_for(
            lambda: "Kettle" in ioe("owner", "pending", "--data-dir", str(owner_dir)).stdout,
            timeout=30,
        )
        agent = last_json(
            ioe("owner", "enroll", "--data-dir", str(owner_dir), first["agent"], "--code", code,
                "--json")
        )["agent"]  # fmt: skip
        assert json.loads(device.stdout.readline())["agent"] == agent
        third_agent = third.owner
        wait_for(lambda: agent in members(third) and agent in members(owner), timeout=60)
        wait_for(lambda: third_agent in set(_device_members(device_dir)), timeout=60)

        # Before the revocation: the device's profile reaches everyone.
        call_api(device_dir, "POST", "/v1/profile", {"name": "before", "zone": "au"})
        wait_for(lambda: profile_name(owner_dir, agent) == "before", timeout=60)
        wait_for(lambda: profile_name(third_dir, agent) == "before", timeout=60)

        stranger = ioe("key", "revoke", "--data-dir", str(third_dir), agent, "--json")
        assert stranger.returncode != 0
        assert "not a device this owner enrolled" in stranger.stderr

        revoked = last_json(
            ioe("key", "revoke", "--data-dir", str(owner_dir), agent, "--reason", "stolen",
                "--json")
        )  # fmt: skip
        assert revoked["revoked"] == agent
        assert revoked["last_valid_seq"] >= 4  # the profile stands
        devices = last_json(ioe("owner", "devices", "--data-dir", str(owner_dir), "--json"))
        assert [d["revoked"]["id"] for d in devices] == [revoked["id"]]

        def known_to_third() -> list[dict[str, Any]]:
            done = ioe("key", "revocations", "--data-dir", str(third_dir), agent, "--json")
            return list(last_json(done))

        assert [r["id"] for r in wait_for(known_to_third, timeout=60)] == [revoked["id"]]
        wait_for(lambda: agent not in members(third), timeout=60)

        # After it: the device's new records are refused (the old profile stands) ...
        call_api(device_dir, "POST", "/v1/profile", {"name": "after", "zone": "au"})
        # its own read: slow on a loaded machine
        wait_for(lambda: profile_name(device_dir, agent) == "after", timeout=90)
        assert profile_name(third_dir, agent) == "before"
        assert profile_name(owner_dir, agent) == "before"

        # ... and so are its calls, naming the revocation.
        with pytest.raises(ApiError) as refused:
            call_api(
                device_dir,
                "POST",
                "/v1/call",
                {"agent": third_agent, "zome": "profile", "fn": "my_profile"},
                timeout=30,
            )
        assert "revoked" in str(refused.value) and revoked["id"][:9] in str(refused.value)
    finally:
        device.terminate()
        device.wait(timeout=30)
        for stream in (device.stdout, device.stderr):
            if stream is not None:
                stream.close()
        third.stop()
        owner.stop()


def _device_members(device_dir: Path) -> list[str]:
    found = call_api(device_dir, "GET", "/v1/peers", timeout=30)["members"]
    return [m["agent"] for agents in found.values() for m in agents]
