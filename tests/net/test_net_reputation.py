"""Reputation between two real ``ioe node run`` processes over libp2p on loopback: after they pay
each other, ``ioe reputation show`` on each shows the other's kept commitment and a raised score;
a claim published with ``ioe reputation publish`` on one node is found and weighed by
``ioe reputation claims`` on the other; ``ioe reputation policy`` changes the view."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, wait_for

pytestmark = pytest.mark.process


def _members(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    dirs = [tmp_path / "alice", tmp_path / "bob"]
    nodes = [NodeProcess(d, init(d)) for d in dirs]
    try:
        nodes[0].start("--no-mdns")
        nodes[1].start("--no-mdns", "--bootstrap", nodes[0].addr)
        for node in nodes:
            wait_for(lambda n=node: _members(n) == 2, timeout=30)
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def _ioe(node: NodeProcess, *args: str) -> Any:
    """``ioe ARGS --data-dir DIR --json``; the last line's JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "ioe", *args, "--data-dir", str(node.data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _agent(node: NodeProcess) -> str:
    return str(node.api("GET", "/v1/info")["agent"])


def test_payments_raise_each_others_score_and_claims_cross_the_network(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = pair
    a, b = _agent(alice), _agent(bob)
    assert _ioe(alice, "reputation", "show") == []
    _ioe(alice, "wallet", "pay", b, "1000")
    _ioe(bob, "wallet", "pay", a, "400")
    for node, other in ((alice, b), (bob, a)):
        seen = wait_for(
            lambda n=node, o=other: (
                (found := _ioe(n, "reputation", "show", o))["basis"]["commitment_kept"] == 2
                and found
            ),
            timeout=30,
        )
        assert seen["agent"] == other and 1000 < seen["score"] <= 1020
        assert seen["basis"]["commitment_broken"] == seen["basis"]["warrant_upheld"] == 0
        [listed] = _ioe(node, "reputation", "show")
        assert listed["agent"] == other

    policy = _ioe(alice, "reputation", "policy", "--weight", "commitment_kept=100")
    assert policy["weights"]["commitment_kept"] == 100 and policy["min_score"] is None
    assert 1100 < _ioe(alice, "reputation", "show", b)["score"] <= 1200

    published = _ioe(alice, "reputation", "publish", b)
    assert published["claimant"] == a and published["subject"] == b
    assert 1100 < published["score"] <= 1200
    claims = wait_for(
        lambda: (found := _ioe(bob, "reputation", "claims", b))["claims"] and found,
        timeout=30,
    )
    [claim] = claims["claims"]
    assert claim["claimant"] == a and claim["score"] == published["score"]
    assert 1000 < claim["claimant_score"] <= 1020  # bob's own view of alice, by the default
    assert claims["weighted_score"] == published["score"]
