"""The hostile category's quick form, as CI runs it: about 20,000 hostile inputs over every
parser of untrusted input and the HTTP API, and every oversized input dropped before parsing."""

from __future__ import annotations

import pytest
from reliability_kit import category, run_reliability

from ioe.check import oversize, parsers

pytestmark = pytest.mark.process


def test_quick_hostile_crashes_nothing() -> None:
    code, table, out = run_reliability("--quick", "--only", "hostile")
    figures = category(out, "hostile")
    assert figures["failures"] == [], figures["failures"]
    assert figures["lost"] == 0
    assert figures["inputs"] >= 20_000
    assert figures["tried"] == figures["survived"] == figures["inputs"] + len(figures["oversize"])
    expected = {target.name for target in parsers.targets()} | {"http.api"}
    assert set(figures["parsers"]) == expected
    for name, stats in figures["parsers"].items():
        assert stats["inputs"] > 0 and stats["crashes"] == 0, name
        assert stats["inputs"] == stats["accepted"] + stats["refused"], name
    assert set(figures["oversize"]) == {p.name for p in oversize.PROBES} | {"http.body"}
    assert set(figures["oversize"].values()) == {"dropped"}
    assert code == 0
    assert [line.split()[0] for line in table] == ["category", "hostile"]
