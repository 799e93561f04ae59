"""``ioe check reliability``: run the reliability suite (the work is in :mod:`ioe.check`).

The table goes to stdout, progress to stderr; with ``--json`` the last line of stdout is the
contract's object ``{"categories": {NAME: {"tried", "survived", "lost", ...}}}``. The exit code
is 0 only when every category that ran tried something, everything survived and nothing was
lost, so CI and scripts can rely on it without reading the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ioe.check.catalog import CATEGORIES
from ioe.cli.common import command_group, emit_json


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_reliability(args: argparse.Namespace) -> int:
    from ioe.check.reliability import run  # noqa: PLC0415 - nodes, libp2p, every parser
    from ioe.check.report import render_table, to_json  # noqa: PLC0415

    results = run(
        args.only or None,
        quick=args.quick,
        seed=args.seed,
        progress=None if args.quiet else _progress,
        workdir=args.workdir,
    )
    for line in render_table(results):
        print(line)
    if args.json:
        emit_json(to_json(results))
    return 0 if all(result.ok for result in results) else 1


def add_commands(commands: Any) -> None:
    """``ioe check ...``."""
    checks = command_group(
        commands,
        "check",
        summary="checks of this build: the reliability suite",
        description="Checks of this build that take longer than a unit test.",
    )
    reliability = checks.add_parser(
        "reliability",
        help="crash, hostile-input and access checks: tried / survived / lost per category",
        description="Run the reliability categories ("
        + "; ".join(f"{name}: {summary}" for name, summary in CATEGORIES.items())
        + ") and print tried / survived / lost per category. --quick is the seconds-long form "
        "CI runs; without it, the full form of docs/reliability.md. Exit code 0 only when "
        "everything tried survived and nothing was lost.",
    )
    reliability.add_argument(
        "--quick", action="store_true", help="the short form (seconds to a minute, as in CI)"
    )
    reliability.add_argument(
        "--only",
        action="append",
        choices=sorted(CATEGORIES),
        metavar="CATEGORY",
        help=f"run only this category (repeatable): {', '.join(CATEGORIES)}",
    )
    reliability.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default 0)"
    )
    reliability.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="put the scratch data under this directory (default: the system's temp dir)",
    )
    reliability.add_argument("--quiet", action="store_true", help="no progress on stderr")
    reliability.add_argument(
        "--json", action="store_true", help="last line: the figures as one JSON object"
    )
    reliability.set_defaults(handler=cmd_reliability)
