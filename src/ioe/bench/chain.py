"""``ioe bench chain``: author and validate throughput, as a ratio to the machine's own limit.

Signature verification is the one cost validation cannot avoid, so the validation rate is
reported against libsodium's raw Ed25519 verify rate measured in the same run, on the same
signatures (one core: libsodium's verify cannot go faster on one core). Validation checks
signatures in worker processes while the main process decodes and checks rules, so on a
multi-core machine it can approach that rate; the all-in-one-thread rate is reported too.
Rounds alternate the measurements so background load hits all alike; figures are medians.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings

from ioe.crypto.derivation import device_agent_key
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.records import ACTION_SIGNATURE_CONTEXT
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import membrane_proof_for

SAMPLES_PER_ENTRY = 4


def _batch(entry: int) -> list[dict[str, Any]]:
    base = 1_700_000_000_000_000 + entry * 10_000_000
    return [
        {
            "at_us": base + i * 1_000_000,
            "values": {"power_mw": 60_000 + i, "energy_mwh": entry * 100 + i},
        }
        for i in range(SAMPLES_PER_ENTRY)
    ]


def bench_chain(*, entries: int = 4000, batch: int = 100, rounds: int = 3) -> dict[str, Any]:
    if entries < 1 or batch < 1 or rounds < 1:
        raise ValueError("entries, batch and rounds must be positive")
    dna = core_dna()
    with tempfile.TemporaryDirectory(prefix="ioe-bench-") as tmp:
        db = SqliteDatabase.open(Path(tmp) / "bench.sqlite", dnas=[dna])
        try:
            keys = device_agent_key(os.urandom(32), 0)
            cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
            now = 1_800_000_000_000_000
            cell.genesis(membrane_proof_for(cell.keys), now_us=now)

            started = time.perf_counter()
            for first in range(0, entries, batch):
                count = min(batch, entries - first)
                payload = [_batch(first + i) for i in range(count)]
                cell.call("telemetry", "record_batches", payload, now_us=now + first)
            author_s = time.perf_counter() - started

            store = db.chain(dna.hash, keys.agent)
            signed = [
                (r.signed_action.signature + ACTION_SIGNATURE_CONTEXT + b"\x00" + r.action_hash)
                for r in store.iter_records()
            ]
            records = len(signed)
            validate_rates: list[float] = []
            single_rates: list[float] = []
            raw_rates: list[float] = []
            for _ in range(rounds):
                raw_rates.append(_raw_verify_rate(signed, bytes(keys.agent)))
                for parallel, rates in ((True, validate_rates), (False, single_rates)):
                    started = time.perf_counter()
                    checked = store.verify(incremental=False, dna=dna, parallel=parallel)
                    rates.append(checked / (time.perf_counter() - started))
        finally:
            db.close()
    raw = statistics.median(raw_rates)
    return {
        "benchmark": "chain",
        "entries": entries,
        "batch": batch,
        "records_validated": records,
        "rounds": rounds,
        "author_entries_per_s": round(entries / author_s, 1),
        "entries_per_s": round(statistics.median(validate_rates), 1),
        "raw_verify_per_s": round(raw, 1),
        "ratio": round(statistics.median(validate_rates) / raw, 3),
        "single_core_entries_per_s": round(statistics.median(single_rates), 1),
        "single_core_ratio": round(statistics.median(single_rates) / raw, 3),
        "cores": os.cpu_count(),
        "validate": "SQLite read + decode + hash links + Ed25519 + system and app rules; "
        "signatures checked by worker processes (single_core_*: all in one thread)",
    }


def _raw_verify_rate(signed_messages: list[bytes], public_key: bytes) -> float:
    verify = nacl.bindings.crypto_sign_open
    started = time.perf_counter()
    for message in signed_messages:
        verify(message, public_key)
    return len(signed_messages) / (time.perf_counter() - started)
