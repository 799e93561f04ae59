"""Attacks on the currency between separate ``ioe node run`` processes on loopback.

- A **double spend through a chain fork**: a cheat pays one honest agent, then restores its
  data directory from before that payment (the same keys, the same chain up to there) and pays
  another honest agent with the same credit. Each counterparty alone cannot tell; the cheat's
  agent-activity authorities see two actions at one sequence number, warrant the fork, and every
  honest node blocks the cheat (``ioe node blocked --json``), after which its payments are
  refused both ways.
- An **over-limit spend**: refused by the counterparty's node when the payer's node skips its
  own checks (``InjectedFaults(unchecked_pay=True)``); and when the cheat gets an accomplice to
  co-sign and publishes its record anyway (``currency_cheat_tool.py``), the authorities judge it
  invalid, warrant it, and every honest node blocks the cheat.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, blocked, env, init, members, wait_for

from ioe.conductor import open_database
from ioe.dnas import core_dna
from ioe.engine.dht import DhtOp
from ioe.engine.ops import OpType
from ioe.hashing import ActionHash, AgentPubKey
from ioe.node.client import ApiError
from ioe.store.dht import SqliteDhtStore
from ioe.testing.faults import InjectedFaults
from ioe.zomes.currency.ledger import DEFAULT_LIMIT_MC

pytestmark = pytest.mark.process

HONEST = 3
TOOL = Path(__file__).with_name("currency_cheat_tool.py")


@pytest.fixture
def honest(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Three honest running nodes, members of each other's network."""
    dirs = [tmp_path / f"honest{i}" for i in range(HONEST)]
    with ThreadPoolExecutor(HONEST) as pool:
        owners = list(pool.map(init, dirs))
    nodes = [NodeProcess(d, o) for d, o in zip(dirs, owners, strict=True)]
    try:
        nodes[0].start("--no-mdns")
        with ThreadPoolExecutor(HONEST) as pool:
            list(pool.map(lambda n: n.start("--no-mdns", "--bootstrap", nodes[0].addr), nodes[1:]))
        for node in nodes:
            wait_for(lambda n=node: len(members(n)) == HONEST, timeout=30)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _blocked_by_all(nodes: list[NodeProcess], agent: str) -> list[dict[str, Any]]:
    found = []
    for node in nodes:
        (item,) = wait_for(
            lambda n=node: [b for b in blocked(n.data_dir) if b["agent"] == agent],
            timeout=45,
            interval=0.5,
        )
        found.append(item)
    for node in nodes:  # nobody honest was blocked
        assert {b["agent"] for b in blocked(node.data_dir)} == {agent}
    return found


def _balance(node: NodeProcess) -> int:
    return int(node.api("GET", "/v1/wallet")["balance_mc"])


def _activity_receipted(node: NodeProcess, action: str) -> bool:
    """Another agent (an authority of the node's agent activity) has sent a receipt for the
    agent-activity op of ``action``: the action reached an authority that will compare it with
    any other action at its sequence number. Read from the node's database (readers do not
    disturb the running node)."""
    dna = core_dna().hash
    with open_database(node.data_dir, verify=False) as db:
        signed = db.chain(dna, AgentPubKey.from_text(node.owner)).get_action(
            ActionHash.from_text(action)
        )
        assert signed is not None
        op = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, signed)
        validators = SqliteDhtStore(db, dna).receipt_validators(op.hash)
    return bool({v.to_text() for v in validators} - {node.owner})


def _reaches_everyone(node: NodeProcess, everyone: int) -> bool:
    """It knows every member and is connected to each one's node (a restarted node remembers
    members before it has their addresses)."""
    found = node.api("GET", "/v1/peers")
    peers = {m["peer_id"] for members in found["members"].values() for m in members}
    peers.discard(node.info["peer_id"])
    return len(members(node)) == everyone and peers <= set(found["connected"])


def _join(node: NodeProcess, through: NodeProcess, everyone: int) -> None:
    node.start("--no-mdns", "--bootstrap", through.addr)
    wait_for(lambda: _reaches_everyone(node, everyone), timeout=30)


def test_a_double_spend_through_a_chain_fork_is_warranted_and_refused_network_wide(
    honest: list[NodeProcess], tmp_path: Path
) -> None:
    first, second, third = honest
    cheat = NodeProcess(tmp_path / "cheat", init(tmp_path / "cheat"))
    backup = NodeProcess(tmp_path / "cheat-backup", cheat.owner)  # the same agent, later
    try:
        _join(cheat, first, HONEST + 1)
        for node in honest:
            wait_for(lambda n=node: cheat.owner in members(n), timeout=30)
        cheat.stop()
        # The cheat keeps a copy of its data directory from before it pays anyone.
        shutil.copytree(cheat.data_dir, backup.data_dir, ignore=shutil.ignore_patterns("node.json"))

        _join(cheat, first, HONEST + 1)
        paid = cheat.api(
            "POST", "/v1/wallet/pay", {"to": second.owner, "amount_mc": DEFAULT_LIMIT_MC}
        )
        assert paid["balance_mc"] == -DEFAULT_LIMIT_MC  # its whole credit
        wait_for(lambda: _balance(second) == DEFAULT_LIMIT_MC, timeout=15)
        # It lets its record reach its authorities (one that never does is not caught: see
        # docs/simulation.md, "Limits").
        wait_for(lambda: _activity_receipted(cheat, paid["hash"]), timeout=60, interval=0.5)
        cheat.stop()

        # Restored from the copy, the same agent spends the same credit again.
        _join(backup, first, HONEST + 1)
        assert _balance(backup) == 0
        again = backup.api(
            "POST", "/v1/wallet/pay", {"to": third.owner, "amount_mc": DEFAULT_LIMIT_MC}
        )
        assert again["balance_mc"] == -DEFAULT_LIMIT_MC
        assert again["hash"] != paid["hash"]  # two records at one place in one chain

        for item in _blocked_by_all(honest, cheat.owner):
            assert item["reason"].startswith("fork: two actions at sequence number"), item
            assert item["warrant"].startswith("uwrnt")
        for node in honest:
            wait_for(lambda n=node: cheat.owner not in members(n), timeout=15)

        # Its transactions are refused: it cannot pay anyone, nor be paid.
        with pytest.raises(ApiError):
            backup.api("POST", "/v1/wallet/pay", {"to": first.owner, "amount_mc": 1})
        with pytest.raises(ApiError):
            first.api("POST", "/v1/wallet/pay", {"to": cheat.owner, "amount_mc": 1})
        assert first.api("GET", "/v1/wallet/history")["items"] == []
        assert _balance(first) == 0
    finally:
        cheat.stop()
        backup.stop()


def _tool(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_over_limit_spend_is_refused_by_the_counterparty_and_warranted_by_authorities(
    honest: list[NodeProcess], tmp_path: Path
) -> None:
    first, second, _ = honest
    accomplice_dir = tmp_path / "accomplice"
    init(accomplice_dir)
    cheat = NodeProcess(tmp_path / "cheat", init(tmp_path / "cheat"))
    cheat.faults = InjectedFaults(unchecked_pay=True)  # its node sends what its rules refuse
    over = DEFAULT_LIMIT_MC + 1
    try:
        _join(cheat, first, HONEST + 1)
        for node in honest:
            wait_for(lambda n=node: cheat.owner in members(n), timeout=30)
        # 1. The counterparty's node refuses to co-sign it: nothing lands on either chain.
        with pytest.raises(ApiError, match="credit limit") as refused:
            cheat.api("POST", "/v1/wallet/pay", {"to": second.owner, "amount_mc": over})
        assert "the payment was refused" in str(refused.value)
        wait_for(lambda: not second.api("GET", "/v1/countersign")["locks"], timeout=15)
        assert second.api("GET", "/v1/wallet/history")["items"] == []
        assert cheat.api("GET", "/v1/wallet/history")["items"] == []
        cheat.stop()

        # 2. An accomplice co-signs; the cheat's own chain refuses the commit, so the cheat
        # publishes the record anyway.
        forged = _tool("overlimit", str(cheat.data_dir), str(accomplice_dir), str(over))
        assert forged["agent"] == cheat.owner
        assert "credit limit" in forged["own_chain_refused"]
        cheat.faults = None
        cheat.start("--no-mdns", "--bootstrap", first.addr)  # it publishes its queue at once

        for item in _blocked_by_all(honest, cheat.owner):
            assert item["reason"].startswith("invalid op: "), item
            assert "credit limit" in item["reason"], item
        for node in honest:
            wait_for(lambda n=node: cheat.owner not in members(n), timeout=15)
        with pytest.raises(ApiError):
            cheat.api("POST", "/v1/wallet/pay", {"to": first.owner, "amount_mc": 1})
        for node in honest:
            assert node.api("GET", "/v1/wallet/history")["items"] == []
            assert _balance(node) == 0
    finally:
        cheat.stop()
