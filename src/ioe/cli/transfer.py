"""``ioe owner transfer offer|pending|accept`` and ``ioe key history`` (a running node's API).

The node does the work (:mod:`ioe.identity.service.transfer`); these commands only parse and
print."""

from __future__ import annotations

import argparse
from typing import Any

from ioe.cli.common import command_group, data_dir, data_dir_arg, emit_json
from ioe.node.client import call_api


def cmd_transfer_offer(args: argparse.Namespace) -> int:
    body = {"device": args.device, "to": args.to}
    result = call_api(data_dir(args), "POST", "/v1/owner/transfer/offer", body, timeout=60)
    if args.json:
        emit_json(result)
    else:
        print(f"offered {result['device']} to {result['to']}; it is theirs once they accept")
    return 0


def cmd_transfer_pending(args: argparse.Namespace) -> int:
    offers = call_api(data_dir(args), "GET", "/v1/owner/transfers")
    if args.json:
        emit_json(offers)
    else:
        print(f"{len(offers)} device(s) offered to you")
        for item in offers:
            print(f"  {item['device']}  {item.get('type', '?'):12} {item.get('name', '?')}")
            print(f"      from {item['from']}")
    return 0


def cmd_transfer_accept(args: argparse.Namespace) -> int:
    body = {"device": args.device, "zone": args.zone, "private": args.private}
    result = call_api(data_dir(args), "POST", "/v1/owner/transfer/accept", body, timeout=120)
    if args.json:
        emit_json(result)
    else:
        print(
            f"{result['name']} is now your device {result['index']}: agent {result['agent']} "
            f"(was {result['previous']})"
        )
    return 0


def cmd_key_history(args: argparse.Namespace) -> int:
    result = call_api(data_dir(args), "GET", f"/v1/keys/{args.agent}/history", timeout=60)
    if args.json:
        emit_json(result)
    else:
        print(" → ".join(result["history"]))
    return 0


def add_transfer_commands(owner_commands: Any) -> None:
    """``ioe owner transfer ...`` under the ``owner`` command group."""
    commands = command_group(
        owner_commands,
        "transfer",
        summary="give a device to another owner, or take one offered to you",
        description="Ownership transfer: the old owner offers, the new owner accepts; both "
        "sign the transfer, the device is re-keyed from the new owner's seed and its old key "
        "is cut off on every node (`ioe key history` links the two).",
    )
    offer = commands.add_parser(
        "offer",
        help="offer one of your devices to another owner",
        description="Record the offer and send it, signed, to the new owner agent's node.",
    )
    data_dir_arg(offer)
    offer.add_argument("device", help="the device's agent key (see `ioe owner devices`)")
    offer.add_argument("--to", required=True, help="the new owner's agent key")
    offer.add_argument("--json", action="store_true", help="print JSON")
    offer.set_defaults(handler=cmd_transfer_offer)
    pending = commands.add_parser(
        "pending",
        help="devices offered to you",
        description="Transfers other owners offered to this owner, not yet accepted.",
    )
    data_dir_arg(pending)
    pending.add_argument("--json", action="store_true", help="print JSON")
    pending.set_defaults(handler=cmd_transfer_pending)
    accept = commands.add_parser(
        "accept",
        help="take a device offered to you",
        description="Certify the device under your keyset with a new key from your next device "
        "seed, have the old owner countersign the transfer, provision the device (sealed to its "
        "current key) and publish the transfer.",
    )
    data_dir_arg(accept)
    accept.add_argument("device", help="the device's current agent key (see `pending`)")
    accept.add_argument("--zone", default=None, help="its zone (default: the one it had)")
    accept.add_argument("--private", action="store_true", help="not listed to non-owners")
    accept.add_argument("--json", action="store_true", help="print JSON")
    accept.set_defaults(handler=cmd_transfer_accept)


def add_history_command(key_commands: Any) -> None:
    """``ioe key history`` under the ``key`` command group."""
    history = key_commands.add_parser(
        "history",
        help="the chain of keys a device had",
        description="The agent key and each key that replaced it in turn (transfers and "
        "rotations), as known to the node or found on the network, with the transfers.",
    )
    data_dir_arg(history)
    history.add_argument("agent", help="the agent key to start from")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=cmd_key_history)
