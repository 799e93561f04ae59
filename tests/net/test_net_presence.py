"""Presence and visibility across real processes on loopback: an owner enrolls a plug and a
private device (``ioe device plug-in`` → ``ioe owner enroll``); a third member (another owner)
sees the plug in its directory but not the private device; the plug is killed (SIGKILL, no
word said) and its owner's node raises a ``device_presence`` alert and lists it absent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, ioe_json, members, stop, wait_for
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from ioe.identity.pairing import normalise_code
from ioe.node.nodefile import read_node_file

pytestmark = pytest.mark.process
LIVENESS_S = "2"


def plug_in(data_dir: Path, name: str, bootstrap: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ioe",
            "device",
            "plug-in",
            "--data-dir",
            str(data_dir),
            "--type",
            "consumption",
            "--name",
            name,
            "--zone",
            "au/nsw/newtown",
            "--no-mdns",
            "--listen",
            "127.0.0.1:0",
            "--bootstrap",
            bootstrap,
            "--liveness-timeout",
            LIVENESS_S,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def enroll(owner_dir: Path, device: subprocess.Popen[str], device_dir: Path, *extra: str) -> str:
    """Enroll a plugged-in device by its code; its enrolled agent."""
    assert device.stdout is not None
    first = json.loads(device.stdout.readline())
    code = normalise_code((device_dir / "pairing-code").read_text())

    def pending() -> bool:
        listed = ioe_json("owner", "pending", "--data-dir", str(owner_dir), "--json")
        return any(p["device"] == first["agent"] for p in listed)

    wait_for(pending, timeout=30)
    done = ioe_json(
        "owner", "enroll", "--data-dir", str(owner_dir), first["agent"], "--code", code,
        "--json", *extra,
    )  # fmt: skip
    second = json.loads(device.stdout.readline())
    assert second["enrollment"] == "enrolled" and second["agent"] == done["agent"]
    return str(done["agent"])


def directory(data_dir: Path, *extra: str) -> dict[str, dict[str, Any]]:
    listed = ioe_json("node", "directory", "--data-dir", str(data_dir), "--json", *extra)
    return {item["agent"]: item for item in listed}


def test_directory_visibility_and_the_owners_alert_when_a_plug_is_unplugged(
    tmp_path: Path,
) -> None:
    ann_dir, bob_dir = tmp_path / "ann", tmp_path / "bob"
    plug_dir, safe_dir = tmp_path / "plug", tmp_path / "safe"
    ann_agent, bob_agent = init(ann_dir), init(bob_dir)
    ann = NodeProcess(ann_dir, ann_agent).start("--no-mdns", "--liveness-timeout", LIVENESS_S)
    bob = NodeProcess(bob_dir, bob_agent).start(
        "--no-mdns", "--bootstrap", ann.addr, "--liveness-timeout", LIVENESS_S
    )
    devices: list[subprocess.Popen[str]] = []
    try:
        devices.append(plug_in(plug_dir, "Kettle", ann.addr))
        plug_agent = enroll(ann_dir, devices[0], plug_dir)
        devices.append(plug_in(safe_dir, "Safe", ann.addr))
        safe_agent = enroll(ann_dir, devices[1], safe_dir, "--private")

        # Bob, another owner, sees the plug in his directory, by its certificate...
        def bob_lists_plug() -> dict[str, Any] | None:
            return directory(bob_dir).get(plug_agent)

        plug = wait_for(bob_lists_plug, timeout=60)
        assert plug == {
            "agent": plug_agent,
            "kind": "device",
            "name": "Kettle",
            "type": "consumption",
            "zone": "au/nsw/newtown",
            "owner": ann_agent,
            "visibility": "public",
            "present": True,
        }
        assert plug_agent in directory(bob_dir, "--zone", "au/nsw")
        assert directory(bob_dir, "--zone", "eu") == {}
        # ...but not the private device, although it is a member of his network too,
        wait_for(lambda: safe_agent in members(bob), timeout=60)
        assert safe_agent not in directory(bob_dir)
        # which its owner's node lists.
        ann_list = wait_for(
            lambda: safe_agent in directory(ann_dir) and directory(ann_dir), timeout=60
        )
        assert ann_list[safe_agent]["visibility"] == "private"
        assert ann_list[plug_agent]["owner"] == ann_agent

        status = {
            d["agent"]: d
            for d in ioe_json("owner", "devices", "--data-dir", str(ann_dir), "--json")
        }
        assert status[plug_agent]["present"] is True and status[safe_agent]["present"] is True

        # The plug is unplugged: killed, no departure said.
        node = read_node_file(ann_dir)
        ws_url = node.api.replace("http://", "ws://") + f"/v1/signals?token={node.token}"
        alert: dict[str, Any] | None = None
        with connect(ws_url, open_timeout=10) as stream:
            devices[0].send_signal(signal.SIGKILL)
            devices[0].wait(timeout=30)
            deadline = time.monotonic() + 60
            while alert is None and time.monotonic() < deadline:
                try:
                    event = json.loads(stream.recv(timeout=max(0.1, deadline - time.monotonic())))
                except (TimeoutError, WebSocketException):
                    break
                if event.get("type") == "device_presence" and event["device"] == plug_agent:
                    alert = event
        assert alert == {
            "type": "device_presence",
            "device": plug_agent,
            "name": "Kettle",
            "present": False,
        }
        status = {
            d["agent"]: d
            for d in ioe_json("owner", "devices", "--data-dir", str(ann_dir), "--json")
        }
        assert status[plug_agent]["present"] is False
        assert isinstance(status[plug_agent]["last_seen_us"], int)
        assert status[safe_agent]["present"] is True
        assert directory(ann_dir)[plug_agent]["present"] is False
    finally:
        for process in devices:
            stop(process)
        bob.stop()
        ann.stop()
