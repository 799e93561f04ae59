"""``ioe community create|show|list|invite|members|leave|rules|alerts|directory``:
communities, asked of the running node.

``directory`` also lists the public devices the node knows near the zone (``ioe node
directory``), so one command shows what is around.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ioe.cli.common import command_group, data_dir, data_dir_arg, emit_json
from ioe.community.rules import RuleError, parse_rules
from ioe.node.client import call_api


def _zone_query(zone: str | None) -> str:
    return f"?zone={quote(zone, safe='/')}" if zone else ""


def _line(item: dict[str, Any]) -> str:
    return (
        f"  {item['id']}  {item['visibility']:8} {item['zone']:28} "
        f"{item['members']:>4} member(s)  {item['name']}"
    )


def cmd_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "zone": args.zone, "private": args.private, "parent": args.parent}
    created = call_api(data_dir(args), "POST", "/v1/communities", body, timeout=args.timeout)
    if args.json:
        emit_json(created)
        return 0
    print(f"community {created['community']} founded: {created['name']} in {created['zone']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", f"/v1/communities/{quote(args.community)}")
    if args.json:
        emit_json(found)
        return 0
    for key in ("id", "name", "zone", "visibility", "parent", "manager_keyset", "members"):
        print(f"{key:15} {found[key]}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/communities")
    if args.json:
        emit_json(found)
        return 0
    print(f"{len(found['communities'])} communit(ies) founded here")
    for item in found["communities"]:
        print(_line(item))
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    body = {"member": args.member, "role": args.role, "access": args.access}
    path = f"/v1/communities/{quote(args.community)}/members"
    made = call_api(data_dir(args), "POST", path, body, timeout=args.timeout)
    if args.json:
        emit_json(made)
        return 0
    print(f"{made['agent']} is now a {made['role']} ({', '.join(made['access'])})")
    return 0


def cmd_members(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", f"/v1/communities/{quote(args.community)}/members")
    if args.json:
        emit_json(found)
        return 0
    print(f"{len(found['members'])} member(s) besides the manager")
    for m in found["members"]:
        print(f"  {m['agent']}  {m['kind']:7} {m['role']:9} {','.join(m['access'])}")
    return 0


def cmd_leave(args: argparse.Namespace) -> int:
    path = f"/v1/communities/{quote(args.community)}/members/{quote(args.member)}"
    done = call_api(
        data_dir(args), "DELETE", path + (f"?reason={quote(args.reason)}" if args.reason else "")
    )
    if args.json:
        emit_json(done)
        return 0
    print(f"membership ended ({done['revoked']})")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    path = f"/v1/communities/{quote(args.community)}/rules"
    if args.set is None:
        emit_json(call_api(data_dir(args), "GET", path))
        return 0
    try:
        text = Path(args.set).read_text()
        parse_rules(text)  # the node checks again; this names a problem without a node
    except OSError as exc:
        raise SystemExit(f"error: cannot read {args.set}: {exc.strerror}") from None
    except RuleError as exc:
        raise SystemExit(f"error: {args.set}: {exc}") from None
    kept = call_api(data_dir(args), "PUT", path, json.loads(text))
    if args.json:
        emit_json(kept)
        return 0
    print(f"{kept['rules']} rule(s) kept; they apply to this owner's devices as they turn up")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/community-alerts")
    if args.json:
        emit_json(found)
        return 0
    for alert in found["alerts"]:
        if alert["type"] == "community_arrival":
            print(f"  arrived  {alert['agent']}  {alert['device_type']:12} {alert['zone']}")
        else:
            state = "back" if alert["present"] else "gone"
            print(f"  {state:8} {alert['agent']}  member of {alert['community']}")
    return 0


def cmd_directory(args: argparse.Namespace) -> int:
    query = _zone_query(args.zone)
    communities = call_api(data_dir(args), "GET", "/v1/community-directory" + query)
    devices = call_api(data_dir(args), "GET", "/v1/directory" + query)
    public = [d for d in devices if d.get("type") != "owner"]
    if args.json:
        emit_json({"communities": communities["communities"], "devices": public})
        return 0
    where = f" in {args.zone}" if args.zone else ""
    print(f"{len(communities['communities'])} communit(ies){where}")
    for item in communities["communities"]:
        print(_line(item))
    print(f"{len(public)} device(s){where}")
    for item in public:
        print(f"  {item['agent']}  {item['type']:12} {item['zone'] or '-':24} {item['name'] or ''}")
    return 0


def add_commands(commands: Any) -> None:
    sub = command_group(
        commands,
        "community",
        summary="communities: found one, list yours, find public ones by zone",
        description="Communities group devices and people under a manager keyset "
        "(docs/communities.md). Every command asks the running node of --data-dir.",
    )
    create = sub.add_parser(
        "create",
        help="found a community managed by this owner's keyset",
        description="Sign a community charter with this owner's keyset (M of N officers for an "
        "enterprise keyset) and commit it. A public community is listed in the directory of "
        "its zone and every zone above it; a private one is never published.",
    )
    create.add_argument("--name", required=True, help="the community's name (1 to 80 characters)")
    create.add_argument("--zone", required=True, help="its zone, e.g. au/nsw/newtown/king-st")
    create.add_argument("--private", action="store_true", help="never list it in the directory")
    create.add_argument("--parent", default=None, help="the id of a community it nests in")
    create.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for officers' signatures"
    )
    create.set_defaults(handler=cmd_create)
    show = sub.add_parser(
        "show", help="one community founded here", description="A community by its id."
    )
    show.add_argument("community", help="the community's id (uxtrn…)")
    show.set_defaults(handler=cmd_show)
    listing = sub.add_parser(
        "list",
        help="the communities founded here",
        description="Every community this owner founded, public and private.",
    )
    listing.set_defaults(handler=cmd_list)
    invite = sub.add_parser(
        "invite",
        help="make a device or a person a member",
        description="A membership of a community founded here, signed by its manager keyset "
        "and by the member's owner keyset. This owner's own devices (and itself) join at once.",
    )
    invite.add_argument("community", help="the community's id")
    invite.add_argument("member", help="the member's agent key (a device, or an owner agent)")
    invite.add_argument(
        "--role",
        default="member",
        choices=["manager", "operator", "member", "observer"],
        help="the member's role (bounds its access; a device cannot be manager)",
    )
    invite.add_argument(
        "--access",
        action="append",
        choices=["see", "control", "trade"],
        help="an access level (repeatable; default: all the role allows)",
    )
    invite.add_argument("--timeout", type=float, default=60.0, help="seconds for signatures")
    invite.set_defaults(handler=cmd_invite)
    members = sub.add_parser(
        "members", help="a community's members", description="Live memberships, from the network."
    )
    members.add_argument("community", help="the community's id")
    members.set_defaults(handler=cmd_members)
    leave = sub.add_parser(
        "leave",
        help="end a membership",
        description="End MEMBER's membership, as the community's manager or the member's owner.",
    )
    leave.add_argument("community", help="the community's id")
    leave.add_argument("member", help="the member's agent key")
    leave.add_argument("--reason", default="", help="why (kept on the chain)")
    leave.set_defaults(handler=cmd_leave)
    rules = sub.add_parser(
        "rules",
        help="show or set a community's automation rules",
        description="Rules as data (a JSON file; docs/communities.md): when a device of this "
        "owner turns up, invite it with a role, refuse it, or leave it to you. Without --set, "
        "print the rules in force.",
    )
    rules.add_argument("community", help="the community's id")
    rules.add_argument("--set", metavar="FILE", help="a rule file to check and keep")
    rules.set_defaults(handler=cmd_rules)
    alerts = sub.add_parser(
        "alerts",
        help="devices that arrived in your communities' zones, members coming and going",
        description="The newest alerts of the running node (also signals on /v1/signals): "
        "a device turning up in the zone of a community founded here, and members of those "
        "communities leaving or coming back.",
    )
    alerts.set_defaults(handler=cmd_alerts)
    directory = sub.add_parser(
        "directory",
        help="public communities and devices near a zone",
        description="Public communities in --zone and the zones inside it (all without "
        "--zone), with the public devices the node knows there; this owner's private "
        "communities are listed too.",
    )
    directory.add_argument("--zone", default=None, help="a zone prefix, e.g. au/nsw")
    directory.set_defaults(handler=cmd_directory)
    for parser in (create, show, listing, invite, members, leave, rules, alerts, directory):
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
