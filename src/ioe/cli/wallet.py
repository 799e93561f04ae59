"""``ioe wallet balance|history|pay|receipt|receipts|settle``: a running node's currency wallet.

Amounts are integer milli-credits on the wire and on the command line (``1500`` is 1.500 of
the unit); the human output shows them with the unit's symbol. With ``--json`` the last line is
one JSON object (the node API's answer: ``/v1/wallet``, ``/v1/wallet/history``,
``/v1/wallet/pay``, ``/v1/wallet/receipt``, ``/v1/wallet/receipts``, ``/v1/wallet/settle``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ioe.cli.common import data_dir as _data_dir
from ioe.cli.common import data_dir_arg as _data_dir_arg
from ioe.cli.common import emit_json as _emit
from ioe.node.client import call_api
from ioe.zomes.currency.entries import Kind
from ioe.zomes.currency.ledger import format_mc


def cmd_wallet_balance(args: argparse.Namespace) -> int:
    found = call_api(_data_dir(args), "GET", "/v1/wallet")
    if args.json:
        _emit(found)
    else:
        unit = found["unit"]
        print(f"balance    {format_mc(found['balance_mc'], unit)}")
        print(f"limit      {format_mc(-found['credit_limit_mc'], unit)}")
        print(f"available  {format_mc(found['available_mc'], unit)}")
    return 0


def cmd_wallet_history(args: argparse.Namespace) -> int:
    found = call_api(_data_dir(args), "GET", "/v1/wallet/history")
    if args.json:
        _emit(found)
        return 0
    unit = found["unit"]
    if not found["items"]:
        print("no transfers yet")
    for item in found["items"]:
        arrow = "from" if item["delta_mc"] > 0 else "to  "
        delta = format_mc(item["delta_mc"], unit)
        if item["delta_mc"] > 0:
            delta = "+" + delta
        line = f"{delta:>18}  {item['kind']:9} {arrow} {item['counterparty']}"
        line += f"  → {format_mc(item['balance_mc'], unit)}"
        provenance = item.get("provenance")
        if provenance:
            clean = "clean" if provenance["clean"] else "dirty"
            line += f"  [{provenance['energy_wh']} Wh {provenance['source']} {clean}]"
        if item["memo"]:
            line += f"  {item['memo']!r}"
        print(line)
    return 0


def _json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"error: {option} is not JSON: {exc}") from None


def cmd_wallet_pay(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "to": args.agent,
        "kind": args.kind,
        "memo": args.memo,
        "timeout_s": args.timeout,
    }
    if args.amount_mc is not None:
        body["amount_mc"] = args.amount_mc
    elif args.terms is None:
        print("error: give AMOUNT_MC, or --terms to let the rules set it", file=sys.stderr)
        return 2
    for option, key in (("--provenance", "provenance"), ("--terms", "terms")):
        value = _json_option(getattr(args, key), option)
        if value is not None:
            body[key] = value
    paid = call_api(_data_dir(args), "POST", "/v1/wallet/pay", body, timeout=args.timeout + 30)
    if args.json:
        _emit(paid)
    else:
        print(f"paid {format_mc(paid['amount_mc'], paid['unit'])} to {paid['to']} ({paid['kind']})")
        print(f"balance {paid['balance']}   record {paid['hash']}")
    return 0


def cmd_wallet_receipt(args: argparse.Namespace) -> int:
    body = {
        "consumer": args.consumer,
        "attestation": args.attestation,
        "energy_wh": args.energy_wh,
        "consumer_zone": args.zone,
        "need_index": args.need_index,
        "timeout_s": args.timeout,
    }
    signed = call_api(
        _data_dir(args), "POST", "/v1/wallet/receipt", body, timeout=args.timeout + 30
    )
    if args.json:
        _emit(signed)
    else:
        receipt = signed["receipt"]
        print(f"receipt of {receipt['energy_wh']} Wh to {receipt['consumer']}: {signed['hash']}")
    return 0


def cmd_wallet_receipts(args: argparse.Namespace) -> int:
    found = call_api(_data_dir(args), "GET", "/v1/wallet/receipts")
    if args.json:
        _emit(found)
        return 0
    if not found["items"]:
        print("no consumption receipts")
    for item in found["items"]:
        receipt = item["receipt"]
        state = "settled" if item["settled"] else "to settle"
        print(
            f"{item['action_hash']}  {receipt['energy_wh']} Wh  from {receipt['distributor']}"
            f"  {state}"
        )
    return 0


def cmd_wallet_settle(args: argparse.Namespace) -> int:
    body = {"receipt": args.receipt, "reputation_pm": args.reputation_pm, "timeout_s": args.timeout}
    paid = call_api(_data_dir(args), "POST", "/v1/wallet/settle", body, timeout=args.timeout + 30)
    if args.json:
        _emit(paid)
    else:
        print(f"paid {format_mc(paid['amount_mc'], paid['unit'])} to {paid['to']} (trade)")
        print(f"balance {paid['balance']}   record {paid['hash']}")
    return 0


def _amount(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("AMOUNT_MC is an integer of milli-credits") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("AMOUNT_MC is a positive integer of milli-credits")
    return value


def add_commands(commands: Any) -> None:
    wallet = commands.add_parser(
        "wallet",
        help="balance, history and payments in the energy currency",
        description="The currency wallet of a running node's agent. Amounts are integer "
        "milli-credits (1000 = 1 credit = 1 kWh at par).",
    )
    sub = wallet.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)
    balance = sub.add_parser("balance", help="balance and credit limit", description="Balance.")
    history = sub.add_parser(
        "history", help="transfers, oldest first", description="This agent's transfers."
    )
    pay = sub.add_parser(
        "pay",
        help="pay another agent",
        description="Pay another agent: one countersigned transfer on both chains. The "
        "receiver's node refuses anything its rules do not allow (over the payer's credit "
        "limit, a stale ledger head).",
    )
    pay.add_argument("agent", help="the receiver's agent key (uagnt…)")
    pay.add_argument(
        "amount_mc",
        type=_amount,
        metavar="AMOUNT_MC",
        nargs="?",
        help="milli-credits (leave out with --terms: the rules set a trade's, fee's, reward's "
        "or cash transfer's amount from what it cites)",
    )
    pay.add_argument(
        "--kind", default=str(Kind.TRANSFER), choices=[str(k) for k in Kind], help="why"
    )
    pay.add_argument("--memo", default="", help="a note (at most 256 characters)")
    pay.add_argument(
        "--provenance",
        help='the energy paid for, as JSON: {"energy_wh", "source", "origin_zone", "trust", '
        '"clean"?} (required for trade and reward)',
    )
    pay.add_argument(
        "--terms",
        help='what the transfer cites, as JSON (docs/currency.md): e.g. {"fee": "distributor", '
        '"cites": TRADE_HASH} or {"reputation_pm": 1000} for a trade',
    )
    pay.add_argument("--timeout", type=float, default=10.0, help="session timeout, seconds")
    receipt = sub.add_parser(
        "receipt",
        help="as a distributor, countersign a consumption receipt with its consumer",
        description="As the distributor that attested a generation claim, countersign the "
        "receipt of energy delivered to a consumer with the consumer's node. The consumer "
        "then pays the trade (`ioe wallet pay PRODUCER --kind trade --provenance ... --terms "
        "...`).",
    )
    receipt.add_argument("consumer", help="the consumer's agent key")
    receipt.add_argument("--attestation", required=True, help="your attestation's action hash")
    receipt.add_argument("--energy-wh", type=int, required=True, help="energy delivered, Wh")
    receipt.add_argument("--zone", required=True, help="the consumer's zone")
    receipt.add_argument("--need-index", type=int, default=0, help="the zone's need, -1000..1000")
    receipt.add_argument("--timeout", type=float, default=10.0, help="session timeout, seconds")
    receipts = sub.add_parser(
        "receipts",
        help="the consumption receipts this agent co-signed",
        description="Consumption receipts on this chain, and whether a trade settled each.",
    )
    settle = sub.add_parser(
        "settle",
        help="as a receipt's consumer, pay its producer",
        description="Pay the producer the trade that settles a consumption receipt: the "
        "provenance comes from the receipt, its attestation and its claim, the amount is the "
        "value of the energy by the network's rules.",
    )
    settle.add_argument("receipt", help="your record of the receipt (`ioe wallet receipts`)")
    settle.add_argument(
        "--reputation-pm", type=int, default=1000, help="your demand-response multiplier"
    )
    settle.add_argument("--timeout", type=float, default=10.0, help="session timeout, seconds")
    for parser, handler in (
        (balance, cmd_wallet_balance),
        (receipts, cmd_wallet_receipts),
        (settle, cmd_wallet_settle),
        (history, cmd_wallet_history),
        (pay, cmd_wallet_pay),
        (receipt, cmd_wallet_receipt),
    ):
        _data_dir_arg(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=handler)


def cmd_bench_currency(args: argparse.Namespace) -> int:
    from ioe.bench.currency import bench_currency  # noqa: PLC0415 - starts node processes

    result = bench_currency(transfers=args.transfers)
    print(
        f"{result['transfers']} countersigned transfers between two node processes: "
        f"{result['tx_per_s']:.1f}/s, p50 {result['p50_ms']:.1f} ms, p95 "
        f"{result['p95_ms']:.1f} ms; crypto limit (2 signs + 2 verifies) "
        f"{result['crypto_limit_tx_per_s']:.0f}/s, ratio {result['ratio']:.4f}"
    )
    _emit(result)
    return 0


def add_bench_command(bench_commands: Any) -> None:
    """``ioe bench currency`` (added to ``ioe bench``)."""
    bench = bench_commands.add_parser(
        "currency",
        help="countersigned transfers between two node processes",
        description="Currency transfers between two real node processes over libp2p on "
        "loopback (ledger head read, countersigned session, both chains committed): tx/s, "
        "p50 and p95, against the crypto limit of 2 signs + 2 verifies. The last line is JSON.",
    )
    bench.add_argument("--transfers", type=int, default=200, help="transfers to make")
    bench.set_defaults(handler=cmd_bench_currency)
