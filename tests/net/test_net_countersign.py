"""Countersigning between two real ``ioe node run`` processes over libp2p on loopback, and with a
party killed (``os._exit``, by the test faults :mod:`ioe.testing.faulty_node` hands its node) at
each step of the protocol, then restarted: nobody is left stranded — both chains hold the
session or neither does, and no chain stays locked."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, init, wait_for

from ioe.faults import SESSION_POINTS, SessionPoint
from ioe.node.client import ApiError
from ioe.node.nodefile import NoRunningNode
from ioe.testing.faults import InjectedFaults

pytestmark = pytest.mark.process

ACCEPT = ("--countersign-accept", "profile")
ENTRY = {"type": "profile", "value": {"name": "Deal", "zone": "au/nsw/newtown"}}


def _members(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


def _start_pair(a: NodeProcess, b: NodeProcess) -> None:
    a.start("--no-mdns", *ACCEPT)
    b.start("--no-mdns", *ACCEPT, "--bootstrap", a.addr)
    for node in (a, b):
        wait_for(lambda n=node: _members(n) == 2, timeout=30)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    dirs = [tmp_path / "alice", tmp_path / "bob"]
    nodes = [NodeProcess(d, init(d)) for d in dirs]
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def _status(node: NodeProcess) -> dict[str, Any]:
    return node.api("GET", "/v1/countersign")  # type: ignore[no-any-return]


def _sessions(node: NodeProcess) -> set[str]:
    return {c["session"] for c in _status(node)["committed"]}


def _settled(a: NodeProcess, b: NodeProcess) -> tuple[set[str], set[str]] | None:
    """Both nodes' committed sessions once neither chain is locked."""
    sa, sb = _status(a), _status(b)
    if sa["locks"] or sb["locks"]:
        return None
    return {c["session"] for c in sa["committed"]}, {c["session"] for c in sb["committed"]}


def _start_session(a: NodeProcess, b: NodeProcess, timeout_s: float = 10.0) -> dict[str, Any]:
    body = {"with": [b.owner], "entry": ENTRY, "timeout_s": timeout_s}
    return a.api("POST", "/v1/countersign", body)  # type: ignore[no-any-return]


def test_two_processes_countersign_and_both_chains_hold_the_record(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = pair
    _start_pair(alice, bob)
    result = _start_session(alice, bob)
    assert _sessions(alice) == {result["session"]}
    wait_for(lambda: _settled(alice, bob) == ({result["session"]}, {result["session"]}), timeout=10)
    bob_record = _status(bob)["committed"][0]
    assert bob_record["parties"] == [alice.owner, bob.owner]
    # The chains took ordinary writes again.
    alice.api("POST", "/v1/profile", {"name": "Alice", "zone": "au/nsw"})
    bob.api("POST", "/v1/profile", {"name": "Bob", "zone": "au/nsw"})
    # And a second session in the other direction.
    again = _start_session(bob, alice)
    wait_for(
        lambda: (
            _settled(alice, bob)
            == ({result["session"], again["session"]}, {result["session"], again["session"]})
        ),
        timeout=10,
    )


def test_a_session_with_an_unknown_agent_is_refused(pair: tuple[NodeProcess, NodeProcess]) -> None:
    alice, bob = pair
    _start_pair(alice, bob)
    stranger = NodeProcess(Path("/nonexistent"), "")
    stranger.owner = "uhCAk" + "A" * 48
    with pytest.raises(ApiError):
        _start_session(alice, stranger, timeout_s=2)
    wait_for(lambda: _settled(alice, bob) == (set(), set()), timeout=10)


@pytest.mark.parametrize("point", SESSION_POINTS)
def test_a_party_killed_at_each_step_leaves_nobody_stranded(
    pair: tuple[NodeProcess, NodeProcess], point: SessionPoint
) -> None:
    alice, bob = pair
    victim, survivor = (alice, bob) if point.startswith("initiator") else (bob, alice)
    victim.faults = InjectedFaults(crash_at=point)
    _start_pair(alice, bob)
    try:
        result: dict[str, Any] | None = _start_session(alice, bob, timeout_s=3)
    except (ApiError, NoRunningNode):
        result = None  # the initiator died mid-call, or the session was abandoned
    assert victim.process is not None
    assert victim.process.wait(timeout=20) == 86, "the fault injection did not fire"
    victim.stop()
    victim.faults = None
    victim.start("--no-mdns", *ACCEPT, "--bootstrap", survivor.addr)

    settled = wait_for(lambda: _settled(alice, bob), timeout=45, interval=0.25)
    alice_sessions, bob_sessions = settled
    assert alice_sessions == bob_sessions, f"stranded: alice {alice_sessions}, bob {bob_sessions}"
    expected_committed = point in ("responder-before-set", "initiator-after-commit")
    assert len(alice_sessions) == (1 if expected_committed else 0)
    if result is not None:
        assert alice_sessions == {result["session"]}


def _published(node: NodeProcess) -> tuple[int, int]:
    """(ops waiting to be published, ops published) summed over the node's DNAs."""
    stats = node.api("GET", "/v1/dht").values()
    return sum(d["publishing"] for d in stats), sum(d["published"] for d in stats)


def test_a_decider_gone_for_good_after_committing_leaves_the_set_on_the_dht(
    tmp_path: Path,
) -> None:
    """Alice (the decider) commits and publishes, then vanishes before Bob has the set; Bob, who
    crashed before receiving it, completes from the DHT (Carol holds Alice's published ops)."""
    names = ("alice", "bob", "carol")
    alice, bob, carol = (NodeProcess(tmp_path / n, init(tmp_path / n)) for n in names)
    try:
        alice.start("--no-mdns", *ACCEPT)
        bob.faults = InjectedFaults(crash_at="responder-before-set")
        bob.start("--no-mdns", *ACCEPT, "--bootstrap", alice.addr)
        carol.start("--no-mdns", *ACCEPT, "--bootstrap", alice.addr)
        for node in (alice, bob, carol):
            wait_for(lambda n=node: _members(n) == 3, timeout=30)
        _, before = _published(alice)
        result = _start_session(alice, bob, timeout_s=3)
        assert bob.process is not None and bob.process.wait(timeout=20) == 86
        bob.stop()
        # Alice's countersigned record (3 ops) reaches its authorities before she vanishes.
        wait_for(
            lambda: _published(alice)[0] == 0 and _published(alice)[1] >= before + 3, timeout=30
        )
        alice.stop(signal.SIGKILL)  # gone for good
        bob.faults = None
        bob.start("--no-mdns", *ACCEPT, "--bootstrap", carol.addr)
        wait_for(
            lambda: not _status(bob)["locks"] and _sessions(bob) == {result["session"]},
            timeout=60,
            interval=0.25,
        )
    finally:
        for node in (alice, bob, carol):
            node.stop()
