"""Command-line options of the Demand Management app on a device node, and ``ioe plug report``.

``ioe device run ... --demand-prices FILE.csv`` runs the app on the node's plug (see
``docs/demand-app.md``); ``--demand-rewards`` makes a node (a site meter) pay demand-reduction
rewards to plugs that claim them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ioe.cli.common import data_dir, data_dir_arg, emit_json
from ioe.hashing import AgentPubKey

if TYPE_CHECKING:
    from ioe.apps.demand.service import DemandSetup

_SETTINGS = (
    (
        "threshold_pct",
        "--threshold-pct",
        float,
        "switch off while the price is more than X %% over its average",
    ),
    ("window_minutes", "--window-minutes", int, "minutes of past intervals the average covers"),
    ("floor_price", "--floor-price", float, "the average used is at least this price (per MWh)"),
    ("min_off_minutes", "--min-off-minutes", int, "once off, stay off at least this long"),
    ("min_on_minutes", "--min-on-minutes", int, "once on, stay on at least this long"),
    ("max_off_minutes", "--max-off-minutes", int, "never keep the load off longer (0: no limit)"),
)


def add_demand_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Demand Management app (a plug that sits out price peaks)")
    group.add_argument(
        "--demand-prices",
        metavar="SOURCE",
        help="run the app: a time,price CSV file, a bundled recording (nsw1, sa1), "
        "or nemweb:REGION for AEMO's live prices",
    )
    group.add_argument(
        "--demand-speed",
        type=float,
        default=1.0,
        help="replay pace: recorded intervals per real interval (300: 5 minutes a second)",
    )
    for _name, flag, kind, text in _SETTINGS:
        group.add_argument(flag, type=kind, default=None, help=text + " (stored; see the docs)")
    group.add_argument("--load-w", type=float, default=None, help="the appliance's load in W")
    group.add_argument("--zone", dest="demand_zone", default="au/nsw", help="the plug's zone")
    group.add_argument(
        "--demand-rewarder",
        metavar="AGENT",
        help="the agent (a site meter) that attests and pays this plug's demand reductions",
    )
    group.add_argument(
        "--demand-rewards",
        action="store_true",
        help="this node pays demand-reduction rewards to plugs that claim them",
    )


def demand_setup(args: argparse.Namespace) -> DemandSetup | None:
    """The app's setup from the options (None: the app is off); ``ValueError`` if wrong."""
    from ioe.apps.demand.feed import check_prices  # noqa: PLC0415 - keeps --help fast
    from ioe.apps.demand.service import DemandSetup  # noqa: PLC0415

    settings: dict[str, Any] = {
        name: getattr(args, name)
        for name, _flag, _kind, _text in _SETTINGS
        if getattr(args, name, None) is not None
    }
    if not args.demand_prices:
        if settings or args.demand_rewarder:
            raise ValueError("the demand app's options need --demand-prices")
        return None
    check_prices(args.demand_prices)
    rewarder = None
    if args.demand_rewarder:
        try:
            rewarder = AgentPubKey.from_text(args.demand_rewarder)
        except ValueError as exc:
            raise ValueError(f"--demand-rewarder: {exc}") from exc
    return DemandSetup(
        prices=args.demand_prices,
        speed=args.demand_speed,
        settings=settings or None,
        load_w=args.load_w,
        rewarder=rewarder,
        zone=args.demand_zone,
    )


def add_report_command(plug_commands: Any) -> None:
    report = plug_commands.add_parser(
        "report",
        help="what a running plug's demand app did",
        description="Hours off, kWh avoided, cost avoided at the market price, the credits "
        "earned by the app's rule, what was paid into the wallet for them (with how many off "
        "periods are paid) and the wallet's balance, over the period the plug's app has run "
        "(from its running node).",
    )
    data_dir_arg(report)
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(handler=cmd_plug_report)


def _money(amount: float, sign: str) -> str:
    """An amount of the market's money: cents, or hundredths of a cent for small sums (one
    plug's avoided cost is often under a dollar)."""
    return f"{sign}{amount:.2f}" if abs(amount) >= 1 else f"{sign}{amount:.4f}"


def report_lines(state: dict[str, Any]) -> list[str]:
    """``ioe plug report`` in words, from the app's state (``GET /v1/apps/demand``): the
    credits the rule earned and what was paid into the wallet are two figures, as they may
    differ (periods not paid yet, or a rewarder that values them otherwise)."""
    report = state["report"]
    sign = state.get("feed", {}).get("money_sign", "$")
    symbol = report.get("symbol", "")
    lines = [
        f"{report['intervals']} intervals, off {report['hours_off']:.2f} h,"
        f" {report['kwh_avoided']:.3f} kWh avoided,"
        f" {_money(report['cost_avoided'], sign)} avoided at the market price",
        f"credits earned by the rule  {report['credits']:.3f} {symbol}",
    ]
    if report.get("rewarded", True):
        lines.append(
            f"paid into the wallet        {report['settled_credits']:.3f} {symbol}"
            f" ({report.get('periods_paid', 0)} of {report.get('periods_to_pay', 0)}"
            " off periods paid)"
        )
    else:
        lines.append(
            "paid into the wallet        nothing: no rewarder pays this plug"
            " (ioe device run ... --demand-rewarder METER_AGENT)"
        )
    balance = report.get("balance")
    problem = state.get("wallet", {}).get("problem")
    lines.append(f"wallet balance              {balance or 'not known'}")
    if balance is None and problem:
        lines[-1] += f" ({problem})"
    return lines


def cmd_plug_report(args: argparse.Namespace) -> int:
    from ioe.node.client import call_api  # noqa: PLC0415

    state = call_api(data_dir(args), "GET", "/v1/apps/demand")
    if args.json:
        emit_json(state["report"])
    else:
        for line in report_lines(state):
            print(line)
    return 0
