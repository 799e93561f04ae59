"""``ioe apps list|show|publish|install|uninstall|subscriptions|running|board``: the app store,
asked of the running node (``docs/apps.md``).

``install`` shows the capabilities the app asks for and grants them only when told to: at a
terminal it asks; otherwise ``--yes`` says so (``--json`` implies no prompt, so it needs
``--yes``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from ioe.cli.common import command_group, data_dir, data_dir_arg, emit_json
from ioe.node.client import call_api
from ioe.zomes.appstore.entries import MAX_MANIFEST_FILE_BYTES


def _price(item: dict[str, Any]) -> str:
    pricing = item["pricing"]
    if pricing["model"] == "free":
        return "free"
    return f"{pricing['model']}: {pricing['fee_mc']} mc every {pricing['period_s']} s"


def _capabilities(item: dict[str, Any]) -> str:
    caps = item.get("capabilities") or item.get("granted") or []
    return ", ".join(f"{c['point']}:{c['access']}" for c in caps) or "none"


def cmd_list(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/store")
    if args.json:
        emit_json(found)
        return 0
    print(f"{len(found['apps'])} app(s) in the store")
    for item in found["apps"]:
        print(f"  {item['app']:16} {item['version']:10} {item['name']}  ({_price(item)})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    query = f"?developer={quote(args.developer)}" if args.developer else ""
    found = call_api(data_dir(args), "GET", f"/v1/store/{quote(args.app)}{query}")
    if args.json:
        emit_json(found)
        return 0
    for key in ("app", "name", "version", "developer", "dna", "manifest", "description"):
        print(f"{key:13} {found[key]}")
    print(f"{'pricing':13} {_price(found)}")
    print(f"{'capabilities':13} {_capabilities(found)}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        with open(args.manifest, encoding="utf-8") as handle:
            text = handle.read(MAX_MANIFEST_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: cannot read {args.manifest}: {exc}") from None
    listed = call_api(data_dir(args), "POST", "/v1/store", {"manifest": text})
    if args.json:
        emit_json(listed)
        return 0
    print(f"published {listed['app']} {listed['version']} as manifest {listed['manifest']}")
    return 0


def _confirm(listing: dict[str, Any], args: argparse.Namespace) -> None:
    """Grant the capabilities the app asks for only when the user said so."""
    if args.yes:
        return
    if args.json or not sys.stdin.isatty():
        raise SystemExit(
            f"error: {listing['app']} asks for {_capabilities(listing)}; "
            "add --yes to grant them (no terminal to ask at)"
        )
    print(f"{listing['name']} ({listing['app']} {listing['version']}) asks for:")
    for cap in listing["capabilities"]:
        print(f"  {cap['access']:8} {cap['point']}")
    print(f"pricing: {_price(listing)}")
    if input("grant these and install? [y/N] ").strip().lower() not in ("y", "yes"):
        raise SystemExit("not installed")


def cmd_install(args: argparse.Namespace) -> int:
    directory = data_dir(args)
    query = f"?developer={quote(args.developer)}" if args.developer else ""
    listing = call_api(directory, "GET", f"/v1/store/{quote(args.app)}{query}")
    _confirm(listing, args)
    settings = None
    if args.settings:
        try:
            settings = json.loads(args.settings)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: --settings is not JSON: {exc}") from None
    body = {
        "community": args.community,
        "settings": settings,
        "periods": args.periods,
        "developer": args.developer,
    }
    path = f"/v1/store/{quote(args.app)}/install"
    installed = call_api(directory, "POST", path, body, timeout=args.timeout)
    if args.json:
        emit_json(installed)
        return 0
    print(f"{installed['app']} installed in {installed['community']}: {installed['state']}")
    print(f"granted: {_capabilities(installed)}")
    if "payment_error" in installed:
        print(f"the first period is not paid: {installed['payment_error']}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    body = {"community": args.community, "reason": args.reason}
    done = call_api(data_dir(args), "POST", f"/v1/store/{quote(args.app)}/uninstall", body)
    if args.json:
        emit_json(done)
        return 0
    print(f"{args.app} uninstalled from {args.community} ({done['uninstalled']})")
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/store-subscriptions")
    if args.json:
        emit_json(found)
        return 0
    print(f"{len(found['subscriptions'])} installation(s) made here")
    for item in found["subscriptions"]:
        print(
            f"  {item['app']:16} {item['state']:11} {item['paid_periods']} period(s) paid"
            f"  community {item['community']}"
        )
    return 0


def cmd_running(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/running-apps")
    if args.json:
        emit_json(found)
        return 0
    print(f"{len(found['running'])} app(s) running here")
    for item in found["running"]:
        print(f"  {item['app']:16} {item['members']} member(s)  as {item['app_agent']}")
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    path = f"/v1/running-apps/{quote(args.app)}/board?topic={quote(args.topic)}"
    found = call_api(data_dir(args), "GET", path)
    if args.json:
        emit_json(found)
        return 0
    for post in found["posts"]:
        print(f"  {post['posted_us']} {post['author']}: {json.dumps(post['body'])}")
    return 0


def add_commands(commands: Any) -> None:
    sub = command_group(
        commands,
        "apps",
        summary="the app store: publish apps, install them into communities, pay for them",
        description="Smart Energy Apps from the store (docs/apps.md). Every command asks the "
        "running node of --data-dir.",
    )
    listing = sub.add_parser("list", help="the apps in the store", description="Newest first.")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one app's manifest", description="Its newest listing.")
    show.add_argument("app", help="the app's id, e.g. demand")
    show.add_argument("--developer", default=None, help="whose app, when several publish it")
    show.set_defaults(handler=cmd_show)
    publish = sub.add_parser(
        "publish",
        help="publish a manifest as this node's agent (its developer)",
        description="Read a manifest file (JSON: app, name, version, description, pricing, "
        "capabilities, dna), sign it as this node's agent and list it in the store.",
    )
    publish.add_argument("manifest", help="the manifest file")
    publish.set_defaults(handler=cmd_publish)
    install = sub.add_parser(
        "install",
        help="enrol a community founded here into an app",
        description="Check the app's manifest, grant the capabilities it asks for in an "
        "installation signed by the community's manager keyset, and pay a subscription's "
        "first period. Members' nodes start the app in its own network.",
    )
    install.add_argument("app", help="the app's id")
    install.add_argument("--community", required=True, help="the community's id")
    install.add_argument("--settings", default=None, help="the app's settings (a JSON object)")
    install.add_argument(
        "--periods",
        type=int,
        default=None,
        help="pay this many periods in all, then let it stop (default: until uninstalled)",
    )
    install.add_argument("--developer", default=None, help="whose app, when several publish it")
    install.add_argument("--yes", action="store_true", help="grant what it asks without asking")
    install.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    install.set_defaults(handler=cmd_install)
    uninstall = sub.add_parser(
        "uninstall",
        help="end an installation",
        description="Members stop the app and leave its network; no further period is paid.",
    )
    uninstall.add_argument("app", help="the app's id")
    uninstall.add_argument("--community", required=True, help="the community's id")
    uninstall.add_argument("--reason", default="", help="why (kept on the record)")
    uninstall.set_defaults(handler=cmd_uninstall)
    subscriptions = sub.add_parser(
        "subscriptions",
        help="the installations made here and where their payments stand",
        description="Each installation this node made: running, unpaid or uninstalled, the "
        "periods paid and until when.",
    )
    subscriptions.set_defaults(handler=cmd_subscriptions)
    running = sub.add_parser(
        "running", help="the apps running on this node", description="With their app keys."
    )
    running.set_defaults(handler=cmd_running)
    board = sub.add_parser(
        "board",
        help="what an app's members posted in its network",
        description="Notes under a topic (the demand app posts its alerts under "
        "demand.alerts), readable only inside the community.",
    )
    board.add_argument("app", help="the app's id")
    board.add_argument("--topic", required=True, help="the topic")
    board.set_defaults(handler=cmd_board)
    for parser in (listing, show, publish, install, uninstall, subscriptions, running, board):
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
