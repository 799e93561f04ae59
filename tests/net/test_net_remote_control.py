"""Remote control of a device by another agent, across processes over libp2p on loopback: refused
without the device owner's capability grant, allowed with an assigned grant, refused again once it
is revoked. The device node's signal stream (WebSocket) reports each remote write."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import NodeProcess, env, init, wait_for
from websockets.sync.client import connect

from ioe.node.nodefile import read_node_file

pytestmark = pytest.mark.process


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def plug_and_controller(tmp_path: Path) -> Iterator[tuple[Path, str, NodeProcess]]:
    plug_dir = tmp_path / "plug"
    plug = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ioe",
            "device",
            "run",
            "--data-dir",
            str(plug_dir),
            "--driver",
            "sim",
            "--sim",
            "plug",
            "--name",
            "Kettle plug",
            "--standalone",  # nobody enrolls it: it is its own owner
            "--no-mdns",
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    controller: NodeProcess | None = None
    try:
        assert plug.stdout is not None
        ready = json.loads(plug.stdout.readline())
        controller_dir = tmp_path / "controller"
        controller = NodeProcess(controller_dir, init(controller_dir))
        controller.start("--no-mdns", "--bootstrap", ready["addrs"][0])
        plug_agent = json.loads(ioe("node", "info", "--data-dir", str(plug_dir), "--json").stdout)[
            "owner"
        ]
        wait_for(lambda: _knows(controller, plug_agent), timeout=30)  # type: ignore[arg-type]
        yield plug_dir, plug_agent, controller
    finally:
        if controller is not None:
            controller.stop()
        plug.terminate()
        plug.wait(timeout=30)
        for stream in (plug.stdout, plug.stderr):
            if stream is not None:
                stream.close()


def _knows(node: NodeProcess, agent: str) -> bool:
    members = node.api("GET", "/v1/peers")["members"]
    return any(m["agent"] == agent for ms in members.values() for m in ms)


def _switch(plug_dir: Path) -> bool:
    done = ioe("device", "read", "--data-dir", str(plug_dir), "--json")
    assert done.returncode == 0, done.stderr
    return bool(json.loads(done.stdout)["switch"])


def test_remote_control_needs_the_owners_grant(
    plug_and_controller: tuple[Path, str, NodeProcess],
) -> None:
    plug_dir, plug_agent, controller = plug_and_controller
    ctrl = str(controller.data_dir)
    assert _switch(plug_dir) is True

    # No grant: refused with a clear error, and the plug is untouched.
    refused = ioe("device", "write", "--data-dir", ctrl, "--remote", plug_agent, "switch", "off")
    assert refused.returncode != 0
    assert "no capability grant" in refused.stderr
    assert _switch(plug_dir) is True

    # The plug's owner grants the controller's agent read and write.
    made = ioe(
        "grant", "create", "--data-dir", str(plug_dir), "--function", "device.write",
        "--function", "device.read", "--to", controller.owner, "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    grant = json.loads(made.stdout)
    assert grant["secret"]

    node = read_node_file(plug_dir)
    ws_url = node.api.replace("http://", "ws://") + f"/v1/signals?token={node.token}"
    with connect(ws_url, open_timeout=10) as stream:
        written = ioe(
            "device", "write", "--data-dir", ctrl, "--remote", plug_agent,
            "--secret", grant["secret"], "switch", "off",
        )  # fmt: skip
        assert written.returncode == 0, written.stderr
        event = json.loads(stream.recv(timeout=10))
    assert event == {
        "type": "device_write",
        "point": "switch",
        "value": "off",
        "by": controller.owner,
    }
    assert _switch(plug_dir) is False

    read = ioe(
        "device", "read", "--data-dir", ctrl, "--remote", plug_agent,
        "--secret", grant["secret"], "--json",
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["switch"] is False

    # Without the secret, or for a function not granted, still refused.
    no_secret = ioe("device", "write", "--data-dir", ctrl, "--remote", plug_agent, "switch", "on")
    assert no_secret.returncode != 0 and "secret" in no_secret.stderr
    describe = ioe(
        "device", "describe", "--data-dir", ctrl, "--remote", plug_agent,
        "--secret", grant["secret"], "--json",
    )  # fmt: skip
    assert describe.returncode != 0 and "device.describe" in describe.stderr

    # Revoked: refused at once.
    revoked = ioe("grant", "revoke", "--data-dir", str(plug_dir), grant["grant"])
    assert revoked.returncode == 0, revoked.stderr
    after = ioe(
        "device", "write", "--data-dir", ctrl, "--remote", plug_agent,
        "--secret", grant["secret"], "switch", "on",
    )  # fmt: skip
    assert after.returncode != 0 and "no capability grant" in after.stderr
    assert _switch(plug_dir) is False
