"""``ioe plug simulate``: replay a price file through the Demand Management rule.

Scripts rely on it (keep it stable)::

    ioe plug simulate --prices FILE.csv --threshold-pct X [--window-minutes W]
        [--floor-price F] [--min-off-minutes M] [--min-on-minutes M] [--max-off-minutes M]
        [--load-w L] [--verification device|meter] [--zone ZONE] [--interval-s S] --json

``--prices`` is a ``time,price`` file (:mod:`ioe.market_data.csv_feed`), or ``nsw1`` / ``sa1``
for the real NEM days bundled with the package (a file of that name wins). The decisions come
from the same :func:`ioe.apps.demand.rule.step` the live plug runs, and the totals from
:func:`ioe.apps.demand.report.summarize`. With ``--json`` the last line is one JSON object::

    {"intervals": N, "off": ["<interval end as written in the file>", ...],
     "kwh_avoided": ..., "cost_avoided": ..., "credits": ..., ...}

The ``plug`` command group is built by :func:`add_plug_commands`, which returns its
sub-command table so other modules can add their own ``plug`` commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ioe.apps.demand.report import DEFAULT_ZONE, summarize
from ioe.apps.demand.rule import PeakSettings, decide_all
from ioe.cli.common import emit_json
from ioe.market_data import BUNDLED_REGIONS, FeedError, bundled_price_rows
from ioe.market_data.csv_feed import PriceRow, interval_of, load_price_csv
from ioe.vocabulary import Verification

__all__ = ["DEFAULT_LOAD_W", "add_plug_commands", "cmd_plug_simulate", "load_prices"]

DEFAULT_LOAD_W = 1000.0
"""A 1 kW appliance (a heater, a pool pump) unless ``--load-w`` says otherwise."""
VERIFICATIONS = {"device": Verification.DEVICE_SIGNED, "meter": Verification.METER_ATTESTED}


def load_prices(spec: str) -> list[PriceRow]:
    """The rows named by ``--prices``: a file, or a bundled region when no such file exists."""
    path = Path(spec)
    if not path.exists() and spec.lower() in BUNDLED_REGIONS:
        return list(bundled_price_rows(spec.lower()))
    return load_price_csv(path)


def _settings(args: argparse.Namespace) -> PeakSettings:
    defaults = PeakSettings()
    changes = {
        "threshold_pct": args.threshold_pct,
        "window_minutes": args.window_minutes,
        "floor_price": args.floor_price,
        "min_off_minutes": args.min_off_minutes,
        "min_on_minutes": args.min_on_minutes,
        "max_off_minutes": args.max_off_minutes,
    }
    return defaults.with_changes(**{k: v for k, v in changes.items() if v is not None})


def cmd_plug_simulate(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        rows = load_prices(args.prices)
        interval_s = args.interval_s if args.interval_s is not None else interval_of(rows)
        decisions = decide_all(settings, rows, interval_s)
        totals = summarize(
            decisions,
            load_w=args.load_w,
            interval_s=interval_s,
            verification=VERIFICATIONS[args.verification],
            zone=args.zone,
        )
    except (FeedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    off_times = [row.time for row, decision in zip(rows, decisions, strict=True) if not decision.on]
    result: dict[str, Any] = {
        "intervals": totals.intervals,
        "off": off_times,
        "kwh_avoided": totals.kwh_avoided,
        "cost_avoided": totals.cost_avoided,
        "credits": totals.credits,
        "credits_mc": totals.credits_mc,
        "hours_off": totals.hours_off,
        "off_intervals": totals.off_intervals,
        "interval_s": interval_s,
        "load_w": args.load_w,
        "verification": args.verification,
        "zone": args.zone,
        "settings": settings.to_value(),
    }
    if args.json:
        emit_json(result)
        return 0
    first, last = rows[0].time, rows[-1].time
    print(f"{totals.intervals} intervals of {interval_s} s, {first} to {last}")
    print(
        f"off in {totals.off_intervals} ({totals.hours_off:.2f} h) at a "
        f"{settings.threshold_pct:g} % threshold over the {settings.window_minutes}-minute "
        f"average (floor {settings.floor_price:g})"
    )
    print(
        f"avoided {totals.kwh_avoided:.3f} kWh of a {args.load_w:g} W load, worth "
        f"{totals.cost_avoided:.4f} at the market price; credits earned {totals.credits:.3f}"
    )
    return 0


def _minutes(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number of minutes, not {text!r}") from None


def add_plug_commands(commands: Any) -> Any:
    """Add ``ioe plug`` to the top-level ``commands``; returns the ``plug`` sub-commands."""
    plug = commands.add_parser(
        "plug",
        help="the smart plug's Demand Management app",
        description="The Demand Management app: sit out price peaks, earn credits.",
    )
    plug_commands = plug.add_subparsers(dest="plug_command", metavar="COMMAND", required=True)
    simulate = plug_commands.add_parser(
        "simulate",
        help="replay a price file through the peak rule",
        description="Replay a time,price file (interval end, price per MWh) through the rule "
        "the live plug runs; print the off intervals, energy and cost avoided and the credits "
        "earned. The plug is off while price > (1 + X/100) × max(trailing average, floor).",
    )
    simulate.add_argument(
        "--prices",
        required=True,
        metavar="FILE",
        help="a time,price CSV file, or nsw1 / sa1 for the bundled NEM days (18–20 Jan 2023)",
    )
    defaults = PeakSettings()
    simulate.add_argument(
        "--threshold-pct",
        type=float,
        default=None,
        metavar="X",
        help=f"off when the price is X %% over the reference (default {defaults.threshold_pct:g})",
    )
    simulate.add_argument(
        "--window-minutes",
        type=_minutes,
        default=None,
        metavar="W",
        help=f"trailing averaging window (default {defaults.window_minutes})",
    )
    simulate.add_argument(
        "--floor-price",
        type=float,
        default=None,
        metavar="F",
        help=f"lowest reference price per MWh (default {defaults.floor_price:g})",
    )
    for name, value, text in (
        ("min-off-minutes", defaults.min_off_minutes, "stay off at least this long; 0: no limit"),
        ("min-on-minutes", defaults.min_on_minutes, "stay on at least this long; 0: no limit"),
        ("max-off-minutes", defaults.max_off_minutes, "never off longer than this; 0: no limit"),
    ):
        simulate.add_argument(
            f"--{name}", type=_minutes, default=None, metavar="M", help=f"{text} (default {value})"
        )
    simulate.add_argument(
        "--load-w",
        type=float,
        default=DEFAULT_LOAD_W,
        metavar="L",
        help=f"the appliance's power when on, in W (default {DEFAULT_LOAD_W:g})",
    )
    simulate.add_argument(
        "--verification",
        choices=tuple(VERIFICATIONS),
        default="device",
        help="device: the plug's own signed readings; meter: a site meter attests (default device)",
    )
    simulate.add_argument(
        "--zone", default=DEFAULT_ZONE, help=f"the plug's zone (default {DEFAULT_ZONE})"
    )
    simulate.add_argument(
        "--interval-s",
        type=int,
        default=None,
        metavar="S",
        help="interval length in seconds (default: the smallest step between the file's times)",
    )
    simulate.add_argument("--json", action="store_true", help="last line: the result as JSON")
    simulate.set_defaults(handler=cmd_plug_simulate)
    return plug_commands
