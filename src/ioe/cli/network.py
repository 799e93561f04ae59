"""``ioe network show|use`` and the ``--network FILE`` option of ``ioe init`` / ``ioe recover``.

A **network file** says which network an owner's agent joins: the core DNA's properties (the
currency's name and symbol, credit limits, the distributors, oracles and fees it names, the
value factors) and a network seed. Every member of one network uses the same file: different
properties make a different DNA hash, that is, another network. Owners hand their network to
the devices they enroll.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ioe.cli.common import data_dir, data_dir_arg, emit_json
from ioe.conductor import NETWORK_SETTING, Conductor, open_database
from ioe.crypto.keystore import Unlock
from ioe.dnas import core_network, load_network, network_spec
from ioe.encoding import Value
from ioe.errors import IoEError
from ioe.services.jsonvalue import json_ready


class NetworkFileError(IoEError):
    """A network file that cannot be used (unreadable, not JSON, settings the zomes refuse)."""


def network_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network",
        type=Path,
        metavar="FILE",
        help='join the network this JSON file describes ({"properties": {...}, '
        '"network_seed": "..."}; docs/currency.md); default: the default network',
    )


def network_of(args: argparse.Namespace) -> dict[str, Value] | None:
    """The ``--network FILE`` given, read and checked (None: the default network)."""
    path: Path | None = getattr(args, "network", None)
    if path is None:
        return None
    try:
        return load_network(path)
    except ValueError as exc:
        raise NetworkFileError(str(exc)) from None


def describe(spec: Any) -> dict[str, Any]:
    core = core_network(spec if isinstance(spec, dict) else None)
    return {"dna": core.hash.to_text(), **json_ready(network_spec(core))}


def cmd_network_show(args: argparse.Namespace) -> int:
    with open_database(data_dir(args), verify=False) as db:
        shown = describe(db.get_setting(NETWORK_SETTING))
    if args.json:
        emit_json(shown)
    else:
        print(f"network {shown['dna']} (seed {shown['network_seed']!r})")
    return 0


def cmd_network_use(args: argparse.Namespace, unlock: Unlock) -> int:
    spec = network_of(args)
    assert spec is not None
    with Conductor.open(data_dir(args), unlock) as conductor:
        core = conductor.use_network(spec)
    shown = describe(network_spec(core))
    if args.json:
        emit_json(shown)
    else:
        print(f"now a member of network {shown['dna']}; restart the node to join it")
    return 0


def add_commands(commands: Any, unlock_args: Any, unlock: Any) -> None:
    network = commands.add_parser(
        "network",
        help="which network this data directory belongs to",
        description="The network (core DNA properties and seed) of a data directory.",
    )
    sub = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    show = sub.add_parser("show", help="this directory's network", description="Show it.")
    data_dir_arg(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_network_show)
    use = sub.add_parser(
        "use",
        help="move this owner to another network (node stopped)",
        description="Make the network of FILE this owner's network: its agent joins it (a new "
        "chain there) and the old network's chain stays in the database, unused. For a "
        "founder who needed its own agent key before writing the file that names it.",
    )
    use.add_argument("network", type=Path, metavar="FILE", help="the network file (JSON)")
    data_dir_arg(use)
    unlock_args(use)
    use.add_argument("--json", action="store_true", help="print JSON")
    use.set_defaults(handler=lambda a: cmd_network_use(a, unlock(a, creating=False)))
