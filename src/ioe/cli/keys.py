"""``ioe key revoke|rotate|revocations``: revoke or rotate an enrolled device's key (an owner's
running node) and list the revocations of a key known to a node."""

from __future__ import annotations

import argparse
from typing import Any

from ioe.cli.common import command_group, data_dir, data_dir_arg, emit_json
from ioe.cli.transfer import add_history_command
from ioe.node.client import call_api


def cmd_key_revoke(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"agent": args.agent, "all": args.all, "reason": args.reason}
    if args.last_valid_seq is not None:
        body["last_valid_seq"] = args.last_valid_seq
    if args.replacement is not None:
        body["replacement"] = args.replacement
    result = call_api(data_dir(args), "POST", "/v1/owner/revoke", body, timeout=60)
    if args.json:
        emit_json(result)
    else:
        print(
            f"revoked {result['revoked']}: its actions after sequence number "
            f"{result['last_valid_seq']} are void (revocation {result['id']})"
        )
    return 0


def cmd_key_rotate(args: argparse.Namespace) -> int:
    body = {"agent": args.agent, "reason": args.reason}
    result = call_api(data_dir(args), "POST", "/v1/owner/rotate", body, timeout=120)
    if args.json:
        emit_json(result)
    else:
        print(
            f"{result['name']} now runs as {result['agent']} (agent {result['agent_index']} of "
            f"device {result['index']}); {result['previous']} is revoked after sequence number "
            f"{result['revocation']['last_valid_seq']}"
        )
    return 0


def cmd_key_revocations(args: argparse.Namespace) -> int:
    found = call_api(data_dir(args), "GET", f"/v1/revocations/{args.agent}", timeout=60)
    if args.json:
        emit_json(found)
    else:
        print(f"{len(found)} revocation(s) of {args.agent}")
        for item in found:
            print(f"  {item['id']}  after seq {item['last_valid_seq']}  {item['reason']}")
    return 0


def add_commands(commands: Any) -> None:
    key_commands = command_group(
        commands, "key", summary="revoke device keys", description="Revocation of agent keys."
    )
    revoke = key_commands.add_parser(
        "revoke",
        help="revoke the key of a device you enrolled",
        description="Sign a revocation of a device's agent key with the owner's authorization "
        "key and publish it: every node then refuses the key's actions after the last valid "
        "sequence number (default: its latest action known here), its agent info and its calls.",
    )
    data_dir_arg(revoke)
    revoke.add_argument("agent", help="the device's agent key (see `ioe owner devices`)")
    revoke.add_argument(
        "--last-valid-seq", type=int, default=None, help="its last action that stands"
    )
    revoke.add_argument("--all", action="store_true", help="void all of its actions (-1)")
    revoke.add_argument("--reason", default="", help="why (at most 256 printable characters)")
    revoke.add_argument("--replacement", default=None, help="the agent key replacing it")
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(handler=cmd_key_revoke)
    rotate = key_commands.add_parser(
        "rotate",
        help="move a device you enrolled to its next agent key",
        description="Derive the device's next agent key, certify it, send the device its new "
        "certificate and the revocation of its current key, and once it confirms (it restarts "
        "as the new agent) publish the revocation: the old key's later actions are void.",
    )
    data_dir_arg(rotate)
    rotate.add_argument("agent", help="the device's current agent key (see `ioe owner devices`)")
    rotate.add_argument("--reason", default="", help="why (default: key rotation)")
    rotate.add_argument("--json", action="store_true", help="print JSON")
    rotate.set_defaults(handler=cmd_key_rotate)
    listing = key_commands.add_parser(
        "revocations",
        help="known revocations of a key",
        description="The revocations of an agent key known to the node or found on the network.",
    )
    data_dir_arg(listing)
    listing.add_argument("agent", help="the agent key")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_key_revocations)
    add_history_command(key_commands)
