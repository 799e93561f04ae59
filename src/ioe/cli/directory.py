"""``ioe node directory``: the core network's members as the running node lists them (see
``ioe.identity.service.directory``: private devices appear only on their owner's node)."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

from ioe.cli.common import data_dir, data_dir_arg, emit_json
from ioe.node.client import call_api
from ioe.zones import zone_problem


def cmd_node_directory(args: argparse.Namespace) -> int:
    if args.zone is not None and zone_problem(args.zone):
        print(f"error: --zone: {zone_problem(args.zone)}", file=sys.stderr)
        return 2
    path = "/v1/directory" + (f"?zone={quote(args.zone, safe='/')}" if args.zone else "")
    entries = call_api(data_dir(args), "GET", path)
    if args.json:
        emit_json(entries)
        return 0
    print(f"{len(entries)} member(s)" + (f" in {args.zone}" if args.zone else ""))
    for item in entries:
        state = "present" if item["present"] else "absent"
        where = item["zone"] or "-"
        print(f"  {item['agent']}  {item['type']:12} {state:8} {where:32} {item['name'] or ''}")
    return 0


def add_directory_command(node_commands: Any) -> None:
    sub = node_commands.add_parser(
        "directory",
        help="members of the core network by their enrollment certificates",
        description="List the core network's members as the running node knows them: agent, "
        "name, type, zone and owner from each device's enrollment certificate (owners are "
        "listed as owners when no zone is given). Private devices are listed only on their "
        "owner's node.",
    )
    data_dir_arg(sub)
    sub.add_argument("--zone", default=None, help="only this zone and those inside it")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=cmd_node_directory)
