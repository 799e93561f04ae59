"""``ioe device run`` on a new directory is an unenrolled device, not its own owner: it says so,
bridges its device under the factory-default policy, joins no network and asks to be enrolled;
its owner enrolls it as it runs. ``--standalone`` makes it its own owner, when asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nodes import NodeProcess, init, ioe, ioe_json, members, popen, stop, wait_for

from ioe.identity.pairing import normalise_code

pytestmark = pytest.mark.process


def test_a_device_nobody_enrolled_runs_unenrolled_until_its_owner_enrolls_it(
    tmp_path: Path,
) -> None:
    owner = NodeProcess(tmp_path / "owner", init(tmp_path / "owner"))
    owner.start("--no-mdns")
    plug_dir = tmp_path / "plug"
    plug = popen(
        "device", "run", "--data-dir", str(plug_dir), "--driver", "sim", "--sim", "plug",
        "--name", "Kettle", "--no-mdns", "--listen", "127.0.0.1:0", "--bootstrap", owner.addr,
    )  # fmt: skip
    try:
        assert plug.stdout is not None and plug.stderr is not None
        first = json.loads(plug.stdout.readline())
        assert first["enrollment"] == "unenrolled"
        notice = plug.stderr.readline()
        assert "not enrolled" in notice and "factory-default policy" in notice
        # it bridges its device all the same
        read = ioe_json("device", "read", "--data-dir", str(plug_dir), "--json")
        assert "power_w" in read
        # but it is no member of the owner's network: no extra nameless owner appears
        assert first["agent"] not in members(owner)

        code = normalise_code((plug_dir / "pairing-code").read_text())

        def pending() -> bool:
            listed = ioe_json("owner", "pending", "--data-dir", str(owner.data_dir), "--json")
            return any(p["device"] == first["agent"] for p in listed)

        wait_for(pending, timeout=30)
        enrolled = ioe_json(
            "owner", "enroll", "--data-dir", str(owner.data_dir), first["agent"], "--code", code,
            "--json",
        )  # fmt: skip
        second = json.loads(plug.stdout.readline())
        assert second["enrollment"] == "enrolled" and second["agent"] == enrolled["agent"]
        wait_for(lambda: enrolled["agent"] in members(owner), timeout=30)
        read = ioe_json("device", "read", "--data-dir", str(plug_dir), "--json")
        assert "power_w" in read  # the same process, enrolled, still bridging the plug
        grants = ioe("grant", "list", "--data-dir", str(plug_dir))
        assert "currency: payers read the ledger head" in grants.stdout  # each grant's tag
    finally:
        stop(plug)
        owner.stop()
    shown = ioe("chain", "show", "--data-dir", str(plug_dir), "--limit", "2").stdout
    assert f"chain of {first['agent']}: the device's provisional identity" in shown
    assert "never published" in shown
    assert f"chain of {enrolled['agent']} in ioe-core" in shown


def test_standalone_makes_a_device_its_own_owner_when_asked(tmp_path: Path) -> None:
    plug_dir = tmp_path / "plug"
    plug = popen(
        "device", "run", "--data-dir", str(plug_dir), "--driver", "sim", "--sim", "plug",
        "--name", "Kettle", "--no-mdns", "--listen", "127.0.0.1:0", "--standalone",
    )  # fmt: skip
    try:
        assert plug.stdout is not None and plug.stderr is not None
        started = json.loads(plug.stdout.readline())
        assert "enrollment" not in started and "api" in started
        assert "its own owner" in plug.stderr.readline()
    finally:
        stop(plug)
    again = popen(
        "device", "run", "--data-dir", str(plug_dir), "--driver", "sim", "--sim", "plug",
        "--name", "Kettle", "--no-mdns", "--listen", "127.0.0.1:0",
    )  # fmt: skip
    try:
        assert again.stdout is not None
        restarted = json.loads(again.stdout.readline())
        assert "enrollment" not in restarted  # once its own owner, it stays so
    finally:
        stop(again)
