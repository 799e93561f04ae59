"""``ioe owner pending|enroll|devices`` (an owner's running node) and ``ioe device plug-in``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.identity.certificate import DeviceType
from ioe.node.client import call_api
from ioe.zones import zone_problem


def _main() -> Any:
    from ioe.cli import main  # noqa: PLC0415 - avoid an import cycle

    return main


def _emit(value: object) -> None:
    print(json.dumps(value, separators=(", ", ": ")))


def cmd_owner_pending(args: argparse.Namespace) -> int:
    pending = call_api(_main()._data_dir(args), "GET", "/v1/owner/pending")
    if args.json:
        _emit([{k: p[k] for k in ("device", "name", "type")} for p in pending])
    else:
        print(f"{len(pending)} device(s) waiting for enrollment")
        for item in pending:
            print(f"  {item['device']}  {item['type']:12} {item['name']}")
    return 0


def cmd_owner_enroll(args: argparse.Namespace) -> int:
    body = {"device": args.device, "code": args.code, "zone": args.zone, "private": args.private}
    result = call_api(_main()._data_dir(args), "POST", "/v1/owner/enroll", body, timeout=60)
    if args.json:
        _emit({"agent": result["agent"], "index": result["index"]})
    else:
        print(f"enrolled {result['name']} as device {result['index']}: agent {result['agent']}")
    return 0


def cmd_owner_devices(args: argparse.Namespace) -> int:
    devices = call_api(_main()._data_dir(args), "GET", "/v1/owner/devices")
    if args.json:
        _emit(devices)
    else:
        for item in devices:
            print(f"{item['index']:4} {item['agent']}  {item['type']:12} {item['name']}")
    return 0


def cmd_device_plug_in(args: argparse.Namespace) -> int:
    from ioe.node.enrollment import PlugIn  # noqa: PLC0415
    from ioe.node.plugin import pairing_code, run_plug_in  # noqa: PLC0415 - imports libp2p

    main = _main()
    data_dir: Path = main._data_dir(args)
    if args.zone is not None and zone_problem(args.zone):
        print(f"error: --zone: {zone_problem(args.zone)}", file=sys.stderr)
        return 2
    try:
        config = main._node_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    key_file = args.key_file or data_dir / "device.key"
    unlock = Unlock(key_file=key_file)
    if not (data_dir / "keystore.json").exists():
        # A provisional identity, as `ioe device run` makes; enrollment replaces it.
        data_dir.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            create_device_key_file(key_file)
        conductor, _ = main.Conductor.init(data_dir, unlock)
        conductor.close()
    code = pairing_code(data_dir)
    plug_in = PlugIn(args.name, args.type, args.zone, code)
    asyncio.run(run_plug_in(data_dir, unlock, config, plug_in))
    return 0


def add_plug_in_command(device_commands: Any) -> None:
    main = _main()
    plug = device_commands.add_parser(
        "plug-in",
        help="run an unenrolled device until its owner enrolls it",
        description="Run a new device in the foreground: a provisional key (DIR/device.key), "
        "the factory-default policy and a pairing code (DIR/pairing-code, made on first start). "
        "It asks the peers it reaches to be enrolled; once its owner enrolls it (`ioe owner "
        "enroll`), it runs as the enrolled device. Writes DIR/node.json when ready.",
    )
    main._data_dir_arg(plug)
    plug.add_argument("--key-file", type=Path, default=None, help="device key file")
    plug.add_argument(
        "--type", required=True, choices=[t.value for t in DeviceType], help="the device's type"
    )
    plug.add_argument("--name", required=True, help="the device's name")
    plug.add_argument("--zone", default=None, help="the zone it asks for, e.g. au/nsw/newtown")
    main._add_network_options(plug)
    plug.set_defaults(handler=cmd_device_plug_in)


def add_commands(commands: Any) -> None:
    main = _main()
    owner = commands.add_parser(
        "owner", help="enroll and list your devices", description="An owner's devices."
    )
    owner_commands = owner.add_subparsers(dest="owner_command", metavar="COMMAND", required=True)
    pending = owner_commands.add_parser(
        "pending", help="devices asking to be enrolled", description="Devices seen asking."
    )
    main._data_dir_arg(pending)
    pending.add_argument("--json", action="store_true", help="print JSON")
    pending.set_defaults(handler=cmd_owner_pending)
    enroll = owner_commands.add_parser(
        "enroll",
        help="enroll a pending device by its pairing code",
        description="Prove the device's pairing code to it (never sent in clear), provision its "
        "device seed sealed to its key and sign its enrollment certificate.",
    )
    main._data_dir_arg(enroll)
    enroll.add_argument("device", help="the device's provisional key (from `ioe owner pending`)")
    enroll.add_argument("--code", required=True, help="the pairing code on the device's label")
    enroll.add_argument("--zone", default=None, help="its zone (default: the one it asked for)")
    enroll.add_argument("--private", action="store_true", help="not listed to non-owners")
    enroll.add_argument("--json", action="store_true", help="print JSON")
    enroll.set_defaults(handler=cmd_owner_enroll)
    devices = owner_commands.add_parser(
        "devices", help="the devices you enrolled", description="Devices enrolled by this owner."
    )
    main._data_dir_arg(devices)
    devices.add_argument("--json", action="store_true", help="print JSON")
    devices.set_defaults(handler=cmd_owner_devices)
