"""``ioe grant`` (capability grants of a running node's agent) and ``ioe call`` (a remote call)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ioe.cli.common import command_group
from ioe.cli.common import data_dir as _data_dir
from ioe.cli.common import data_dir_arg as _data_dir_arg
from ioe.cli.common import emit_json as _emit
from ioe.node.client import call_api


def cmd_grant_create(args: argparse.Namespace) -> int:
    access = args.access or ("assigned" if args.to else "transferable")
    body = {
        "access": access,
        "functions": args.function,
        "assignees": args.to or [],
        "tag": args.tag,
    }
    made = call_api(_data_dir(args), "POST", "/v1/grants", body)
    if args.json:
        _emit(made)
    else:
        print(f"grant  {made['grant']}")
        if made["secret"]:
            print(f"secret {made['secret']}  (give it to the grantee; it is not shown again)")
    return 0


def cmd_grant_list(args: argparse.Namespace) -> int:
    grants = call_api(_data_dir(args), "GET", "/v1/grants")
    if args.json:
        _emit(grants)
    else:
        print(f"{len(grants)} live grant(s) on this node's agent")
        for grant in grants:
            who = ", ".join(grant["assignees"]) or "anyone"
            print(f"{grant['grant']}  {grant['access']:12} {','.join(grant['functions'])}  {who}")
            print(f"    {grant['tag'] or '(no tag)'}")
    return 0


def cmd_grant_revoke(args: argparse.Namespace) -> int:
    done = call_api(_data_dir(args), "DELETE", f"/v1/grants/{args.grant}")
    if args.json:
        _emit(done)
    else:
        print(f"revoked {done['revoked']}")
    return 0


def remote_call(
    data_dir: Path, agent: str, function: tuple[str, str], payload: Any, secret: str | None
) -> Any:
    zome, fn = function
    body = {"agent": agent, "zome": zome, "fn": fn, "payload": payload, "secret": secret}
    return call_api(data_dir, "POST", "/v1/call", body)["result"]


def cmd_call(args: argparse.Namespace) -> int:
    zome, dot, fn = args.function.partition(".")
    if not dot or not zome or not fn:
        print("error: name the function as zome.function", flush=True)
        return 2
    try:
        payload = json.loads(args.payload) if args.payload is not None else None
    except ValueError as exc:
        print(f"error: --payload is not JSON: {exc}")
        return 2
    result = remote_call(_data_dir(args), args.agent, (zome, fn), payload, args.secret)
    _emit(result)
    return 0


def add_commands(commands: Any) -> None:
    grant_commands = command_group(
        commands,
        "grant",
        summary="capability grants: who may call this node's agent",
        description="Capability grants of a running node's agent. Other agents may call its "
        "functions (and, on a device node, control the device: device.read, device.write) "
        "only under a live grant; revoking one stops it at once.",
    )
    create = grant_commands.add_parser(
        "create",
        help="grant agents the right to call functions",
        description="Create a grant. With --to it is assigned to those agents (they also need "
        "the secret); without, it is transferable (anyone with the secret); --access "
        "unrestricted lets anyone call, without a secret.",
    )
    _data_dir_arg(create)
    create.add_argument(
        "--function",
        action="append",
        required=True,
        help="zome.function, zome.* or * (repeatable), e.g. device.write",
    )
    create.add_argument("--to", action="append", help="an agent key allowed to call (repeatable)")
    create.add_argument(
        "--access",
        choices=("unrestricted", "transferable", "assigned"),
        help="who may call (default: assigned with --to, else transferable)",
    )
    create.add_argument("--tag", help="a name for the grant")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=cmd_grant_create)
    listing = grant_commands.add_parser("list", help="live grants", description="Live grants.")
    _data_dir_arg(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_grant_list)
    revoke = grant_commands.add_parser(
        "revoke", help="revoke a grant", description="Revoke a grant; calls under it fail."
    )
    _data_dir_arg(revoke)
    revoke.add_argument("grant", help="the grant's hash (uactn…)")
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(handler=cmd_grant_revoke)

    call = commands.add_parser(
        "call",
        help="call a function of another agent",
        description="Call zome.function of another agent through this data directory's "
        "running node; the other agent must have granted it. Prints the result as JSON.",
    )
    _data_dir_arg(call)
    call.add_argument("agent", help="the agent to call (uagnt…)")
    call.add_argument("function", help="zome.function, e.g. device.read")
    call.add_argument("--payload", help="JSON payload")
    call.add_argument("--secret", help="the capability secret the grantor gave you")
    call.set_defaults(handler=cmd_call)
