"""The app store between separate processes over libp2p: a developer publishes the demand app's
manifest, a manager installs it into its community with a subscription, the member plug runs
it in the app's own network, each period is paid to the developer, and the app stops when its
paid time runs out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, enroll, init, ioe, ioe_json, members, run_device, stop, wait_for

pytestmark = pytest.mark.process

FEE_MC = 300
PERIOD_S = 20


@pytest.fixture
def dev_and_ann(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    dirs = [tmp_path / "dev", tmp_path / "ann"]
    with ThreadPoolExecutor(2) as pool:
        owner_keys = list(pool.map(init, dirs))
    dev, ann = (NodeProcess(d, o) for d, o in zip(dirs, owner_keys, strict=True))
    try:
        dev.start("--no-mdns")
        ann.start("--no-mdns", "--bootstrap", dev.addr)
        for node in (dev, ann):
            wait_for(lambda n=node: len(members(n)) >= 2, timeout=30)
        yield dev, ann
    finally:
        ann.stop()
        dev.stop()


def _manifest(path: Path) -> Path:
    """The bundled demand manifest, sold as a subscription of FEE_MC every PERIOD_S."""
    bundled = json.loads((resources.files("ioe.apps.demand") / "manifest.json").read_text())
    bundled["pricing"] = {"model": "subscription", "fee_mc": FEE_MC, "period_s": PERIOD_S}
    path.write_text(json.dumps(bundled))
    return path


def _balance(node: NodeProcess) -> int:
    found = ioe_json("wallet", "balance", "--data-dir", str(node.data_dir), "--json")
    return int(found["balance_mc"])


def test_a_subscribed_app_runs_on_members_is_paid_per_period_and_stops_unpaid(
    dev_and_ann: tuple[NodeProcess, NodeProcess],
) -> None:
    dev, ann = dev_and_ann
    base = ann.data_dir.parent
    listed = ioe_json(
        "apps", "publish", str(_manifest(base / "demand.json")), "--data-dir", str(dev.data_dir),
        "--json",
    )  # fmt: skip
    assert (listed["app"], listed["developer"]) == ("demand", dev.owner)
    garbled = base / "garbled.json"
    garbled.write_text('{"app": "demand", "pricing": {"model": "subscription", "fee_mc": 1.5}}')
    done = ioe("apps", "publish", str(garbled), "--data-dir", str(dev.data_dir))
    assert done.returncode != 0 and "integers" in done.stderr, done.stderr[-500:]

    plug = enroll(ann.data_dir, ann.addr, base / "plug", "consumption", "Pool pump")
    running = run_device(base / "plug", ann.addr, "plug", "Pool pump")
    try:
        community = ioe_json(
            "community", "create", "--data-dir", str(ann.data_dir),
            "--name", "Pool pumps", "--zone", "au/nsw/newtown", "--json",
        )["community"]  # fmt: skip
        wait_for(
            lambda: ioe_json(
                "community", "invite", community, plug, "--data-dir", str(ann.data_dir), "--json"
            ),
            timeout=60,
            interval=1.0,
        )  # the plug's chain reaches the network once it runs

        def in_store() -> Any:
            found = ioe_json("apps", "list", "--data-dir", str(ann.data_dir), "--json")["apps"]
            return [a for a in found if a["app"] == "demand"]

        [app] = wait_for(in_store, timeout=30, interval=0.5)
        assert app["capabilities"] == [
            {"point": "power_w", "access": "see"},
            {"point": "switch", "access": "control"},
        ]
        installed = ioe_json(
            "apps", "install", "demand", "--community", community, "--periods", "2",
            "--settings", '{"prices": "nsw1", "speed": 300}', "--yes",
            "--data-dir", str(ann.data_dir), "--json",
        )  # fmt: skip
        assert (installed["state"], installed["paid_periods"]) == ("running", 1)
        assert installed["payment"]["amount_mc"] == FEE_MC

        def on_the_plug() -> list[Any]:
            found = ioe_json("apps", "running", "--data-dir", str(base / "plug"), "--json")
            return [r for r in found["running"] if r["app"] == "demand"]

        # the plug runs the app's code, in the app's network, with the manager's node
        [ran] = wait_for(lambda: [r for r in on_the_plug() if r["members"] == 2], timeout=30)
        assert ran["code"] and ran["app_agent"] != plug  # its own app key
        assert ran["community"] == community

        # the second period is paid ahead; then nothing more, and the app stops
        wait_for(lambda: _balance(dev) == 2 * FEE_MC, timeout=PERIOD_S + 15, interval=1.0)
        wait_for(lambda: not on_the_plug(), timeout=2 * PERIOD_S + 15, interval=1.0)
        [sub] = ioe_json("apps", "subscriptions", "--data-dir", str(ann.data_dir), "--json")[
            "subscriptions"
        ]
        assert (sub["state"], sub["paid_periods"]) == ("unpaid", 2)
        assert _balance(dev) == 2 * FEE_MC and _balance(ann) == -2 * FEE_MC
    finally:
        stop(running)
