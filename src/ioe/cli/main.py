"""``ioe`` command-line entry point.

Commands scripts rely on (keep them stable): ``--version``, ``init``, ``recover``,
``chain verify``, ``chain show``, ``bench chain``, ``demo``. With ``--json``, the last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ioe import __version__
from ioe.bench import bench_chain
from ioe.conductor import Conductor, default_data_dir, known_dnas, open_database
from ioe.crypto.keystore import (
    Unlock,
    create_device_key_file,
    passphrase_from_env_or_prompt,
)
from ioe.demo import run_demo
from ioe.errors import ChainIntegrityError, IoEError
from ioe.inspect import describe_chain

Handler = Callable[[argparse.Namespace], int]


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data directory (default: $IOE_HOME or {default_data_dir()})",
    )


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir if args.data_dir is not None else default_data_dir()


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


def _emit_json(value: object) -> None:
    print(json.dumps(value, separators=(", ", ": ")))


# --------------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    unlock = _unlock(args, creating=True)
    conductor, mnemonic = Conductor.init(data_dir, unlock)
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
    with Conductor.recover(data_dir, mnemonic, unlock) as conductor:
        owner = conductor.account.agent_key().agent.to_text()
    if args.json:
        _emit_json({"owner": owner})
    else:
        print(f"Owner account {owner} restored in {data_dir}")
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
    with open_database(_data_dir(args), verify=False) as db:
        dnas = known_dnas(db)
        specs = db.dna_specs()
        for dna_hash, agent in db.cells():
            store = db.chain(dna_hash, agent)
            name = specs.get(dna_hash, {}).get("name", "unknown DNA")
            lines = describe_chain(store, dnas.get(dna_hash), limit=args.limit)
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


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(duration_s=args.duration, data_dir=args.data_dir)


# ----------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ioe", description="Internet of Energy: peer-to-peer runtime for energy devices."
    )
    parser.add_argument("--version", action="version", version=f"ioe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="create the owner account and its agent",
        description="Create the owner account (shows the 24-word recovery phrase once).",
    )
    _data_dir_arg(init)
    _unlock_args(init)
    init.add_argument("--json", action="store_true", help="last line: mnemonic and owner as JSON")
    init.set_defaults(handler=cmd_init)

    recover = commands.add_parser(
        "recover",
        help="restore the owner account from its recovery phrase (read from stdin)",
        description="Restore the owner account from the 24-word phrase read from stdin.",
    )
    _data_dir_arg(recover)
    _unlock_args(recover)
    recover.add_argument("--json", action="store_true", help="last line: owner as JSON")
    recover.set_defaults(handler=cmd_recover)

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

    demo = commands.add_parser(
        "demo",
        help="run the demo",
        description="An owner and a simulated smart plug committing signed readings, "
        "then verifying them; ends by itself.",
    )
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="keep the demo's data here (default: temp)"
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except IoEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
