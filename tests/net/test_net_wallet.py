"""Payments between two real ``ioe node run`` processes over libp2p on loopback, driven through
the ``ioe wallet`` command line and the node API: a payment lands on both chains, an over-limit
spend is refused (by the payer's node, and by the counterparty when the payer skips its own
checks) with nothing committed on either chain, and balances sum to zero."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, wait_for

from ioe.node.client import ApiError
from ioe.testing.faults import InjectedFaults
from ioe.zomes.currency.ledger import DEFAULT_LIMIT_MC

pytestmark = pytest.mark.process


def _members(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


def _start_pair(a: NodeProcess, b: NodeProcess) -> None:
    a.start("--no-mdns")
    b.start("--no-mdns", "--bootstrap", a.addr)
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


def _wallet(node: NodeProcess, *args: str) -> Any:
    """``ioe wallet ... --data-dir DIR --json``; the last line's JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "wallet", *args, "--data-dir", str(node.data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _balance(node: NodeProcess) -> int:
    return int(node.api("GET", "/v1/wallet")["balance_mc"])


def _settled(*nodes: NodeProcess) -> bool:
    return all(not n.api("GET", "/v1/countersign")["locks"] for n in nodes)


def _verify(node: NodeProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "chain", "verify", "--data-dir", str(node.data_dir)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_payment_between_two_processes_lands_on_both_chains(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = pair
    _start_pair(alice, bob)
    paid = _wallet(alice, "pay", bob.owner, "1500", "--kind", "donation", "--memo", "thanks")
    assert paid["amount_mc"] == 1500 and paid["balance_mc"] == -1500 and paid["unit"] == "CPC"
    assert paid["balance"] == "-1.500 CPC"
    wait_for(lambda: _balance(bob) == 1500, timeout=10)
    assert _wallet(alice, "balance")["balance_mc"] == -1500
    received = _wallet(bob, "balance")
    assert received["balance_mc"] == 1500 and received["available_mc"] == 1500 + DEFAULT_LIMIT_MC
    [sent] = _wallet(alice, "history")["items"]
    [got] = _wallet(bob, "history")["items"]
    assert (sent["delta_mc"], got["delta_mc"]) == (-1500, 1500)
    assert sent["counterparty"] == bob.owner and got["counterparty"] == alice.owner
    assert sent["kind"] == got["kind"] == "donation" and got["memo"] == "thanks"
    wait_for(lambda: _settled(alice, bob), timeout=10)
    for node in (alice, bob):
        node.stop()
        _verify(node)


def test_an_over_limit_spend_is_refused_and_nothing_is_committed(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = pair
    alice.faults = InjectedFaults(unchecked_pay=True)  # alice's node sends what its rules refuse
    _start_pair(alice, bob)
    over = DEFAULT_LIMIT_MC + 1
    with pytest.raises(ApiError, match="credit limit") as refused:
        alice.api("POST", "/v1/wallet/pay", {"to": bob.owner, "amount_mc": over})
    message = str(refused.value)
    assert "the payment was refused" in message and "credit limit" in message
    # Bob's node (checked) refuses the same spend itself, before any session.
    with pytest.raises(ApiError, match="credit limit"):
        bob.api("POST", "/v1/wallet/pay", {"to": alice.owner, "amount_mc": over})
    wait_for(lambda: _settled(alice, bob), timeout=15)
    for node in (alice, bob):
        assert node.api("GET", "/v1/wallet/history")["items"] == []
        assert node.api("GET", "/v1/countersign")["committed"] == []
        assert _balance(node) == 0
    # Within the limit, the same pair pays as usual.
    alice.api("POST", "/v1/wallet/pay", {"to": bob.owner, "amount_mc": DEFAULT_LIMIT_MC})
    wait_for(lambda: _balance(bob) == DEFAULT_LIMIT_MC, timeout=10)
    assert _balance(alice) == -DEFAULT_LIMIT_MC


def test_balances_sum_to_zero_after_payments_both_ways(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = pair
    _start_pair(alice, bob)
    payments = [(alice, bob, 2500), (bob, alice, 700), (bob, alice, 4000), (alice, bob, 1)]
    expected = 0  # alice's balance
    for payer, payee, amount in payments:
        payer.api("POST", "/v1/wallet/pay", {"to": payee.owner, "amount_mc": amount})
        expected += -amount if payer is alice else amount
        wait_for(lambda e=expected: _balance(alice) == e and _balance(bob) == -e, timeout=10)
    assert expected == -2500 + 700 + 4000 - 1
    wait_for(lambda: _settled(alice, bob), timeout=10)
    histories = [n.api("GET", "/v1/wallet/history")["items"] for n in (alice, bob)]
    assert [len(h) for h in histories] == [4, 4]
    assert sum(i["delta_mc"] for h in histories for i in h) == 0
    assert _balance(alice) + _balance(bob) == 0
