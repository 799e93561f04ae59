"""``ioe community create|show|list|invite|members|leave|role|rules|alerts|directory|join|
requests|accept|refuse``: communities, asked of the running node.

``directory`` also lists the public devices the node knows near the zone (``ioe node
directory``), so one command shows what is around.

Between owners: ``invite`` of another owner's device or person answers ``pending`` at once (the
other owner's node is asked for its signatures); ``join`` asks a community's manager, from the
member's owner's node, and answers ``member``, ``pending`` or ``refused``; ``requests`` lists
what waits for this owner (join requests as a manager, membership approvals as an owner),
``accept`` and ``refuse`` decide either; ``role`` gives a member a new role.
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


def _made_line(made: dict[str, Any]) -> str:
    """A membership made, or an invitation waiting for the member's owner, in words."""
    levels = ", ".join(made["access"]) or "no access"
    if made.get("state") == "pending":
        return (
            f"{made['agent']} is invited as a {made['role']} ({levels}); its owner's node is "
            f"asked to sign (invitation {made['invitation']}, see ioe community requests)"
        )
    return f"{made['agent']} is now a {made['role']} ({levels})"


def cmd_invite(args: argparse.Namespace) -> int:
    body = {"member": args.member, "role": args.role, "access": args.access}
    path = f"/v1/communities/{quote(args.community)}/members"
    made = call_api(data_dir(args), "POST", path, body, timeout=args.timeout)
    if args.json:
        emit_json(made)
        return 0
    print(_made_line(made))
    return 0


def cmd_role(args: argparse.Namespace) -> int:
    body = {"role": args.role, "access": args.access}
    path = f"/v1/communities/{quote(args.community)}/members/{quote(args.member)}/role"
    made = call_api(data_dir(args), "PUT", path, body, timeout=args.timeout)
    if args.json:
        emit_json(made)
        return 0
    print(_made_line(made))
    return 0


def _levels(text: str | None) -> list[str] | None:
    """``see,control`` → ``["see", "control"]`` (None when not given)."""
    if text is None:
        return None
    levels = [level.strip() for level in text.split(",") if level.strip()]
    unknown = [level for level in levels if level not in ("see", "control", "trade")]
    if unknown or not levels:
        raise SystemExit(f"error: --allow takes see, control and trade, not {text!r}")
    return levels


def cmd_join(args: argparse.Namespace) -> int:
    body = {
        "device": args.device,
        "role": args.role,
        "allow": _levels(args.allow),
        "timeout": args.timeout,
    }
    path = f"/v1/communities/{quote(args.community)}/join"
    answer = call_api(data_dir(args), "POST", path, body, timeout=args.timeout + 30)
    if args.json:
        emit_json(answer)
        return 0
    who = f"{answer['agent']} ({answer['kind']})"
    if answer["state"] == "member":
        print(f"{who} is a {answer['role']} of {answer['name']} ({', '.join(answer['access'])})")
    elif answer["state"] == "refused":
        print(f"{who} was refused by {answer['name']}: {answer.get('reason', '')}")
    else:
        waiting = {"manager": "the manager has to decide", "signatures": "signatures under way"}
        print(f"{who}: pending ({waiting.get(answer.get('waiting_for', ''), 'no answer yet')})")
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", "/v1/community-requests")
    if args.json:
        emit_json(found)
        return 0
    asked = [r for r in found["join_requests"] if r["state"] == "asked"]
    approvals = [a for a in found["approvals"] if a["state"] == "pending"]
    print(f"{len(asked)} join request(s) to decide")
    for r in asked:
        what = r["device_type"] or r["kind"]
        print(f"  {r['id']}  {r['agent']}  {what:12} {r['zone'] or '-':24} {r['community']}")
    print(f"{len(approvals)} membership(s) to approve")
    for a in approvals:
        doc = a["document"]
        levels = ",".join(doc.get("access", []))
        print(f"  {a['id']}  {doc.get('member')}  {doc.get('role')} ({levels})  {a['what']}")
    waiting = [i for i in found["invitations"] if i["state"] == "pending"]
    waiting_joins = [j for j in found["joins"] if j["state"] == "pending"]
    print(f"{len(waiting)} invitation(s) and {len(waiting_joins)} join(s) waiting for others")
    return 0


def cmd_accept(args: argparse.Namespace) -> int:
    path = f"/v1/community-requests/{quote(args.request)}/accept"
    done = call_api(data_dir(args), "POST", path, {"role": args.role})
    if args.json:
        emit_json(done)
        return 0
    print(f"{args.request} accepted")
    return 0


def cmd_refuse(args: argparse.Namespace) -> int:
    path = f"/v1/community-requests/{quote(args.request)}/refuse"
    done = call_api(data_dir(args), "POST", path, {"reason": args.reason})
    if args.json:
        emit_json(done)
        return 0
    print(f"{args.request} refused")
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
        print(_alert_line(alert))
    return 0


def _alert_line(alert: dict[str, Any]) -> str:
    kind, agent = alert["type"], alert.get("agent")
    if kind == "community_arrival":
        return f"  arrived  {agent}  {alert['device_type']:12} {alert['zone']}"
    if kind == "community_member_presence":
        state = "back" if alert["present"] else "gone"
        return f"  {state:8} {agent}  member of {alert['community']}"
    if kind == "community_join_request":
        return f"  asks     {agent}  to join {alert['community']} (request {alert['id']})"
    if kind == "community_invitation_accepted":
        return f"  joined   {agent}  {alert['role']} of {alert['community']}"
    if kind == "community_invitation_refused":
        return f"  refused  {agent}  {alert['community']}: {alert.get('reason', '')}"
    return f"  {kind}  {agent}"


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
        summary="communities: found, find, join, invite, decide requests, roles",
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
        "and by the member's owner keyset. This owner's own devices (and itself) join at once; "
        "another owner's device or person is invited: its owner's node is asked to sign, and "
        "the membership is committed when it does (state pending until then).",
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
    between = _add_between_owners(sub)
    for parser in (
        create, show, listing, invite, members, leave, rules, alerts, directory, *between,
    ):  # fmt: skip
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def _add_between_owners(sub: Any) -> list[Any]:
    """The commands between owners: a member's role, joins, and deciding requests."""
    role = sub.add_parser(
        "role",
        help="give a member a new role",
        description="A new membership with ROLE. Lowering (no access the member did not have) "
        "ends the old membership at once, then the new one is signed (another owner's node "
        "signs it without asking); raising waits for the signatures, then replaces the old.",
    )
    role.add_argument("community", help="the community's id")
    role.add_argument("member", help="the member's agent key")
    role.add_argument(
        "role",
        choices=["manager", "operator", "member", "observer"],
        help="the member's new role (a device cannot be manager)",
    )
    role.add_argument(
        "--access",
        action="append",
        choices=["see", "control", "trade"],
        help="an access level (repeatable; default: all the role allows)",
    )
    role.add_argument("--timeout", type=float, default=60.0, help="seconds for signatures")
    role.set_defaults(handler=cmd_role)
    join = sub.add_parser(
        "join",
        help="ask to join another owner's community",
        description="Ask the community's manager (its node, over /ioe/community-join/1) that "
        "DEVICE of this owner join (this owner itself, as a person, without --device). Its "
        "rules may invite or refuse at once, or leave it to the manager. This node signs the "
        "membership that comes back without asking, if its access is within --allow.",
    )
    join.add_argument("community", help="the community's id (ioe community directory)")
    join.add_argument("--device", default=None, help="the agent of a device this owner enrolled")
    join.add_argument(
        "--role", default=None, choices=["operator", "member", "observer"], help="a role to ask"
    )
    join.add_argument(
        "--allow",
        default=None,
        metavar="LEVELS",
        help="access levels the member may give, e.g. see,control (default: all the role may)",
    )
    join.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait while signatures are made"
    )
    join.set_defaults(handler=cmd_join)
    requests = sub.add_parser(
        "requests",
        help="join requests and membership approvals waiting for you",
        description="Join requests to communities founded here (decide them with accept or "
        "refuse), memberships of your devices or yourself that other communities ask you to "
        "sign, and the invitations and joins still waiting for others.",
    )
    requests.set_defaults(handler=cmd_requests)
    accept = sub.add_parser(
        "accept",
        help="accept a join request or sign a membership",
        description="Accept join request ID (invite with --role, default the role it asked "
        "for) or approve membership ID (sign it as asked).",
    )
    accept.add_argument("request", help="the id shown by ioe community requests")
    accept.add_argument(
        "--role",
        default=None,
        choices=["operator", "member", "observer"],
        help="a join request: invite with this role instead of the one asked",
    )
    accept.set_defaults(handler=cmd_accept)
    refuse = sub.add_parser(
        "refuse",
        help="refuse a join request or a membership",
        description="Refuse join request ID (the requester is told --reason) or membership ID.",
    )
    refuse.add_argument("request", help="the id shown by ioe community requests")
    refuse.add_argument("--reason", default="", help="why (told to whoever asked to join)")
    refuse.set_defaults(handler=cmd_refuse)
    return [role, join, requests, accept, refuse]
