"""Communities between two owners' nodes (separate processes over libp2p): Bob's devices join
Ann's community by its rules over ``/ioe/community-join/1`` (one invited as operator, one refused
with the rule's reason), and Ann invites one of Bob's devices, Bob accepts, and Ann lowers its
role (signed by Bob's node without asking him again)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, enroll, init, ioe_json, members, run_device, stop, wait_for

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


def community(ann: NodeProcess, name: str) -> str:
    made = ioe_json(
        "community", "create", "--data-dir", str(ann.data_dir), "--name", name,
        "--zone", "au/nsw", "--json",
    )  # fmt: skip
    return str(made["community"])


def member_list(node: NodeProcess, community_id: str) -> list[dict[str, Any]]:
    found = ioe_json(
        "community", "members", community_id, "--data-dir", str(node.data_dir), "--json"
    )
    return list(found["members"])


def requests(node: NodeProcess) -> dict[str, Any]:
    found: dict[str, Any] = ioe_json(
        "community", "requests", "--data-dir", str(node.data_dir), "--json"
    )
    return found


def test_rules_invite_one_of_another_owners_devices_and_refuse_the_other(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, bob = owners
    base = ann.data_dir.parent
    street = community(ann, "Street plugs")
    rules = base / "rules.json"
    rules.write_text(
        json.dumps(
            {
                "rules": [
                    {"when": {"device_type": "monitor"},
                     "then": {"action": "refuse", "reason": "no meters on this street"}},
                    {"when": {"owner": "other", "device_type": "consumption"},
                     "then": {"action": "invite", "role": "operator"}},
                ]
            }
        )
    )  # fmt: skip
    ioe_json(
        "community", "rules", street, "--set", str(rules), "--data-dir", str(ann.data_dir),
        "--json",
    )  # fmt: skip
    running = []
    try:
        agents = {}
        for name, kind, sim in (("plug", "consumption", "plug"), ("meter", "monitor", "meter")):
            agents[name] = enroll(bob.data_dir, bob.addr, base / name, kind, name)
            running.append(run_device(base / name, bob.addr, sim, name))

        def join(name: str) -> dict[str, Any] | None:
            """Bob's join, once Ann's node can read the device's chain (else None: again)."""
            answer: dict[str, Any] = ioe_json(
                "community", "join", street, "--device", agents[name],
                "--data-dir", str(bob.data_dir), "--json",
            )  # fmt: skip
            return None if "(yet)" in answer.get("reason", "") else answer

        joined = wait_for(lambda: join("plug"), timeout=90, interval=1.0)
        assert joined["state"] == "member", joined
        assert (joined["role"], joined["access"]) == ("operator", ["control", "see"])
        refused = wait_for(lambda: join("meter"), timeout=60, interval=1.0)
        assert refused["state"] == "refused" and refused["reason"] == "no meters on this street"
    finally:
        for process in running:
            stop(process)

    listed = member_list(ann, street)  # committed by Ann with both owners' signatures
    assert [(m["agent"], m["kind"], m["role"], m["access"]) for m in listed] == [
        (agents["plug"], "device", "operator", ["control", "see"])
    ]
    assert wait_for(lambda: member_list(bob, street), timeout=30)[0]["agent"] == agents["plug"]
    alerts = ioe_json("community", "alerts", "--data-dir", str(ann.data_dir), "--json")["alerts"]
    accepted = [a for a in alerts if a["type"] == "community_invitation_accepted"]
    assert [a["agent"] for a in accepted] == [agents["plug"]]
    assert requests(bob)["approvals"][0]["state"] == "approved"  # signed without asking Bob


def test_an_invitation_bob_accepts_then_a_role_lowered_without_asking_him(
    owners: tuple[NodeProcess, NodeProcess],
) -> None:
    ann, bob = owners
    base = ann.data_dir.parent
    street = community(ann, "Street")
    plug = enroll(bob.data_dir, bob.addr, base / "plug", "consumption", "Pool pump")
    running = run_device(base / "plug", bob.addr, "plug", "Pool pump")
    try:
        invited = wait_for(
            lambda: ioe_json(
                "community",
                "invite",
                street,
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
            timeout=90,
            interval=1.0,
        )  # fmt: skip  (Ann reads the plug's chain once it runs)
        assert (invited["state"], invited["agent"], invited["role"]) == ("pending", plug, "member")
        assert member_list(ann, street) == []  # nothing before Bob signs

        def to_approve() -> list[dict[str, Any]]:
            return [a for a in requests(bob)["approvals"] if a["state"] == "pending"]

        [approval] = wait_for(to_approve, timeout=30, interval=0.5)
        shown = approval["document"]
        assert shown["kind"] == "community membership"
        assert (shown["member"], shown["community"], shown["role"], shown["access"]) == (
            plug, street, "member", ["control", "see"],
        )  # fmt: skip
        ioe_json("community", "accept", approval["id"], "--data-dir", str(bob.data_dir), "--json")
        became = wait_for(lambda: member_list(ann, street), timeout=30, interval=0.5)
        assert [(m["agent"], m["role"]) for m in became] == [(plug, "member")]

        # Bob's node notes the membership its plug holds; a lower role is then signed unasked
        wait_for(
            lambda: [m for m in requests(bob)["memberships"] if m["agent"] == plug], timeout=30
        )
        lowered = ioe_json(
            "community", "role", street, plug, "observer", "--data-dir", str(ann.data_dir),
            "--json",
        )  # fmt: skip
        assert (lowered["role"], lowered["access"]) == ("observer", ["see"])

        def observer() -> list[tuple[str, str]]:
            now = [(m["agent"], m["role"]) for m in member_list(ann, street)]
            return now if now == [(plug, "observer")] else []

        assert wait_for(observer, timeout=30, interval=0.5)
        assert to_approve() == []  # Bob was not asked again
    finally:
        stop(running)
