"""``ioe key revoke|revocations``: revoke an enrolled device's key (an owner's running node) and
list the revocations of a key known to a node."""

from __future__ import annotations

import argparse
from typing import Any

from ioe.cli.common import data_dir, data_dir_arg, emit_json
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
    key = commands.add_parser(
        "key", help="revoke device keys", description="Revocation of agent keys."
    )
    key_commands = key.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
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
