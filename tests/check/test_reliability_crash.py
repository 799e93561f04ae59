"""The crash category's quick form, as CI runs it: SIGKILLs of a chain writer mid-commit and
of paying node processes mid-payment, each followed by a restart and a check, lose nothing
that was reported committed, strand no one and leave the balances summing to zero."""

from __future__ import annotations

import pytest
from reliability_kit import category, run_reliability

pytestmark = pytest.mark.process


def test_quick_crash_loses_nothing() -> None:
    code, table, out = run_reliability("--quick", "--only", "crash")
    figures = category(out, "crash")
    assert figures["failures"] == [], figures["failures"]
    assert figures["lost"] == 0
    assert figures["tried"] == figures["survived"] >= 15
    chain, payments = figures["chain"], figures["payments"]
    assert chain["tried"] == chain["survived"] == 15 and chain["lost"] == 0
    assert chain["commits_reported"] > chain["tried"]
    assert payments["tried"] == payments["survived"] == 3 and payments["lost"] == 0
    assert payments["payments_confirmed"] > 0
    assert figures["tried"] == chain["tried"] + payments["tried"]
    assert code == 0
    assert [line.split()[0] for line in table] == ["category", "crash"]
