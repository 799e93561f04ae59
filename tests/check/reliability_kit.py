"""Runs ``ioe check reliability`` as a user would and checks the contract of its output."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

CONTRACT = ("tried", "survived", "lost")


def run_reliability(*args: str, timeout: float = 240) -> tuple[int, list[str], dict[str, Any]]:
    """``ioe check reliability ARGS --json --quiet``: exit code, table lines, the JSON object."""
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "check", "reliability", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    return done.returncode, lines[:-1], json.loads(lines[-1])


def category(out: dict[str, Any], name: str) -> dict[str, Any]:
    """The category ``name`` of ``out``, checked against the contract: the three keys, integers,
    survived and lost within tried."""
    assert list(out) == ["categories"]
    figures = out["categories"][name]
    for key in CONTRACT:
        assert type(figures[key]) is int, (key, figures)
    assert 0 <= figures["survived"] <= figures["tried"]
    assert figures["lost"] >= 0
    return figures  # type: ignore[no-any-return]
