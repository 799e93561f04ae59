"""``ioe owner keyset key|create|show`` and ``ioe owner approvals|approve|refuse`` (a running
owner node): enterprise M-of-N keysets and the officers' approvals."""

from __future__ import annotations

import argparse
from typing import Any

from ioe.cli.common import command_group, data_dir, data_dir_arg, emit_json
from ioe.node.client import call_api


def _print_keyset(keyset: dict[str, Any]) -> None:
    kind = "enterprise" if keyset["enterprise"] else "single owner"
    print(f"keyset {keyset['id']} ({kind}): {keyset['required']} of {len(keyset['signers'])}")
    for signer in keyset["signers"]:
        mark = " (this node)" if signer == keyset["key"] else ""
        print(f"  {signer}{mark}")
    if keyset["revoker"]:
        print(f"  revoker {keyset['revoker']}")


def cmd_keyset_key(args: argparse.Namespace) -> int:
    keyset = call_api(data_dir(args), "GET", "/v1/owner/keyset")
    if args.json:
        emit_json({"key": keyset["key"], "owner": keyset["owner"]})
    else:
        print(keyset["key"])
    return 0


def cmd_keyset_create(args: argparse.Namespace) -> int:
    body = {"signers": args.signer, "required": args.required, "revoker": args.revoker}
    keyset = call_api(data_dir(args), "POST", "/v1/owner/keyset", body)
    if args.json:
        emit_json(keyset)
    else:
        _print_keyset(keyset)
    return 0


def cmd_keyset_show(args: argparse.Namespace) -> int:
    keyset = call_api(data_dir(args), "GET", "/v1/owner/keyset")
    if args.json:
        emit_json(keyset)
    else:
        _print_keyset(keyset)
    return 0


def cmd_approvals(args: argparse.Namespace) -> int:
    items = call_api(data_dir(args), "GET", "/v1/owner/approvals")
    if args.json:
        emit_json(items)
    else:
        waiting = [i for i in items if i["state"] == "pending"]
        print(f"{len(waiting)} signing request(s) waiting for your approval")
        for item in items:
            doc = item["document"]
            print(f"  {item['id']}  {item['state']:8} {doc['kind']}: {item['what']}")
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    result = call_api(
        data_dir(args), "POST", f"/v1/owner/approvals/{args.id}", {"approve": approve}
    )
    if args.json:
        emit_json({"id": result["id"], "state": result["state"]})
    else:
        print(f"{result['state']} {result['id']}: {result['what']}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_refuse(args: argparse.Namespace) -> int:
    return _decide(args, False)


def add_keyset_commands(owner_commands: Any) -> None:
    """Register ``keyset``, ``approvals``, ``approve`` and ``refuse`` under ``ioe owner``."""
    commands = command_group(
        owner_commands,
        "keyset",
        summary="the keyset your documents are signed under (M of N for enterprises)",
        description="An enterprise portfolio is governed by M of its N officers' authorization "
        "keys: each officer runs its own owner node; the portfolio node creates the keyset, and "
        "from then on its certificates and revocations need M officers' approvals.",
    )
    key = commands.add_parser(
        "key",
        help="this owner's authorization key (what an officer gives the portfolio)",
        description="Print this owner's authorization key, to be named with --signer.",
    )
    create = commands.add_parser(
        "create",
        help="make this node the portfolio node of an M-of-N keyset",
        description="Create the enterprise keyset: --required M of the --signer keys (officers' "
        "authorization keys, from `ioe owner keyset key`). No revoker unless --revoker is given "
        "(a revoker alone could revoke keys and change the keyset).",
    )
    create.add_argument(
        "--signer", action="append", required=True, metavar="KEY", help="an officer's key"
    )
    create.add_argument("--required", type=int, required=True, metavar="M", help="signatures")
    create.add_argument("--revoker", default=None, metavar="KEY", help="an emergency key")
    show = commands.add_parser(
        "show", help="the keyset in force", description="The keyset this node signs under."
    )
    for parser, handler in ((key, cmd_keyset_key), (create, cmd_keyset_create)):
        parser.set_defaults(handler=handler)
    show.set_defaults(handler=cmd_keyset_show)
    for parser in (key, create, show):
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")

    approvals = owner_commands.add_parser(
        "approvals",
        help="documents a portfolio node asks you to sign",
        description="Signing requests from the portfolio nodes of keysets you are an officer "
        "of, with what the document says (read from the document itself).",
    )
    approvals.set_defaults(handler=cmd_approvals)
    approve = owner_commands.add_parser(
        "approve",
        help="sign a requested document with your authorization key",
        description="Sign the document of a pending request; the portfolio node fetches the "
        "signature.",
    )
    approve.set_defaults(handler=cmd_approve)
    refuse = owner_commands.add_parser(
        "refuse",
        help="refuse to sign a requested document",
        description="Refuse a pending request (the portfolio node is told, with proof).",
    )
    refuse.set_defaults(handler=cmd_refuse)
    for parser in (approve, refuse):
        parser.add_argument("id", help="the request's id (from `ioe owner approvals`)")
    for parser in (approvals, approve, refuse):
        data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
