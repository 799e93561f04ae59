"""``ioe bench currency``: countersigned currency transfers between two node processes.

Two real ``ioe node run`` processes on loopback, talking over libp2p (TCP, Noise, yamux). Node A
pays node B ``transfers`` times, one after another, through its HTTP API (``/v1/wallet/pay``):
each payment reads B's ledger head (a signed remote call), builds and checks the transfer, runs
the countersigning session (B's node judges it with the currency policy) and returns once both
chains committed it. Reported: transfers per second (``tx_per_s``), p50/p95 of a payment as the
node measures it (``p50_ms``, ``p95_ms``: the whole payment, head read included) and as the API
client sees it (``client_*``), and ``ratio`` against the **crypto limit**: the transfers per
second one core could sustain if a transfer cost only its two signatures and two verifications
(Ed25519 over the real response messages of a transfer session, timed in the same run).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from ioe.bench.net import node_pair, percentile
from ioe.crypto.keys import KeyPair
from ioe.encoding import encode
from ioe.engine.countersigning import SESSION_ID_BYTES, Preflight, Response
from ioe.engine.ports import ChainHead
from ioe.engine.schema import to_value
from ioe.hashing import ActionHash, DnaHash
from ioe.node.client import call_api
from ioe.zomes.currency.entries import Kind
from ioe.zomes.currency.ledger import START, next_transfer


def crypto_limit(rounds: int = 2000) -> dict[str, float]:
    """Seconds per Ed25519 sign and verify of a transfer session's response, and the transfers
    per second that 2 signs + 2 verifies allow on one core."""
    spender, receiver = KeyPair(os.urandom(32)), KeyPair(os.urandom(32))
    transfer = next_transfer(
        spender.agent, START, receiver.agent, START, amount_mc=1, kind=Kind.TRANSFER
    )
    now = time.time_ns() // 1000
    preflight = Preflight(
        session_id=os.urandom(SESSION_ID_BYTES),
        dna_hash=DnaHash(os.urandom(32)),
        parties=(spender.agent, receiver.agent),
        witness=None,
        entry_zome=0,
        entry_index=0,
        entry=encode(to_value(transfer)),
        session_time_us=now,
        expires_us=now + 10_000_000,
    )
    head = ChainHead(5, ActionHash(os.urandom(32)), now)
    began = time.perf_counter()
    for _ in range(rounds):
        response = Response.sign(spender, preflight, head)
    sign_s = (time.perf_counter() - began) / rounds
    began = time.perf_counter()
    for _ in range(rounds):
        assert response.valid_for(preflight)
    verify_s = (time.perf_counter() - began) / rounds
    return {"sign_s": sign_s, "verify_s": verify_s, "tx_per_s": 1 / (2 * sign_s + 2 * verify_s)}


def bench_currency(*, transfers: int = 200, warmup: int = 5) -> dict[str, Any]:
    with node_pair("ioe-bench-cur-", ()) as (dirs, owners):
        body = {"to": owners[1], "amount_mc": 1, "memo": "bench"}
        for _ in range(warmup):  # warm up the connection and the code paths
            call_api(dirs[0], "POST", "/v1/wallet/pay", body)
        node_ms: list[float] = []
        client_ms: list[float] = []
        retried = 0
        started = time.perf_counter()
        for _ in range(transfers):
            began = time.perf_counter()
            result = call_api(dirs[0], "POST", "/v1/wallet/pay", body)
            client_ms.append((time.perf_counter() - began) * 1000)
            node_ms.append(float(result["elapsed_ms"]))
            retried += int(result["attempts"]) - 1
        elapsed = time.perf_counter() - started
        limit = crypto_limit()
        balances = [call_api(d, "GET", "/v1/wallet")["balance_mc"] for d in dirs]
        received = len(call_api(dirs[1], "GET", "/v1/wallet/history")["items"])
    tx_per_s = transfers / elapsed
    return {
        "benchmark": "currency",
        "transfers": transfers,
        "tx_per_s": round(tx_per_s, 1),
        "p50_ms": round(statistics.median(node_ms), 2),
        "p95_ms": round(percentile(node_ms, 0.95), 2),
        "client_p50_ms": round(statistics.median(client_ms), 2),
        "client_p95_ms": round(percentile(client_ms, 0.95), 2),
        "retried": retried,
        "sign_us": round(limit["sign_s"] * 1e6, 1),
        "verify_us": round(limit["verify_s"] * 1e6, 1),
        "crypto_limit_tx_per_s": round(limit["tx_per_s"], 1),
        "ratio": round(tx_per_s / limit["tx_per_s"], 5),
        "balance_sum_mc": sum(balances),
        "receiver_transfers": received,
    }


if __name__ == "__main__":
    print(json.dumps(bench_currency(transfers=int(sys.argv[1]) if sys.argv[1:] else 200)))
