"""``ioe owner pending|enroll|devices`` (an owner's running node) and ``ioe device plug-in``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ioe.cli.common import (
    add_network_options,
    data_dir,
    data_dir_arg,
    emit_json,
    node_config,
    provisional_identity,
)
from ioe.cli.keyset import add_keyset_commands
from ioe.cli.transfer import add_transfer_commands
from ioe.node.client import call_api
from ioe.vocabulary import DeviceType
from ioe.zones import zone_problem


def cmd_owner_pending(args: argparse.Namespace) -> int:
    pending = call_api(data_dir(args), "GET", "/v1/owner/pending")
    if args.json:
        emit_json([{k: p[k] for k in ("device", "name", "type")} for p in pending])
    else:
        print(f"{len(pending)} device(s) waiting for enrollment")
        for item in pending:
            print(f"  {item['device']}  {item['type']:12} {item['name']}")
    return 0


def cmd_owner_enroll(args: argparse.Namespace) -> int:
    body = {
        "device": args.device,
        "code": args.code,
        "zone": args.zone,
        "private": args.private,
        "trade": not args.no_trade,
        "timeout": args.timeout,
    }
    result = call_api(data_dir(args), "POST", "/v1/owner/enroll", body, timeout=args.timeout + 60)
    if args.json:
        emit_json({"agent": result["agent"], "index": result["index"]})
    else:
        print(f"enrolled {result['name']} as device {result['index']}: agent {result['agent']}")
    return 0


def cmd_owner_devices(args: argparse.Namespace) -> int:
    if args.refresh:  # look for this owner's devices on the network (after a recovery)
        call_api(data_dir(args), "POST", "/v1/owner/rescan", {}, timeout=120)
    devices = call_api(data_dir(args), "GET", "/v1/owner/devices")
    if args.json:
        emit_json(devices)
    else:
        for item in devices:
            state = "present" if item.get("present") else "absent"
            print(f"{item['index']:4} {item['agent']}  {item['type']:12} {state:8} {item['name']}")
    return 0


def cmd_device_plug_in(args: argparse.Namespace) -> int:
    from ioe.identity.service.enrollment import PlugIn  # noqa: PLC0415
    from ioe.node.plugin import pairing_code, run_plug_in  # noqa: PLC0415 - imports libp2p

    directory = data_dir(args)
    if args.zone is not None and zone_problem(args.zone):
        print(f"error: --zone: {zone_problem(args.zone)}", file=sys.stderr)
        return 2
    try:
        config = node_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unlock = provisional_identity(directory, args.key_file)
    code = pairing_code(directory)
    plug_in = PlugIn(args.name, args.type, args.zone, code)
    asyncio.run(run_plug_in(directory, unlock, config, plug_in))
    return 0


def add_plug_in_command(device_commands: Any) -> None:
    plug = device_commands.add_parser(
        "plug-in",
        help="run an unenrolled device until its owner enrolls it",
        description="Run a new device in the foreground: a provisional key (DIR/device.key), "
        "the factory-default policy and a pairing code (DIR/pairing-code, made on first start). "
        "It asks the peers it reaches to be enrolled; once its owner enrolls it (`ioe owner "
        "enroll`), it runs as the enrolled device. Writes DIR/node.json when ready.",
    )
    data_dir_arg(plug)
    plug.add_argument("--key-file", type=Path, default=None, help="device key file")
    plug.add_argument(
        "--type", required=True, choices=[t.value for t in DeviceType], help="the device's type"
    )
    plug.add_argument("--name", required=True, help="the device's name")
    plug.add_argument("--zone", default=None, help="the zone it asks for, e.g. au/nsw/newtown")
    add_network_options(plug)
    plug.set_defaults(handler=cmd_device_plug_in)


def add_commands(commands: Any) -> None:
    owner = commands.add_parser(
        "owner", help="enroll and list your devices", description="An owner's devices."
    )
    owner_commands = owner.add_subparsers(dest="owner_command", metavar="COMMAND", required=True)
    pending = owner_commands.add_parser(
        "pending", help="devices asking to be enrolled", description="Devices seen asking."
    )
    data_dir_arg(pending)
    pending.add_argument("--json", action="store_true", help="print JSON")
    pending.set_defaults(handler=cmd_owner_pending)
    enroll = owner_commands.add_parser(
        "enroll",
        help="enroll a pending device by its pairing code",
        description="Prove the device's pairing code to it (never sent in clear), provision its "
        "device seed sealed to its key and sign its enrollment certificate.",
    )
    data_dir_arg(enroll)
    enroll.add_argument("device", help="the device's provisional key (from `ioe owner pending`)")
    enroll.add_argument("--code", required=True, help="the pairing code on the device's label")
    enroll.add_argument("--zone", default=None, help="its zone (default: the one it asked for)")
    enroll.add_argument("--private", action="store_true", help="not listed to non-owners")
    enroll.add_argument(
        "--no-trade",
        action="store_true",
        help="never lets it pay or be paid (it still reports and obeys grid-safety signals)",
    )
    enroll.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the officers' approvals (M-of-N keysets; default 120)",
    )
    enroll.add_argument("--json", action="store_true", help="print JSON")
    enroll.set_defaults(handler=cmd_owner_enroll)
    devices = owner_commands.add_parser(
        "devices",
        help="the devices you enrolled",
        description="Devices enrolled by this owner, and whether each is present (its node "
        "answers this one) with when it was last heard from.",
    )
    data_dir_arg(devices)
    devices.add_argument(
        "--refresh",
        action="store_true",
        help="first look on the network for devices enrolled by this owner (agent 0 of device "
        "seeds 1, 2, … until 5 in a row are unknown), as a recovery does",
    )
    devices.add_argument("--json", action="store_true", help="print JSON")
    devices.set_defaults(handler=cmd_owner_devices)
    add_keyset_commands(owner_commands)
    add_transfer_commands(owner_commands)
