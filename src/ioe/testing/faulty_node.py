"""``python -m ioe.testing.faulty_node [--crash-at POINT] [--unchecked-pay] NODE-RUN-OPTIONS``:
the node ``ioe node run`` builds, with test faults (:class:`~ioe.testing.faults.InjectedFaults`)
handed to it. Multi-process tests start it instead of ``ioe node run``: the production command
line knows nothing of faults, and reads no switch for them."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from ioe.cli.main import build_parser, cmd_node_run, run_handler
from ioe.faults import SESSION_POINTS
from ioe.testing.faults import InjectedFaults


def command(faults: InjectedFaults) -> list[str]:
    """The start of a command line that runs this node (``ioe node run``'s options follow)."""
    args = [sys.executable, "-m", "ioe.testing.faulty_node"]
    if faults.crash_at is not None:
        args += ["--crash-at", faults.crash_at]
    if faults.unchecked_pay:
        args.append("--unchecked-pay")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ioe.testing.faulty_node",
        description="Run `ioe node run` with test faults. Other options go to `ioe node run`.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--crash-at",
        choices=SESSION_POINTS,
        help="exit at this step of a countersigning session",
    )
    parser.add_argument(
        "--unchecked-pay",
        action="store_true",
        help="send payments as built, skipping this payer's own checks",
    )
    ours, rest = parser.parse_known_args(argv)
    faults = InjectedFaults(crash_at=ours.crash_at, unchecked_pay=ours.unchecked_pay)
    args = build_parser().parse_args(["node", "run", *rest])
    return run_handler(functools.partial(cmd_node_run, faults=faults), args)


if __name__ == "__main__":
    sys.exit(main())
