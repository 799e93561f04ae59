"""The crash category's quick form, as CI runs it: SIGKILLs of a chain writer mid-commit, each
followed by a reopen and a full verification, lose nothing that was reported committed."""

from __future__ import annotations

import pytest
from reliability_kit import category, run_reliability

pytestmark = pytest.mark.process


def test_quick_crash_loses_nothing() -> None:
    code, table, out = run_reliability("--quick", "--only", "crash")
    figures = category(out, "crash")
    assert figures["failures"] == [], figures["failures"]
    assert figures["lost"] == 0
    assert figures["tried"] == figures["survived"] >= 10
    assert figures["commits_reported"] > figures["tried"]
    assert code == 0
    assert [line.split()[0] for line in table] == ["category", "crash"]
