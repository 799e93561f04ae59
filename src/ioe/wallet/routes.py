"""HTTP routes of the wallet (added to the node's API by :func:`add_routes`).

    GET  /v1/wallet              → {"agent", "balance_mc", "credit_limit_mc", "available_mc",
                                    "unit", "unit_name", "balance", "previous"}
    GET  /v1/wallet/history      → {"agent", "unit", "items": [{"action_hash", "at_us", "kind",
                                    "amount_mc", "delta_mc", "counterparty", "balance_mc",
                                    "provenance" (its trust by name), "memo"}]} (oldest first)
    POST /v1/wallet/pay          {"to", "amount_mc"?, "kind"?, "provenance"?, "terms"?,
                                  "memo"?, "timeout_s"?} → {"hash", "session", "to", "amount_mc",
                                  "kind", "balance_mc", "unit", "balance", "attempts",
                                  "elapsed_ms"}
                                 400 {"error"} refused by this node's own rules (over the
                                 limit, bad kind or provenance); 409 {"error"} refused by the
                                 receiver, abandoned, or this chain is in another session;
                                 403/404/504 the receiver's ledger head could not be read
                                 ``terms`` (what a trade, fee, reward or cash transfer
                                 cites: ``docs/currency.md``) lets ``amount_mc`` be left to
                                 the rules; cited records are fetched from the network.

    POST /v1/wallet/receipt      {"consumer", "attestation", "energy_wh", "consumer_zone",
                                  "need_index"?, "timeout_s"?} → {"hash", "session",
                                  "receipt": {...}, "elapsed_ms"}: as the distributor that
                                 made the attestation, countersign the receipt of energy
                                 delivered to the consumer; 400 refused by this node's rules,
                                 409 refused by the consumer's node or this chain is busy

    GET  /v1/wallet/receipts     → {"agent", "items": [{"action_hash", "at_us", "receipt":
                                    {...}, "settled"}]}: receipts this agent co-signed
    POST /v1/wallet/settle       {"receipt", "reputation_pm"?, "timeout_s"?} → as /pay: as the
                                 receipt's consumer, pay its producer the trade (provenance
                                 and amount from the receipt, attestation and claim)

Amounts are integer milli-credits; ``unit`` is the currency's symbol.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ioe.errors import ChainLocked
from ioe.hashing import ActionHash, AgentPubKey
from ioe.services.jsonvalue import json_ready
from ioe.vocabulary import Verification
from ioe.wallet.service import Payment, PaymentError, Wallet, describe
from ioe.zomes.currency.ledger import format_mc

MAX_TIMEOUT_S = 120.0


WALLET: web.AppKey[Wallet] = web.AppKey("wallet", Wallet)


def add_routes(app: web.Application, wallet: Wallet) -> None:
    app[WALLET] = wallet
    app.router.add_get("/v1/wallet", balance)
    app.router.add_get("/v1/wallet/history", history)
    app.router.add_post("/v1/wallet/pay", pay)
    app.router.add_post("/v1/wallet/receipt", receipt)
    app.router.add_get("/v1/wallet/receipts", receipts)
    app.router.add_post("/v1/wallet/settle", settle)


def _wallet(request: web.Request) -> Wallet:
    return request.app[WALLET]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def balance(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    return web.json_response({"agent": wallet.cell().agent.to_text(), **describe(wallet.balance())})


async def history(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    unit = wallet.symbol()
    items = [_readable(json_ready(item)) for item in wallet.history()]
    return web.json_response({"agent": wallet.cell().agent.to_text(), "unit": unit, "items": items})


def _readable(item: dict[str, Any]) -> dict[str, Any]:
    """A history item as people read it: the provenance's trust by name (``meter_attested``),
    as ``provenance`` is written when paying, not the level's number."""
    provenance = item.get("provenance")
    if isinstance(provenance, dict) and type(provenance.get("trust")) is int:
        trust = Verification(provenance["trust"]).name.lower()
        item = {**item, "provenance": {**provenance, "trust": trust}}
    return item


async def pay(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict) or not isinstance(body.get("to"), str):
        return _error(
            400, 'pay takes {"to", "amount_mc"?, "kind"?, "provenance"?, "terms"?, "memo"?}'
        )
    amount = body.get("amount_mc")
    terms = body.get("terms")
    if not (type(amount) is int or (amount is None and isinstance(terms, dict))):
        return _error(400, "amount_mc is an integer of milli-credits (optional with terms)")
    kind, memo = body.get("kind", "transfer"), body.get("memo", "")
    if not isinstance(kind, str) or not isinstance(memo, str):
        return _error(400, "kind and memo are text")
    timeout_s = body.get("timeout_s", 10.0)
    if type(timeout_s) not in (int, float) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        return _error(400, f"timeout_s is a number of seconds in (0, {MAX_TIMEOUT_S:.0f}]")
    to = AgentPubKey.from_text(body["to"])  # EncodingError → 400
    try:
        payment = await wallet.pay(
            to,
            amount,
            kind=kind,
            provenance=body.get("provenance"),
            terms=terms,
            memo=memo,
            timeout_s=float(timeout_s),
        )
    except (PaymentError, ChainLocked) as exc:
        return _error(409, str(exc))
    return web.json_response(_paid(wallet, payment))


def _paid(wallet: Wallet, payment: Payment) -> dict[str, Any]:
    transfer = payment.transfer
    symbol = wallet.symbol()
    return {
        "hash": payment.action_hash.to_text(),
        "session": payment.session_id.hex(),
        "to": transfer.receiver.agent.to_text(),
        "amount_mc": transfer.amount_mc,
        "kind": str(transfer.kind),
        "balance_mc": transfer.spender.balance_mc,
        "unit": symbol,
        "balance": format_mc(transfer.spender.balance_mc, symbol),
        "attempts": payment.attempts,
        "elapsed_ms": payment.elapsed_ms,
    }


async def receipt(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    usage = (
        'receipt takes {"consumer", "attestation", "energy_wh", "consumer_zone",'
        ' "need_index"?, "timeout_s"?}'
    )
    if not isinstance(body, dict):
        return _error(400, usage)
    consumer, attestation = body.get("consumer"), body.get("attestation")
    energy, zone, need = body.get("energy_wh"), body.get("consumer_zone"), body.get("need_index", 0)
    if not (isinstance(consumer, str) and isinstance(attestation, str) and isinstance(zone, str)):
        return _error(400, usage)
    if type(energy) is not int or type(need) is not int:
        return _error(400, "energy_wh and need_index are integers")
    timeout_s = body.get("timeout_s", 10.0)
    if type(timeout_s) not in (int, float) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        return _error(400, f"timeout_s is a number of seconds in (0, {MAX_TIMEOUT_S:.0f}]")
    try:
        delivery = await wallet.deliver(
            AgentPubKey.from_text(consumer),  # EncodingError → 400
            ActionHash.from_text(attestation),
            energy,
            zone,
            need_index=need,
            timeout_s=float(timeout_s),
        )
    except (PaymentError, ChainLocked) as exc:
        return _error(409, str(exc))
    return web.json_response(
        {
            "hash": delivery.action_hash.to_text(),
            "session": delivery.session_id.hex(),
            "receipt": json_ready(delivery.receipt),
            "elapsed_ms": delivery.elapsed_ms,
        }
    )


async def receipts(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    items = [json_ready(item) for item in wallet.receipts()]
    return web.json_response({"agent": wallet.cell().agent.to_text(), "items": items})


async def settle(request: web.Request) -> web.Response:
    wallet = _wallet(request)
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict) or not isinstance(body.get("receipt"), str):
        return _error(400, 'settle takes {"receipt", "reputation_pm"?, "timeout_s"?}')
    reputation = body.get("reputation_pm", 1000)
    timeout_s = body.get("timeout_s", 10.0)
    if type(reputation) is not int:
        return _error(400, "reputation_pm is an integer per mille")
    if type(timeout_s) not in (int, float) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        return _error(400, f"timeout_s is a number of seconds in (0, {MAX_TIMEOUT_S:.0f}]")
    try:
        payment = await wallet.settle(
            ActionHash.from_text(body["receipt"]),
            reputation_pm=reputation,
            timeout_s=float(timeout_s),
        )
    except (PaymentError, ChainLocked) as exc:
        return _error(409, str(exc))
    return web.json_response(_paid(wallet, payment))
