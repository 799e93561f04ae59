"""``ioe sim ...``: simulations with many agents (the work is in :mod:`ioe.sim`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ioe.cli.common import emit_json


def cmd_sim_all_pay_all(args: argparse.Namespace) -> int:
    from ioe.sim.all_pay_all import run_in_process, run_processes  # noqa: PLC0415

    if args.processes:
        result = run_processes(args.data_dir, args.agents, args.amount_mc)
    else:
        result = run_in_process(args.data_dir, args.agents, args.amount_mc)
    out = result.to_json()
    if not args.json:
        print(
            f"{out['agents']} agents ({out['mode']}): {out['completed']} of {out['payments']} "
            f"payments completed, {out['pending']} pending, {out['failed']} failed, "
            f"{out['retried']} retries; balance sum {out['balance_sum']} mc"
        )
        print(f"{out['seconds']:.3f} s, {out['tx_per_s']} payments/s; chains in {out['data_dir']}")
        for error in out["errors"]:
            print(f"  failed {error}")
    emit_json(out)
    return 0 if result.ok else 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a positive integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a positive integer")
    return value


def add_commands(commands: Any) -> None:
    sim = commands.add_parser(
        "sim", help="simulations with many agents", description="Simulations with many agents."
    )
    sub = sim.add_subparsers(dest="sim_command", metavar="SIM", required=True)
    apa = sub.add_parser(
        "all-pay-all",
        help="N agents each pay every other agent once",
        description="N agents each pay every other agent once: N×(N−1) countersigned transfers "
        "of the currency, each on both chains. In this process by default (real chains, no "
        "network); with --processes, one `ioe node run` per agent over libp2p on loopback, "
        "paying through each node's wallet API. Each agent's data directory is DIR/agent-NN "
        "(check it with `ioe chain verify`). The last line is JSON with completed, pending, "
        "balance_sum and seconds; the exit code is non-zero unless every payment completed "
        "and the balances sum to 0.",
    )
    apa.add_argument("--agents", type=_positive, default=4, help="agents (default 4)")
    apa.add_argument(
        "--processes", action="store_true", help="one node process per agent, over libp2p"
    )
    apa.add_argument(
        "--data-dir", type=Path, required=True, help="a new directory for the agents' data"
    )
    apa.add_argument(
        "--amount-mc", type=_positive, default=1000, help="milli-credits per payment (1000)"
    )
    apa.add_argument("--json", action="store_true", help="print only the JSON line")
    apa.set_defaults(handler=cmd_sim_all_pay_all)
