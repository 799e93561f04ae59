"""``ioe reputation show|policy|publish|claims``: this node's view of other agents.

``show`` and ``policy`` read and write the data directory's database directly, so they work
whether or not the node runs (a running node reads its policy at each use). ``publish`` and
``claims`` ask the running node (they sign and reach the network).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ioe.cli.common import data_dir, data_dir_arg, emit_json
from ioe.conductor import open_database
from ioe.errors import EncodingError
from ioe.hashing import AgentPubKey
from ioe.identity.reputation import DAY_US
from ioe.identity.service.reputation import changed_policy, load_policy, save_policy, view
from ioe.node.client import call_api


def _now_us() -> int:
    return time.time_ns() // 1000


def _agent(text: str) -> AgentPubKey:
    try:
        return AgentPubKey.from_text(text)
    except (EncodingError, ValueError) as exc:
        raise SystemExit(f"error: not an agent key: {exc}") from None


def cmd_show(args: argparse.Namespace) -> int:
    subject = None if args.agent is None else _agent(args.agent)
    with open_database(data_dir(args), verify=False) as db:
        found = view(db, _now_us(), subject)
    if args.json:
        emit_json(found[0] if subject is not None else found)
        return 0
    if not found:
        print("no agents observed yet")
    for item in found:
        basis = ", ".join(f"{k} {n}" for k, n in item["basis"].items() if n)
        print(f"{item['agent']}  {item['score']:>4}  {basis or 'no events'}")
    return 0


def _weight(text: str) -> tuple[str, int]:
    kind, sep, number = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return kind, int(number)
    except ValueError:
        raise argparse.ArgumentTypeError("--weight takes KIND=N (N an integer)") from None


def cmd_policy(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.weight:
        changes["weights"] = dict(args.weight)
    if args.half_life_days is not None:
        if not 0 < args.half_life_days <= 36_500:
            raise SystemExit("error: --half-life-days is in (0, 36500]")
        changes["half_life_us"] = int(args.half_life_days * DAY_US)
    if args.min_score is not None:
        changes["min_score"] = args.min_score
    with open_database(data_dir(args), verify=False) as db:
        policy = load_policy(db)
        if changes or args.no_min_score:
            try:
                policy = changed_policy(policy, clear_min_score=args.no_min_score, **changes)
            except ValueError as exc:
                raise SystemExit(f"error: {exc}") from None
            save_policy(db, policy)
    shown = policy.to_value()
    if args.json:
        emit_json(shown)
        return 0
    for kind, weight in shown["weights"].items():
        print(f"{kind:<18} {weight:>5}")
    print(f"half-life          {shown['half_life_us'] / DAY_US:g} days")
    print(f"min score          {shown['min_score']}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    _agent(args.agent)
    found = call_api(data_dir(args), "POST", f"/v1/reputation/{args.agent}/publish", {})
    if args.json:
        emit_json(found)
    else:
        print(f"published {found['score']} for {found['subject']}: {found['hash']}")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    _agent(args.agent)
    found = call_api(data_dir(args), "GET", f"/v1/reputation/{args.agent}/claims")
    if args.json:
        emit_json(found)
        return 0
    for item in found["claims"]:
        print(f"{item['claimant']}  {item['score']:>4}  weight {item['weight_pm']}‰")
    print(f"weighted score: {found['weighted_score']}")
    return 0


def add_commands(commands: Any) -> None:
    reputation = commands.add_parser(
        "reputation",
        help="this node's view of other agents",
        description="Scores (per mille, 1000 = neutral) from what this node validated itself: "
        "warrants, kept and broken countersigning commitments, demand-response results; "
        "weighted by the owner's policy (docs/identity.md, 'Reputation on a node').",
    )
    sub = reputation.add_subparsers(dest="reputation_command", metavar="COMMAND", required=True)
    show = sub.add_parser(
        "show", help="scores and their basis", description="Every observed agent, or AGENT."
    )
    show.add_argument("agent", nargs="?", help="one agent key (uagnt…)")
    show.set_defaults(handler=cmd_show)
    policy = sub.add_parser(
        "policy",
        help="show or set the owner's weights, half-life and minimum",
        description="Without options, show the policy; with them, change it (checked: good "
        "events weigh ≥ 0, bad ones ≤ 0, |weight| ≤ 2000).",
    )
    policy.add_argument(
        "--weight",
        type=_weight,
        action="append",
        metavar="KIND=N",
        help="per-mille weight of an event kind (repeatable)",
    )
    policy.add_argument("--half-life-days", type=float, help="days for a weight to halve")
    policy.add_argument(
        "--min-score", type=int, help="refuse to co-sign with agents scored below this"
    )
    policy.add_argument("--no-min-score", action="store_true", help="remove the minimum")
    policy.set_defaults(handler=cmd_policy)
    publish = sub.add_parser(
        "publish",
        help="publish this node's view of AGENT as a signed claim",
        description="Sign this node's current score of AGENT and publish it on the network.",
    )
    publish.add_argument("agent", help="the subject's agent key")
    publish.set_defaults(handler=cmd_publish)
    claims = sub.add_parser(
        "claims",
        help="claims others published about AGENT, weighed by this node's view",
        description="Each claim weighs its claimant's score here per mille of neutral.",
    )
    claims.add_argument("agent", help="the subject's agent key")
    claims.set_defaults(handler=cmd_claims)
    for parser in (show, policy, publish, claims):
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
