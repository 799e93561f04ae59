"""What the ``ioe`` commands share: the data directory, JSON output, the options of every
command that runs a node, and a device's provisional identity."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioe.conductor import (
    DB_FILE,
    PROVISIONAL_AGENTS_SETTING,
    PROVISIONAL_SETTING,
    Conductor,
    default_data_dir,
    make_private,
)
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.store.sqlite import SqliteDatabase

if TYPE_CHECKING:
    from ioe.node.runtime import NodeConfig


def command_group(commands: Any, name: str, *, summary: str, description: str) -> Any:
    """Add command ``name`` whose own subcommands go under what this returns (the one chosen
    is ``args.<name>_command``)."""
    group = commands.add_parser(name, help=summary, description=description)
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data directory (default: $IOE_HOME or {default_data_dir()})",
    )


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir if args.data_dir is not None else default_data_dir()


def emit_json(value: object) -> None:
    print(json.dumps(value, separators=(", ", ": ")))


def add_network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT for libp2p (port 0 = any free one)"
    )
    parser.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a node to join through (repeatable)",
    )
    parser.add_argument(
        "--mdns",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="find peers on the local network (on the listen interface)",
    )
    parser.add_argument("--api", default="127.0.0.1:0", help="HOST:PORT of the local HTTP API")
    parser.add_argument(
        "--countersign-accept",
        action="append",
        default=[],
        metavar="TYPE",
        help="an entry type this node co-signs when another agent asks (repeatable; default none)",
    )
    parser.add_argument(
        "--liveness-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="report a watched member absent once its node has been silent this long "
        "(within 1.5 times this; default 30)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log at INFO level (also every failed dial of a peer that has stopped answering)",
    )


def node_config(args: argparse.Namespace) -> NodeConfig:
    """The network options shared by ``node run`` and ``device run``. mDNS speaks only on the
    interface the node listens on (all of them only when it listens on all of them)."""
    # libp2p takes most of a second to import: only the commands that run a node pay for it.
    from ioe.dht.service import DhtConfig  # noqa: PLC0415
    from ioe.node.runtime import NodeConfig, listen_multiaddr  # noqa: PLC0415

    api_host, _, api_port = args.api.rpartition(":")
    if not api_port.isdigit() or not api_host:
        raise ValueError(f"--api takes HOST:PORT, not {args.api!r}")
    listen_host = args.listen.rpartition(":")[0].strip("[]")
    if not args.liveness_timeout > 0:
        raise ValueError("--liveness-timeout must be a positive number of seconds")
    configure_logging(verbose=args.verbose)
    return NodeConfig(
        listen=(listen_multiaddr(args.listen),),
        bootstrap=tuple(args.bootstrap),
        mdns=args.mdns,
        mdns_interfaces=None if listen_host in ("0.0.0.0", "::") else (listen_host,),
        api_host=api_host.strip("[]"),
        api_port=int(api_port),
        countersign_accept=tuple(args.countersign_accept),
        dht=DhtConfig(liveness_timeout_s=args.liveness_timeout),
    )


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(*, verbose: bool) -> None:
    """Every line a node logs carries its time: ours, py-libp2p's (which otherwise prints its
    warnings bare) and Python's warnings. A dial of a peer already known not to answer is
    logged at INFO (with ``--verbose``), not as an error each time."""
    from ioe.net.p2p import route_libp2p_logs  # noqa: PLC0415 - imports libp2p

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT)
    logging.captureWarnings(True)
    route_libp2p_logs()


def provisional_identity(data_dir: Path, key_file: Path | None) -> Unlock:
    """How to unlock a device's data directory (``key_file`` or ``DIR/device.key``). A new
    directory gets its own provisional identity first, unlocked by a 0600 key file (no one is
    there to type a passphrase); enrollment replaces it later."""
    key_file = key_file or data_dir / "device.key"
    unlock = Unlock(key_file=key_file)
    if not (data_dir / "keystore.json").exists():
        make_private(data_dir)
        if not key_file.exists():
            create_device_key_file(key_file)
        db = SqliteDatabase.open(data_dir / DB_FILE)  # marked before any key exists
        try:
            db.put_setting(PROVISIONAL_SETTING, True)
        finally:
            db.close()
        conductor, _ = Conductor.init(data_dir, unlock)
        agent = bytes(conductor.owner_cell.agent)
        conductor.db.put_setting(PROVISIONAL_AGENTS_SETTING, [agent])
        conductor.close()
    return unlock
