"""``ioe sim all-pay-all``: the schedule and the tally (pure), the simulation in one process on
real chains (every agent ends at 0, balances sum to 0, every chain verifies), and with one
``ioe node run`` process per agent over libp2p (slow)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ioe.cli.main import main
from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock
from ioe.sim.all_pay_all import AgentLedger, run_in_process, schedule, tally
from ioe.sim.processes import KEY_FILE, SimError
from ioe.zomes.currency import api as currency


def _last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- pure


@pytest.mark.parametrize("agents", range(2, 9))
def test_the_schedule_pays_every_ordered_pair_once_in_rounds(agents: int) -> None:
    plan = schedule(agents)
    everyone = {(i, j) for i, j in itertools.permutations(range(agents), 2)}
    assert len(plan) == agents * (agents - 1) and set(plan) == everyone
    for r in range(agents - 1):  # each round: everyone pays once and is paid once
        round_ = plan[r * agents : (r + 1) * agents]
        assert sorted(p for p, _ in round_) == list(range(agents))
        assert sorted(q for _, q in round_) == list(range(agents))


def test_the_tally_compares_both_sides_of_every_payment() -> None:
    ledgers = [
        AgentLedger("a", -2, (("b", -1), ("c", -1))),
        AgentLedger("b", 1, (("a", 1),)),  # a→b on both chains
        AgentLedger("c", 0, ()),  # a→c on the payer's chain only
    ]
    found = tally(ledgers)
    assert (found.completed, found.pending, found.duplicates, found.balance_sum) == (1, 1, 0, -1)
    twice = [AgentLedger("a", -2, (("b", -1), ("b", -1))), AgentLedger("b", 2, (("a", 1),) * 2)]
    assert tally(twice).duplicates == 1 and tally(twice).completed == 2


# --------------------------------------------------------------------------------- in process


def _own_chain(data_dir: Path) -> tuple[str, currency.Balance, list[currency.HistoryItem]]:
    """The agent's balance and history, read from its own data directory."""
    with Conductor.open(data_dir, Unlock(key_file=data_dir / KEY_FILE)) as conductor:
        cell = conductor.owner_cell
        balance = conductor.call(cell, "currency", "balance")
        history = conductor.call(cell, "currency", "history")
        assert isinstance(balance, currency.Balance) and isinstance(history, list)
        return cell.agent.to_text(), balance, history


def _verify(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["chain", "verify", "--data-dir", str(data_dir), "--json"])
    verdict: dict[str, Any] = _last_json(capsys.readouterr().out)
    assert code == 0, verdict
    return verdict


def test_four_agents_in_one_process_all_end_at_zero_and_every_chain_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sim"
    code = main(["sim", "all-pay-all", "--agents", "4", "--data-dir", str(root), "--json"])
    out = _last_json(capsys.readouterr().out)
    assert code == 0, out
    assert (out["completed"], out["pending"], out["balance_sum"]) == (12, 0, 0)
    assert out["failed"] == 0 and out["agents"] == 4 and out["mode"] == "in-process"
    assert isinstance(out["seconds"], float) and out["seconds"] > 0
    dirs = sorted(root.iterdir())
    assert [d.name for d in dirs] == ["agent-00", "agent-01", "agent-02", "agent-03"]
    agents = []
    for data_dir in dirs:  # each read back from its own chain
        agent, balance, history = _own_chain(data_dir)
        agents.append(agent)
        assert balance.balance_mc == 0
        assert Counter(item.delta_mc for item in history) == {-1000: 3, 1000: 3}
        assert {item.counterparty.to_text() for item in history if item.delta_mc < 0} == {
            item.counterparty.to_text() for item in history if item.delta_mc > 0
        }
        verdict = _verify(data_dir, capsys)
        assert verdict["ok"] is True and verdict["records"] >= 6
    assert len(set(agents)) == 4


@pytest.mark.parametrize(("agents", "amount_mc"), [(2, 1), (3, 7_777), (5, 25_000)])
def test_any_size_and_amount_balances_sum_to_zero_on_real_chains(
    tmp_path: Path, agents: int, amount_mc: int
) -> None:
    result = run_in_process(tmp_path / "sim", agents, amount_mc)
    assert result.ok, result.errors
    assert result.tally.completed == agents * (agents - 1) and result.tally.balance_sum == 0
    assert result.balances == (0,) * agents
    for data_dir in sorted((tmp_path / "sim").iterdir()):
        _, balance, history = _own_chain(data_dir)
        assert balance.balance_mc == 0 and len(history) == 2 * (agents - 1)
        assert sum(item.delta_mc for item in history) == 0


def test_a_used_directory_and_an_amount_beyond_the_credit_limit_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "used" / "agent-00").mkdir(parents=True)
    (tmp_path / "used" / "agent-00" / "something").write_text("x")
    with pytest.raises(SimError, match="not empty"):
        run_in_process(tmp_path / "used", 3)
    # 3 payments of 40 credits need 120 of credit; the default limit is 100.
    args = ["sim", "all-pay-all", "--agents", "4", "--amount-mc", "40000"]
    assert main([*args, "--data-dir", str(tmp_path / "big"), "--json"]) == 1
    assert "use a smaller --amount-mc" in capsys.readouterr().err
    with pytest.raises(SimError, match="between 2 and"):
        run_in_process(tmp_path / "one", 1)


# -------------------------------------------------------------------------- node processes


def _ioe(*args: str) -> subprocess.CompletedProcess[str]:
    """``ioe ARGS --json`` as a separate process (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.process
def test_three_node_processes_pay_each_other_over_libp2p_and_every_chain_verifies(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sim"
    done = _ioe("sim", "all-pay-all", "--agents", "3", "--processes", "--data-dir", str(root))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = _last_json(done.stdout)
    assert (out["completed"], out["pending"], out["balance_sum"]) == (6, 0, 0)
    assert out["failed"] == 0 and out["duplicates"] == 0 and out["mode"] == "processes"
    assert out["balances"] == [0, 0, 0]
    for i in range(3):
        data_dir = root / f"agent-{i:02d}"
        assert not (data_dir / "node.json").exists()  # each node shut down cleanly
        verify = _ioe("chain", "verify", "--data-dir", str(data_dir))
        assert verify.returncode == 0, verify.stderr
        assert _last_json(verify.stdout)["ok"] is True
        _, balance, history = _own_chain(data_dir)
        assert balance.balance_mc == 0
        assert Counter(item.delta_mc for item in history) == {-1000: 2, 1000: 2}
