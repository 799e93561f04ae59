"""Test faults are handed to a node, never read from its environment (``ioe.faults``,
``ioe.testing.faults``, ``ioe.testing.faulty_node``)."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import ioe
from ioe.engine.cell import Cell
from ioe.faults import NO_FAULTS, SESSION_POINTS, SessionPoint
from ioe.hashing import AgentPubKey
from ioe.node.runtime import Node
from ioe.testing import faulty_node
from ioe.testing.faults import InjectedFaults
from ioe.wallet.service import PaymentError
from ioe.zomes.currency.entries import Transfer
from ioe.zomes.currency.ledger import DEFAULT_LIMIT_MC

SRC = Path(ioe.__file__).resolve().parent


class Recording:
    """Faults that only remember which session points were reached."""

    def __init__(self) -> None:
        self.points: list[SessionPoint] = []

    def reached(self, point: SessionPoint) -> None:
        self.points.append(point)

    def prepare_transfer(
        self, cell: Cell, to: AgentPubKey, payload: Mapping[str, Any], now_us: int
    ) -> Transfer | None:
        return None


def _agent(node: Node) -> AgentPubKey:
    return node.conductor.owner_cell.agent


def test_the_default_faults_do_nothing() -> None:
    for point in SESSION_POINTS:
        NO_FAULTS.reached(point)  # returns: nothing ends the process
        InjectedFaults().reached(point)
    InjectedFaults(crash_at="responder-before-set").reached("responder-before-response")
    assert NO_FAULTS.prepare_transfer(None, None, {}, 0) is None  # type: ignore[arg-type]
    assert InjectedFaults().prepare_transfer(None, None, {}, 0) is None  # type: ignore[arg-type]


def test_a_crash_point_ends_the_process_there() -> None:
    script = (
        "from ioe.testing.faults import InjectedFaults\n"
        "faults = InjectedFaults(crash_at='initiator-after-commit')\n"
        "faults.reached('initiator-before-commit')\n"
        "print('passed the other point', flush=True)\n"
        "faults.reached('initiator-after-commit')\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 86
    assert done.stdout == "passed the other point\n"


def test_the_faulty_node_command_line() -> None:
    plain = faulty_node.command(InjectedFaults())
    assert plain == [sys.executable, "-m", "ioe.testing.faulty_node"]
    both = faulty_node.command(InjectedFaults(crash_at="responder-before-set", unchecked_pay=True))
    assert both == [*plain, "--crash-at", "responder-before-set", "--unchecked-pay"]


def test_the_faulty_node_passes_the_rest_to_node_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nobody"
    code = faulty_node.main(
        ["--unchecked-pay", "--data-dir", str(missing), "--key-file", str(tmp_path / "k")]
    )
    assert code == 1
    assert f"{missing} has no owner account" in capsys.readouterr().err


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_production_code_reads_no_test_switch_and_imports_no_test_tools() -> None:
    production = [p for p in SRC.rglob("*.py") if "testing" not in p.relative_to(SRC).parts]
    assert len(production) > 50
    assert [p for p in production if "IOE_TEST_" in p.read_text(encoding="utf-8")] == []
    node_and_cli = [*(SRC / "node").glob("*.py"), *(SRC / "cli").glob("*.py")]
    offending = {
        str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("ioe.testing"))
        for p in node_and_cli
    }
    assert {k: v for k, v in offending.items() if v} == {}


@pytest.mark.anyio
async def test_a_node_hands_its_faults_to_its_countersigners(make_pair: Any) -> None:
    alice_faults, bob_faults = Recording(), Recording()
    alice, bob = await make_pair(faults={"alice": alice_faults, "bob": bob_faults})
    await alice.wallet.pay(_agent(bob), 1500, timeout_s=5)
    async with asyncio.timeout(10):
        while len(bob_faults.points) < 2:
            await asyncio.sleep(0.02)
    assert alice_faults.points == ["initiator-before-commit", "initiator-after-commit"]
    assert bob_faults.points == ["responder-before-response", "responder-before-set"]


@pytest.mark.anyio
async def test_a_payer_that_skips_its_checks_is_refused_by_the_receiver(make_pair: Any) -> None:
    alice, bob = await make_pair(faults={"alice": InjectedFaults(unchecked_pay=True)})
    heads = alice.conductor.owner_cell.head(), bob.conductor.owner_cell.head()
    with pytest.raises(PaymentError, match="credit limit"):
        await alice.wallet.pay(_agent(bob), DEFAULT_LIMIT_MC + 1, timeout_s=5)
    assert (alice.conductor.owner_cell.head(), bob.conductor.owner_cell.head()) == heads
    assert bob.wallet.history() == []
