"""Communities between two owners' nodes (separate processes over libp2p): founding, the
directory by zone, memberships, access enforced as grants on member devices, and rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, enroll, env, init, ioe_json, members, run_device, stop, wait_for

pytestmark = pytest.mark.process


@pytest.fixture
def owners(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    dirs = [tmp_path / "ann", tmp_path / "bob"]
    with ThreadPoolExecutor(2) as pool:
        owner_keys = list(pool.map(init, dirs))
    ann, bob = (NodeProcess(d, o) for d, o in zip(dirs, owner_keys, strict=True))
    try:
        ann.start("--no-mdns")
        bob.start("--no-mdns", "--bootstrap", ann.addr)
        for node in (ann, bob):
            wait_for(lambda n=node: len(members(n)) >= 2, timeout=30)
        yield ann, bob
    finally:
        bob.stop()
        ann.stop()


def test_a_public_community_is_found_by_its_zone_and_a_private_one_by_nobody_else(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, bob = owners
    public = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir),
        "--name", "King St solar", "--zone", "au/nsw/newtown/king-st", "--json",
    )  # fmt: skip
    private = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir),
        "--name", "Ann's flats", "--zone", "au/nsw/newtown", "--private", "--json",
    )  # fmt: skip
    assert public["community"].startswith("uxtrn") and public["community"] != private["community"]
    assert (public["visibility"], private["visibility"]) == ("public", "private")

    def bob_sees(zone: str | None = None) -> Any:
        args = ["community", "directory", "--data-dir", str(bob.data_dir), "--json"]
        return ioe_json(*args, *(["--zone", zone] if zone else []))

    found = wait_for(lambda: bob_sees("au/nsw")["communities"], timeout=30, interval=0.5)
    assert [(c["id"], c["name"], c["zone"]) for c in found] == [
        (public["community"], "King St solar", "au/nsw/newtown/king-st")
    ]
    assert found[0]["members"] == 1  # its manager, until members join
    assert [c["id"] for c in bob_sees()["communities"]] == [public["community"]]
    assert [c["id"] for c in bob_sees("au/nsw/newtown/king-st")["communities"]] == [
        public["community"]
    ]
    assert bob_sees("au/vic")["communities"] == []
    assert isinstance(bob_sees("au/nsw")["devices"], list)

    # Ann's own view: both of hers (the private one only to her)
    mine = ioe_json("community", "directory", "--data-dir", str(ann.data_dir), "--json")
    assert {c["id"] for c in mine["communities"]} == {public["community"], private["community"]}
    shown = ioe_json(
        "community", "show", private["community"], "--data-dir", str(ann.data_dir), "--json"
    )
    assert shown["name"] == "Ann's flats" and shown["zone"] == "au/nsw/newtown"


def test_bad_community_input_gets_a_clear_error_and_founds_nothing(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, _ = owners
    for extra, reason in (
        (["--name", "x", "--zone", "AU/NSW"], "zone"),
        (["--name", "x" * 81, "--zone", "au"], "1 to 80"),
        (["--name", "x", "--zone", "au", "--parent", "not-an-id"], "parent"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ioe", "community", "create", "--data-dir", str(ann.data_dir),
             *extra],
            capture_output=True, text=True, env=env(), timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode != 0 and reason in done.stderr, done.stderr[-500:]
    assert ioe_json("community", "list", "--data-dir", str(ann.data_dir), "--json") == {
        "communities": []
    }


def test_an_owners_device_joins_counts_and_leaves(owners: tuple[NodeProcess, NodeProcess]) -> None:
    ann, bob = owners
    plug_dir = ann.data_dir.parent / "plug"
    plug = enroll(ann.data_dir, ann.addr, plug_dir, "consumption", "Pool pump")
    running = run_device(plug_dir, ann.addr, "plug", "Pool pump")
    try:
        made = ioe_json(
            "community", "create", "--data-dir", str(ann.data_dir),
            "--name", "Pool pumps", "--zone", "au/nsw/newtown", "--json",
        )  # fmt: skip
        community = made["community"]
        joined = wait_for(
            lambda: ioe_json(
                "community",
                "invite",
                community,
                plug,
                "--data-dir",
                str(ann.data_dir),
                "--role",
                "member",
                "--access",
                "see",
                "--access",
                "control",
                "--json",
            ),
            timeout=60,
            interval=1.0,
        )  # fmt: skip  (the plug's chain reaches the network once it runs)
    finally:
        stop(running)
    assert joined["agent"] == plug and joined["kind"] == "device"
    assert joined["access"] == ["control", "see"]

    def listed_by_bob() -> Any:
        found = ioe_json(
            "community", "directory", "--data-dir", str(bob.data_dir), "--zone", "au/nsw", "--json"
        )
        return [c for c in found["communities"] if c["id"] == community]

    assert wait_for(lambda: listed_by_bob() and listed_by_bob()[0]["members"] == 2, timeout=30)
    members = ioe_json("community", "members", community, "--data-dir", str(bob.data_dir), "--json")
    assert [(m["agent"], m["role"]) for m in members["members"]] == [(plug, "member")]

    # an observer may not be given control; a device may not manage
    refused = (("observer", "control", "may not be given"), ("manager", "see", "cannot manage"))
    for role, access, reason in refused:
        done = subprocess.run(
            [sys.executable, "-m", "ioe", "community", "invite", community, plug,
             "--data-dir", str(ann.data_dir), "--role", role, "--access", access],
            capture_output=True, text=True, env=env(), timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode != 0 and reason in done.stderr, done.stderr[-500:]

    ioe_json("community", "leave", community, plug, "--data-dir", str(ann.data_dir), "--json")
    assert wait_for(lambda: listed_by_bob()[0]["members"] == 1, timeout=30)
    assert ioe_json(
        "community", "members", community, "--data-dir", str(ann.data_dir), "--json"
    ) == {"members": []}


def _call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True, text=True, env=env(), timeout=60, check=False,
    )  # fmt: skip


def test_roles_become_grants_on_the_members_devices_and_leave_revokes_them(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    """A member with control switches another member's plug through its community grant; an
    observer can read it but not switch it; once the controller leaves, it cannot either."""
    ann, _ = owners
    base = ann.data_dir.parent
    agents: dict[str, str] = {}
    running = []
    try:
        for name, sim in (("plug", "plug"), ("ctrl", "meter"), ("watch", "meter")):
            kind = "consumption" if sim == "plug" else "monitor"
            agents[name] = enroll(ann.data_dir, ann.addr, base / name, kind, name)
            running.append(run_device(base / name, ann.addr, sim, name))
        community = ioe_json(
            "community", "create", "--data-dir", str(ann.data_dir),
            "--name", "Street", "--zone", "au/nsw/newtown", "--json",
        )["community"]  # fmt: skip
        for name, role, access in (
            ("plug", "member", ("see", "control")),
            ("ctrl", "operator", ("see", "control")),
            ("watch", "observer", ("see",)),
        ):
            flags = [a for level in access for a in ("--access", level)]
            wait_for(
                lambda n=name, r=role, f=flags: ioe_json(
                    "community", "invite", community, agents[n], "--data-dir", str(ann.data_dir),
                    "--role", r, *f, "--json",
                ),
                timeout=60,
                interval=1.0,
            )  # fmt: skip

        def as_member(who: str, *command: str) -> subprocess.CompletedProcess[str]:
            return _call(
                "device", *command, "--data-dir", str(base / who), "--remote", agents["plug"],
                "--community", community,
            )  # fmt: skip

        def switched_off() -> bool:
            return as_member("ctrl", "write", "switch", "off").returncode == 0

        assert wait_for(switched_off, timeout=60, interval=1.0)  # the plug made its grants
        mine = _call("device", "read", "--data-dir", str(base / "plug"), "--json")
        assert json.loads(mine.stdout)["switch"] is False
        denied = as_member("watch", "write", "switch", "on")
        assert denied.returncode != 0 and "grant" in denied.stderr
        read = as_member("watch", "read", "--json")
        assert read.returncode == 0 and json.loads(read.stdout)["switch"] is False

        ioe_json(
            "community",
            "leave",
            community,
            agents["ctrl"],
            "--data-dir",
            str(ann.data_dir),
            "--json",
        )

        def refused() -> bool:  # (switching off again changes nothing if it still gets through)
            done = as_member("ctrl", "write", "switch", "off")
            return done.returncode != 0 and "grant" in done.stderr

        assert wait_for(refused, timeout=60, interval=1.0)  # revoked on the plug's chain
        assert as_member("ctrl", "read", "--json").returncode != 0
        assert as_member("watch", "read", "--json").returncode == 0  # the others keep theirs
    finally:
        for process in running:
            stop(process)


def test_rules_invite_a_matching_device_and_refuse_one_that_does_not(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, _ = owners
    base = ann.data_dir.parent
    community = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir),
        "--name", "Plugs only", "--zone", "au/nsw", "--json",
    )["community"]  # fmt: skip
    rule_file = base / "rules.json"
    rule_file.write_text(
        json.dumps(
            {
                "rules": [
                    {"when": {"device_type": "monitor"}, "then": {"action": "refuse"}},
                    {
                        "when": {"owner": "mine", "device_type": "consumption", "zone": "au/nsw"},
                        "then": {"action": "invite", "role": "member", "access": ["see"]},
                    },
                ]
            }
        )
    )
    kept = ioe_json(
        "community", "rules", community, "--set", str(rule_file), "--data-dir", str(ann.data_dir),
        "--json",
    )  # fmt: skip
    assert kept == {"rules": 2}
    rule_file.write_text('{"rules": [{"when": {"colour": "red"}, "then": {"action": "ask"}}]}')
    bad = _call("community", "rules", community, "--set", str(rule_file), "--data-dir",
                str(ann.data_dir))  # fmt: skip
    assert bad.returncode != 0 and "unknown condition 'colour'" in bad.stderr
    assert (
        len(ioe_json("community", "rules", community, "--data-dir", str(ann.data_dir))["rules"])
        == 2
    )

    running = []
    try:
        agents = {}
        for name, kind, sim in (("plug", "consumption", "plug"), ("meter", "monitor", "meter")):
            agents[name] = enroll(ann.data_dir, ann.addr, base / name, kind, name)
            running.append(run_device(base / name, ann.addr, sim, name))

        def member_agents() -> set[str]:
            found = ioe_json(
                "community", "members", community, "--data-dir", str(ann.data_dir), "--json"
            )
            return {m["agent"] for m in found["members"]}

        assert wait_for(lambda: agents["plug"] in member_agents(), timeout=90, interval=1.0)
        for _ in range(5):  # over the next rounds of the rules (every 5 s), still refused
            assert agents["meter"] not in member_agents()
            time.sleep(2)
    finally:
        for process in running:
            stop(process)


def test_the_manager_is_told_of_arrivals_in_its_zone_and_of_members_leaving(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, _ = owners
    base = ann.data_dir.parent
    community = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir),
        "--name", "Newtown", "--zone", "au/nsw/newtown", "--json",
    )["community"]  # fmt: skip
    elsewhere = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir),
        "--name", "Hobart", "--zone", "au/tas/hobart", "--json",
    )["community"]  # fmt: skip

    def alerts(kind: str) -> list[dict[str, Any]]:
        found = ioe_json("community", "alerts", "--data-dir", str(ann.data_dir), "--json")
        return [a for a in found["alerts"] if a["type"] == kind]

    plug = enroll(
        ann.data_dir, ann.addr, base / "plug", "consumption", "Heater", "au/nsw/newtown/x"
    )
    running = run_device(base / "plug", ann.addr, "plug", "Heater")
    try:
        arrived = wait_for(
            lambda: [a for a in alerts("community_arrival") if a["agent"] == plug], timeout=60
        )
        assert {a["community"] for a in arrived} == {community}  # not Hobart's
        assert elsewhere not in {a["community"] for a in alerts("community_arrival")}
        assert arrived[0]["zone"] == "au/nsw/newtown/x"
        assert arrived[0]["device_type"] == "consumption"
        wait_for(
            lambda: ioe_json(
                "community", "invite", community, plug, "--data-dir", str(ann.data_dir), "--json"
            ),
            timeout=60,
            interval=1.0,
        )
        time.sleep(6)  # the manager's node notes its members at its next round (5 s)
    finally:
        stop(running)  # a polite stop: the device says it left

    def gone() -> list[dict[str, Any]]:
        return [
            a
            for a in alerts("community_member_presence")
            if a["agent"] == plug and a["present"] is False
        ]

    [left] = wait_for(gone, timeout=60, interval=1.0)
    assert left["community"] == community
