"""``ioe`` command-line entry point.

Commands scripts rely on (keep them stable): ``--version``, ``init``, ``recover``,
``chain verify``, ``chain show``, ``bench chain``, ``demo``. With ``--json``, the last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioe import __version__
from ioe.bench.chain import bench_chain
from ioe.cli.apps import add_commands as add_apps_commands
from ioe.cli.blocked import cmd_node_blocked
from ioe.cli.check import add_commands as add_check_commands
from ioe.cli.common import add_network_options as _add_network_options
from ioe.cli.common import data_dir as _data_dir
from ioe.cli.common import data_dir_arg as _data_dir_arg
from ioe.cli.common import emit_json as _emit_json
from ioe.cli.common import node_config as _node_config
from ioe.cli.common import provisional_identity
from ioe.cli.community import add_commands as add_community_commands
from ioe.cli.demand import add_demand_options, add_report_command, demand_setup
from ioe.cli.demo import run_demo
from ioe.cli.directory import add_directory_command
from ioe.cli.emulate import add_emulate_command
from ioe.cli.grants import add_commands as add_grant_commands
from ioe.cli.grants import remote_call
from ioe.cli.keys import add_commands as add_key_commands
from ioe.cli.network import add_commands as add_network_commands
from ioe.cli.network import network_arg, network_of
from ioe.cli.owner import add_commands as add_owner_commands
from ioe.cli.owner import add_plug_in_command
from ioe.cli.plug import add_plug_commands
from ioe.cli.reputation import add_commands as add_reputation_commands
from ioe.cli.sim import add_commands as add_sim_commands
from ioe.cli.wallet import add_bench_command as add_currency_bench
from ioe.cli.wallet import add_commands as add_wallet_commands
from ioe.community.grant_secret import community_secret
from ioe.conductor import Conductor, known_dnas, open_database
from ioe.crypto.keystore import (
    Unlock,
    create_device_key_file,
    passphrase_from_env_or_prompt,
)
from ioe.errors import ChainIntegrityError, IoEError
from ioe.faults import NO_FAULTS, Faults
from ioe.hashing import AgentPubKey, ExternalHash
from ioe.identity.device_account import DeviceAccount
from ioe.identity.pairing import format_code
from ioe.inspect import describe_chain
from ioe.node.client import call_api
from ioe.services.jsonvalue import secret_to_text

if TYPE_CHECKING:
    from ioe.apps.demand.service import DemandSetup
    from ioe.node.runtime import NodeConfig
    from ioe.services.device import DeviceSetup

Handler = Callable[[argparse.Namespace], int]


def _unlock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="unlock with a 0600 device key file instead of a passphrase (unattended devices)",
    )


def _unlock(args: argparse.Namespace, *, creating: bool) -> Unlock:
    if args.key_file is not None:
        if creating and not args.key_file.exists():
            create_device_key_file(args.key_file)
        return Unlock(key_file=args.key_file)
    return Unlock(passphrase=passphrase_from_env_or_prompt(confirm=creating))


# --------------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    unlock = _unlock(args, creating=True)
    conductor, mnemonic = Conductor.init(data_dir, unlock, network=network_of(args))
    with conductor:
        owner = conductor.account.agent_key().agent.to_text()
    if args.json:
        _emit_json({"mnemonic": mnemonic, "owner": owner})
    else:
        print(f"Owner account created in {data_dir}")
        print(f"Owner agent: {owner}")
        print()
        print("Your recovery phrase (24 words). Write it down now; it is not shown again")
        print("and it is the only way to recover this account and every device key:")
        print()
        print("    " + mnemonic)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    if sys.stdin.isatty():
        print("Enter the 24-word recovery phrase:", file=sys.stderr)
    mnemonic = sys.stdin.readline()
    unlock = _unlock(args, creating=True)
    restore = not args.fresh
    network = network_of(args)
    with Conductor.recover(
        data_dir, mnemonic, unlock, restore=restore, network=network
    ) as conductor:
        owner = conductor.account.agent_key().agent.to_text()
    if args.json:
        _emit_json({"owner": owner})  # a stable shape scripts rely on
    else:
        print(f"Owner account {owner} restored in {data_dir}")
        if restore:
            print("Its chain and devices are fetched from the network when the node first runs:")
            print(f"    ioe node run --data-dir {data_dir} --bootstrap MULTIADDR")
    return 0


def cmd_chain_verify(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    with open_database(data_dir, verify=False) as db:
        dnas = known_dnas(db)
        try:
            checked = db.verify_all(dnas)
        except ChainIntegrityError as exc:
            print(f"chain verification FAILED: {exc}", file=sys.stderr)
            if args.json:
                _emit_json({"ok": False, "error": str(exc), "seq": exc.seq, "author": exc.author})
            return 1
        cells = len(db.cells())
    if args.json:
        _emit_json({"ok": True, "chains": cells, "records": checked})
    else:
        print(f"ok: {cells} chain(s), {checked} record(s) verified")
    return 0


def cmd_chain_show(args: argparse.Namespace) -> int:
    from ioe.conductor import PROVISIONAL_AGENTS_SETTING  # noqa: PLC0415

    with open_database(_data_dir(args), verify=False) as db:
        dnas = known_dnas(db)
        specs = db.dna_specs()
        provisional = db.get_setting(PROVISIONAL_AGENTS_SETTING) or []
        for dna_hash, agent in db.cells():
            store = db.chain(dna_hash, agent)
            name = specs.get(dna_hash, {}).get("name", "unknown DNA")
            lines = describe_chain(store, dnas.get(dna_hash), limit=args.limit)
            if bytes(agent) in provisional:
                print(
                    f"chain of {agent.to_text()}: the device's provisional identity, written "
                    f"for {name} before enrollment and never published (it joined no network)"
                )
            else:
                print(f"chain of {agent.to_text()} in {name} ({dna_hash.to_text()})")
            for line in lines:
                print("  " + line)
    return 0


def cmd_bench_chain(args: argparse.Namespace) -> int:
    result = bench_chain(entries=args.entries, batch=args.batch, rounds=args.rounds)
    print(
        f"authored {result['entries']} entries in batches of {result['batch']}: "
        f"{result['author_entries_per_s']:.0f}/s; validated {result['entries_per_s']:.0f}/s; "
        f"raw Ed25519 verify {result['raw_verify_per_s']:.0f}/s; ratio {result['ratio']:.2f}"
    )
    _emit_json(result)
    return 0


def _unlock_existing(args: argparse.Namespace) -> Unlock:
    if args.key_file is not None:
        return Unlock(key_file=args.key_file)
    return Unlock(passphrase=passphrase_from_env_or_prompt(confirm=False))


def cmd_node_run(args: argparse.Namespace, *, faults: Faults = NO_FAULTS) -> int:
    """``ioe node run``; ``faults`` are for tests that build the node themselves."""
    data_dir = _data_dir(args)
    try:
        config = _node_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unlock = _unlock_existing(args)
    with Conductor.open(data_dir, unlock) as conductor:
        _restore_first(conductor, config, args)
        asyncio.run(_serve(conductor, config, faults=faults))
    return 0


def _restore_first(conductor: Conductor, config: NodeConfig, args: argparse.Namespace) -> None:
    """A recovered owner's chains and devices come back from the network before the node
    serves or writes anything (``docs/identity.md``, "Recovering an owner")."""
    from ioe.identity.service.recovery import restore_pending  # noqa: PLC0415
    from ioe.node.restore import restore_over_network  # noqa: PLC0415 - imports libp2p

    if not restore_pending(conductor):
        return
    print("restoring the owner's chain and devices from the network…", file=sys.stderr)
    report = asyncio.run(
        restore_over_network(conductor, config, timeout_s=args.restore_timeout, fresh=args.fresh)
    )
    restored = sum(report.chains.values())
    how = "started fresh" if report.fresh else f"restored {restored} record(s)"
    print(
        f"{how}; {len(report.devices)} device(s) known; next device index "
        f"{report.next_device_index}",
        file=sys.stderr,
    )


async def _serve(
    conductor: Conductor,
    config: NodeConfig,
    device: DeviceSetup | None = None,
    demand: DemandSetup | None = None,
    demand_rewards: bool = False,
    *,
    unlock: Unlock | None = None,
    faults: Faults = NO_FAULTS,
) -> bool:
    """Run a node until stopped; True when a transfer re-keyed the device (run it again)."""
    from ioe.identity.service.transfer import keystore_writer, restart_on_adoption  # noqa: PLC0415
    from ioe.node.runtime import Node  # noqa: PLC0415 - see cmd_node_run

    enrollment = None
    if isinstance(conductor.account, DeviceAccount):  # an enrolled device, not an owner's node
        from ioe.identity.service.enrollment import EnrolledDeviceRole  # noqa: PLC0415
        from ioe.net.mdns import NodeType  # noqa: PLC0415 - see cmd_node_run

        device_type = conductor.account.certificate.device_type
        enrollment = EnrolledDeviceRole(NodeType(str(device_type)))
    node = Node(
        conductor,
        config,
        device=device,
        demand=demand,
        demand_rewards=demand_rewards,
        enrollment=enrollment,
        faults=faults,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, node.stopping.set)
    await node.start()
    print(
        json.dumps(
            {
                "peer_id": node.network.peer_id,
                "addrs": node.network.listen_addrs(),
                "api": node.api_url,
                **(
                    {"page": f"{node.api_url}/app/demand/#token={node.token}"}
                    if demand is not None
                    else {}
                ),
            }
        ),
        flush=True,
    )
    if unlock is not None and isinstance(conductor.account, DeviceAccount):
        node.transfers.persist = keystore_writer(conductor.data_dir, unlock)
    restart = asyncio.create_task(restart_on_adoption(node))
    try:
        await node.stopping.wait()
    finally:
        restart.cancel()
        await node.close()
    return node.transfers.adopted.is_set()


def cmd_node_info(args: argparse.Namespace) -> int:
    info = call_api(_data_dir(args), "GET", "/v1/info")
    if args.json:
        _emit_json(info)
    else:
        print(f"peer id  {info['peer_id']}")
        for addr in info["addrs"]:
            print(f"address  {addr}")
        print(f"api      {info['api']}")
        for agent in info["agents"]:
            print(f"agent    {agent['agent']}  ({agent['name']})")
    return 0


def cmd_node_peers(args: argparse.Namespace) -> int:
    peers = call_api(_data_dir(args), "GET", "/v1/peers")
    if args.json:
        _emit_json(peers)
    else:
        print(f"{len(peers['connected'])} connected peer(s)")
        for peer in peers["connected"]:
            print(f"  {peer}")
        for dna, members in peers["members"].items():
            print(f"{len(members)} member(s) of {dna}")
        failing = {p: d for p, d in peers.get("dials", {}).items() if d["dial_failures"]}
        if failing:
            print(f"{len(failing)} peer(s) with failed dials")
        for peer, dials in failing.items():
            retry = dials["retry_in_s"]
            when = "not until it shows up again" if retry is None else f"next in {retry} s"
            print(
                f"  {peer}  {dials['dial_failures']} of {dials['dials']} dial(s) failed, "
                f"{dials['state']}, {when}"
            )
    return 0


def cmd_profile_set(args: argparse.Namespace) -> int:
    result = call_api(
        _data_dir(args), "POST", "/v1/profile", {"name": args.name, "zone": args.zone}
    )
    if args.json:
        _emit_json(result)
    else:
        print(f"profile of {result['agent']} published as {result['hash']}")
    return 0


def cmd_profile_get(args: argparse.Namespace) -> int:
    result = call_api(_data_dir(args), "GET", f"/v1/profile/{args.agent}")
    if args.json:
        _emit_json(result)
    else:
        print(f"{result['name']} ({result['zone']}) — {result['agent']}")
    return 0


def cmd_bench_net(args: argparse.Namespace) -> int:
    from ioe.bench.net import bench_net  # noqa: PLC0415 - imports libp2p, see _node_config

    result = bench_net(nodes=args.nodes, rounds=args.rounds, requests=args.requests)
    print(
        f"round trips/s: libp2p {result['p2p_rtt_per_s']:.0f} vs TCP {result['tcp_rtt_per_s']:.0f} "
        f"(ratio {result['ratio']:.3f}); {args.nodes} nodes: visible p50 "
        f"{result['visible_p50_s']:.3f} s, p95 {result['visible_p95_s']:.3f} s"
    )
    _emit_json(result)
    return 0


def cmd_bench_countersign(args: argparse.Namespace) -> int:
    from ioe.bench.countersign import bench_countersign  # noqa: PLC0415 - see cmd_bench_net

    result = bench_countersign(sessions=args.sessions, pings=args.pings)
    print(
        f"{result['sessions']} two-party sessions between two node processes: "
        f"{result['sessions_per_s']:.0f}/s, p50 {result['p50_ms']:.1f} ms, p95 "
        f"{result['p95_ms']:.1f} ms (libp2p round trip p50 {result['rtt_p50_ms']:.2f} ms)"
    )
    _emit_json(result)
    return 0


def cmd_device_run(args: argparse.Namespace) -> int:
    from ioe.drivers.registry import DriverOptions  # noqa: PLC0415 - see _node_config
    from ioe.drivers.sim.clock import scenario_start_us  # noqa: PLC0415
    from ioe.services.device import DeviceSetup  # noqa: PLC0415

    data_dir = _data_dir(args)
    try:
        config = _node_config(args)
        demand = demand_setup(args)
        sim_start = None if args.sim_start is None else scenario_start_us(args.sim_start)
        if not args.sim_speed > 0:
            raise ValueError("--sim-speed is a positive number")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unlock = provisional_identity(data_dir, args.key_file)
    setup = DeviceSetup(
        DriverOptions(
            driver=args.driver,
            sim=args.sim,
            mqtt=args.mqtt,
            topic=args.topic,
            device_id=args.device_id,
            url=args.url,
            modbus=args.modbus,
            unit=args.unit,
            ocpp=args.ocpp,
            charger=args.charger,
            sim_start_us=sim_start,
            sim_speed=args.sim_speed,
        ),
        name=args.name,
        interval_s=args.interval,
        batch_every_s=args.batch_every,
    )
    if _provisional(data_dir, unlock, standalone=args.standalone):
        return _run_unenrolled(
            args, data_dir=data_dir, unlock=unlock, config=config, setup=setup, demand=demand
        )
    restart = True
    while restart:  # again, as the new agent, after an ownership transfer
        with Conductor.open(data_dir, unlock) as conductor:
            restart = asyncio.run(
                _serve(conductor, config, setup, demand, args.demand_rewards, unlock=unlock)
            )
    return 0


SIM_DEVICE_TYPES = {"pv": "generator", "battery": "storage", "meter": "monitor"}
"""What a simulated device is (others consume), for an unenrolled one's enrollment request."""
DRIVER_DEVICE_TYPES = {"sunspec": "generator"}


def _provisional(data_dir: Path, unlock: Unlock, *, standalone: bool) -> bool:
    """Whether the directory holds a never-enrolled device's provisional identity, to run
    unenrolled. ``--standalone`` makes it its own owner instead, for good."""
    from ioe.conductor import PROVISIONAL_AGENTS_SETTING, PROVISIONAL_SETTING  # noqa: PLC0415

    with Conductor.open(data_dir, unlock) as conductor:
        if isinstance(conductor.account, DeviceAccount):
            return False
        if not conductor.db.get_setting(PROVISIONAL_SETTING):
            return False
        if standalone:
            conductor.db.put_setting(PROVISIONAL_SETTING, False)
            conductor.db.put_setting(PROVISIONAL_AGENTS_SETTING, [])  # its chain is its own now
            print(
                "this device is now its own owner (stand-alone): it joins the network with "
                "its own owner membership",
                file=sys.stderr,
            )
            return False
    return True


def _run_unenrolled(
    args: argparse.Namespace,
    *,
    data_dir: Path,
    unlock: Unlock,
    config: Any,
    setup: Any,
    demand: Any,
) -> int:
    from ioe.identity.service.enrollment import PlugIn  # noqa: PLC0415
    from ioe.node.plugin import pairing_code, run_plug_in  # noqa: PLC0415 - imports libp2p

    device_type = args.type or SIM_DEVICE_TYPES.get(
        args.sim or "", DRIVER_DEVICE_TYPES.get(args.driver, "consumption")
    )
    code = pairing_code(data_dir)
    print(
        f"this device is not enrolled: it runs under the factory-default policy (it reports "
        f"to its own chain and joins no network, never trades) and asks the peers it reaches "
        f"to be enrolled. Its owner enrolls it with `ioe owner enroll AGENT --code "
        f"{format_code(code)}` (AGENT is the `agent` above; the code is in "
        f"{data_dir / 'pairing-code'}); `--standalone` runs it as its own owner instead.",
        file=sys.stderr,
        flush=True,
    )
    plug_in = PlugIn(args.name, device_type, None, code)  # its owner gives it a zone
    asyncio.run(
        run_plug_in(
            data_dir,
            unlock,
            config,
            plug_in,
            device=setup,
            demand=demand,
            demand_rewards=args.demand_rewards,
        )
    )
    return 0


def _device_call(args: argparse.Namespace, fn: str, payload: object = None) -> Any:
    """A device function: of this data directory's own device, or with ``--remote AGENT`` of
    another agent's device, under the grant whose secret is ``--secret``."""
    if args.remote:
        secret = args.secret
        if args.community:
            try:
                community = ExternalHash.from_text(args.community)
                device = AgentPubKey.from_text(args.remote)
            except ValueError as exc:
                raise SystemExit(f"error: --community and --remote: {exc}") from None
            secret = secret_to_text(community_secret(community, device))
        return remote_call(_data_dir(args), args.remote, ("device", fn), payload, secret)
    if fn == "read":
        return call_api(_data_dir(args), "GET", "/v1/device/values")
    if fn == "describe":
        return call_api(_data_dir(args), "GET", "/v1/device")
    return call_api(_data_dir(args), "POST", "/v1/device/values", payload)


def cmd_device_read(args: argparse.Namespace) -> int:
    values = _device_call(args, "read")
    if args.json:
        _emit_json(values)
    else:
        for name, value in values.items():
            print(f"{name:18} {value}")
    return 0


def cmd_device_describe(args: argparse.Namespace) -> int:
    description = _device_call(args, "describe")
    if args.json:
        _emit_json(description)
    else:
        print(f"{description['name']}: {description['device_type']} ({description['driver']})")
        for point in description["points"]:
            mode = "rw" if point["writable"] else "r "
            print(f"  {mode} {point['name']:18} {point.get('unit', '')}")
    return 0


def cmd_device_write(args: argparse.Namespace) -> int:
    _device_call(args, "write", {"point": args.point, "text": args.value})
    print(f"{args.point} = {args.value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(duration_s=args.duration, data_dir=args.data_dir, speed=args.speed)


# ----------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ioe", description="Internet of Energy: peer-to-peer runtime for energy devices."
    )
    parser.add_argument("--version", action="version", version=f"ioe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_account_commands(commands)

    chain = commands.add_parser(
        "chain", help="inspect and verify source chains", description="Source chain tools."
    )
    chain_commands = chain.add_subparsers(dest="chain_command", metavar="COMMAND", required=True)
    verify = chain_commands.add_parser(
        "verify",
        help="verify every chain in the data directory",
        description="Verify hash links, signatures, sequence, entries and app rules of every "
        "chain; exit non-zero naming the first bad record.",
    )
    _data_dir_arg(verify)
    verify.add_argument("--json", action="store_true", help="last line: result as JSON")
    verify.set_defaults(handler=cmd_chain_verify)
    show = chain_commands.add_parser(
        "show", help="print the chains readably", description="Print every chain, record by record."
    )
    _data_dir_arg(show)
    show.add_argument("--limit", type=int, default=None, help="at most this many records per chain")
    show.set_defaults(handler=cmd_chain_show)

    bench = commands.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_commands = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    bench_chain = bench_commands.add_parser(
        "chain",
        help="author + validate throughput against raw Ed25519 verify",
        description="Author entries in batched zome calls, validate the chain, and compare the "
        "validation rate with libsodium's raw Ed25519 verify rate measured in the same run.",
    )
    bench_chain.add_argument("--entries", type=int, default=4000, help="entries to author")
    bench_chain.add_argument("--batch", type=int, default=100, help="entries per zome call")
    bench_chain.add_argument("--rounds", type=int, default=3, help="measurement rounds")
    bench_chain.set_defaults(handler=cmd_bench_chain)
    bench_net = bench_commands.add_parser(
        "net",
        help="round trips vs plain TCP, and publish-to-visible latency across nodes",
        description="Request/response round trips over libp2p against a plain asyncio TCP echo "
        "in the same run, and publish-to-visible latency across real node processes.",
    )
    bench_net.add_argument("--nodes", type=int, default=10, help="node processes")
    bench_net.add_argument("--rounds", type=int, default=10, help="profiles published")
    bench_net.add_argument("--requests", type=int, default=2000, help="round trips per mode")
    bench_net.set_defaults(handler=cmd_bench_net)
    bench_cs = bench_commands.add_parser(
        "countersign",
        help="two-party countersigned sessions between two node processes",
        description="Two-party countersigned sessions between two real node processes over "
        "libp2p on loopback: sessions/s, p50 and p95, against the raw round trip of the path.",
    )
    bench_cs.add_argument("--sessions", type=int, default=200, help="sessions to run")
    bench_cs.add_argument("--pings", type=int, default=200, help="raw round trips to time")
    bench_cs.set_defaults(handler=cmd_bench_countersign)
    add_currency_bench(bench_commands)

    _add_node_commands(commands)
    _add_device_commands(commands)
    _add_profile_commands(commands)
    add_grant_commands(commands)
    add_owner_commands(commands)
    add_key_commands(commands)
    add_network_commands(commands, _unlock_args, _unlock)
    add_wallet_commands(commands)
    add_reputation_commands(commands)
    add_community_commands(commands)
    add_apps_commands(commands)
    add_sim_commands(commands)
    add_check_commands(commands)
    add_report_command(add_plug_commands(commands))

    _add_demo_command(commands)
    return parser


def _add_account_commands(commands: Any) -> None:
    """``ioe init`` and ``ioe recover``."""
    init = commands.add_parser(
        "init",
        help="create the owner account and its agent",
        description="Create the owner account (shows the 24-word recovery phrase once).",
    )
    _data_dir_arg(init)
    _unlock_args(init)
    init.add_argument("--json", action="store_true", help="last line: mnemonic and owner as JSON")
    network_arg(init)
    init.set_defaults(handler=cmd_init)

    recover = commands.add_parser(
        "recover",
        help="restore the owner account from its recovery phrase (read from stdin)",
        description="Restore the owner account from the 24-word phrase read from stdin. Its "
        "chain and devices come back from the network on the first `ioe node run` (see "
        "--restore-timeout, --fresh) before the node writes or serves anything.",
    )
    _data_dir_arg(recover)
    _unlock_args(recover)
    _recover_args(recover)
    recover.set_defaults(handler=cmd_recover)


def _recover_args(recover: argparse.ArgumentParser) -> None:
    recover.add_argument(
        "--fresh",
        action="store_true",
        help="the account never ran a node: start a new chain now instead of restoring it "
        "from the network on the first `ioe node run`",
    )
    recover.add_argument("--json", action="store_true", help="last line: owner as JSON")
    network_arg(recover)


def _add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the demo",
        description="An owner enrolls a smart plug, a site meter and a PV inverter; the plug "
        "sits out price peaks of real recorded AEMO prices and earns credits; every chain is "
        "verified at the end. Ends by itself after --duration seconds, or on Ctrl-C.",
    )
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    demo.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="recorded 5-minute intervals per 5 real minutes (default 600: one every 0.5 s)",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="keep the demo's data here (default: temp)"
    )
    demo.set_defaults(handler=cmd_demo)


def _add_node_commands(commands: Any) -> None:
    node = commands.add_parser("node", help="run a node and talk to it", description="Nodes.")
    node_commands = node.add_subparsers(dest="node_command", metavar="COMMAND", required=True)
    run = node_commands.add_parser(
        "run",
        help="run a node in the foreground (Ctrl-C stops it)",
        description="Run the cells of DIR on the network until SIGINT/SIGTERM. When ready, "
        "writes DIR/node.json and prints one JSON line with the peer id and addresses.",
    )
    _data_dir_arg(run)
    _unlock_args(run)
    _add_network_options(run)
    run.add_argument(
        "--restore-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="after `ioe recover`: seconds to look for the owner's chain on the network before "
        "giving up (default 60)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="after `ioe recover`: if no chain is found in time, start a new one",
    )
    run.set_defaults(handler=cmd_node_run)
    for name, handler, text in (
        ("info", cmd_node_info, "the running node's identity, addresses and agents"),
        ("peers", cmd_node_peers, "connected peers, DNA members and failed dials"),
        ("blocked", cmd_node_blocked, "blocked agents and why (read from the database)"),
    ):
        sub = node_commands.add_parser(name, help=text, description=f"Show {text}.")
        _data_dir_arg(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)
    add_directory_command(node_commands)


def _remote_device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote",
        metavar="AGENT",
        help="another agent's device, reached through this data directory's node (needs a grant)",
    )
    parser.add_argument("--secret", help="the capability secret of the grant (with --remote)")
    parser.add_argument(
        "--community",
        metavar="ID",
        help="act as a member of this community (its grant on the device; with --remote)",
    )


def _add_device_commands(commands: Any) -> None:
    device = commands.add_parser(
        "device", help="bridge a device and control it", description="Device nodes."
    )
    device_commands = device.add_subparsers(dest="device_command", metavar="COMMAND", required=True)
    add_emulate_command(device_commands)
    run = device_commands.add_parser(
        "run",
        help="run a device node bridging one device",
        description="Bridge a device onto the network through its driver, committing its "
        "readings to its chain. A new data directory gets a provisional identity unlocked by a "
        "0600 key file (DIR/device.key); unenrolled devices run under the factory-default policy.",
    )
    _data_dir_arg(run)
    run.add_argument("--key-file", type=Path, default=None, help="device key file")
    run.add_argument(
        "--driver",
        required=True,
        choices=("sim", "tasmota", "shelly", "sunspec", "ocpp"),
        help="which driver speaks to the device",
    )
    run.add_argument("--name", required=True, help="the device's name")
    run.add_argument(
        "--sim",
        help="simulated device: plug (a fridge), pump (a pool pump), aircon, pv, battery, ev,"
        " meter",
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="a device nobody enrolled: run it as its own owner (it joins the network with its "
        "own owner membership) instead of unenrolled under the factory-default policy",
    )
    run.add_argument(
        "--type",
        default=None,
        choices=["consumption", "generator", "storage", "monitor"],
        help="what an unenrolled device says it is when it asks to be enrolled "
        "(default: from the driver)",
    )
    run.add_argument(
        "--sim-start",
        default=None,
        help="a simulated device lives in this moment of the bundled data instead of now "
        "(ISO 8601 with offset, e.g. 2023-01-16T14:45+11:00), as a replayed price feed does",
    )
    run.add_argument(
        "--sim-speed",
        type=float,
        default=1.0,
        help="scenario seconds per real second from --sim-start (match --demand-speed)",
    )
    run.add_argument("--mqtt", help="MQTT broker HOST:PORT (tasmota, shelly)")
    run.add_argument("--topic", help="Tasmota topic")
    run.add_argument("--device-id", help="Shelly device id (MQTT)")
    run.add_argument("--url", help="Shelly base URL (HTTP RPC)")
    run.add_argument("--modbus", help="SunSpec Modbus TCP HOST:PORT")
    run.add_argument("--unit", type=int, default=1, help="Modbus unit id")
    run.add_argument("--ocpp", help="HOST:PORT for the OCPP central system to listen on")
    run.add_argument("--charger", help="OCPP charge point id")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    run.add_argument(
        "--batch-every", type=float, default=10.0, help="seconds between signed batches"
    )
    _add_network_options(run)
    add_demand_options(run)
    run.set_defaults(handler=cmd_device_run)
    for name, handler, text in (
        ("read", cmd_device_read, "current values by canonical name"),
        ("describe", cmd_device_describe, "the device's type and points"),
    ):
        sub = device_commands.add_parser(name, help=text, description=f"Show {text}.")
        _data_dir_arg(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
        _remote_device_args(sub)
        sub.set_defaults(handler=handler)
    write = device_commands.add_parser(
        "write",
        help="set a control point",
        description="Set a control point, e.g. `switch off` or `setpoint_c 24`; an unknown "
        "point or a value out of range is refused and nothing changes.",
    )
    _data_dir_arg(write)
    write.add_argument("point", help="canonical point name")
    write.add_argument("value", help="value (on/off, a number, a mode)")
    _remote_device_args(write)
    write.set_defaults(handler=cmd_device_write)
    add_plug_in_command(device_commands)


def _add_profile_commands(commands: Any) -> None:
    profile = commands.add_parser(
        "profile", help="public profiles", description="An agent's public profile."
    )
    profile_commands = profile.add_subparsers(
        dest="profile_command", metavar="COMMAND", required=True
    )
    set_cmd = profile_commands.add_parser(
        "set", help="publish your profile", description="Publish the owner's profile."
    )
    _data_dir_arg(set_cmd)
    set_cmd.add_argument("--name", required=True, help="display name")
    set_cmd.add_argument("--zone", required=True, help="zone path, e.g. au/nsw/newtown")
    set_cmd.add_argument("--json", action="store_true", help="print JSON")
    set_cmd.set_defaults(handler=cmd_profile_set)
    get_cmd = profile_commands.add_parser(
        "get", help="fetch an agent's profile", description="Fetch a profile from the network."
    )
    _data_dir_arg(get_cmd)
    get_cmd.add_argument("agent", help="agent key (uagnt…)")
    get_cmd.add_argument("--json", action="store_true", help="print JSON")
    get_cmd.set_defaults(handler=cmd_profile_get)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return run_handler(handler, args)


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's handler, mapping our errors and a closed pipe to exit codes."""
    try:
        return handler(args)
    except IoEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`ioe ... | head`): stop quietly
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe
        return 141


if __name__ == "__main__":
    sys.exit(main())
