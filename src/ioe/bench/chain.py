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
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings

from ioe.crypto.derivation import device_agent_key
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.engine.ports import ChainQuery
from ioe.engine.records import ACTION_SIGNATURE_CONTEXT
from ioe.hashing import AgentPubKey
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.telemetry.entries import ReadingBatch

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
        reads = _bench_reads(Path(tmp) / "bench.sqlite", dna, keys.agent, rounds)
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
        **reads,
    }


def _bench_reads(path: Path, dna: DnaDef, agent: AgentPubKey, rounds: int) -> dict[str, Any]:
    """The read path of a reopened chain: cold and warm entry-type queries, reads by hash,
    windows of the latest records of one type, and the head."""
    with SqliteDatabase.open(path, dnas=[dna], verify=False) as db:
        store = db.chain(dna.hash, agent)
        entry_type = dna.entry_type_for(ReadingBatch)[0]
        head = store.head()
        assert head is not None
        window = ChainQuery(entry_type=entry_type, from_seq=max(0, head.seq - 19))
        cold_window_s = _timed(lambda: store.query(window))
        everything = ChainQuery(entry_type=entry_type)
        started = time.perf_counter()
        found = len(store.query(everything))
        cold_s = time.perf_counter() - started
        hashes = [r.action_hash for r in store.query(ChainQuery(include_entries=False))]
        picks = random.Random(0).choices(hashes, k=2000)
        query_rates, get_rates, window_rates, head_rates = [], [], [], []
        for _ in range(rounds):
            query_rates.append(found / _timed(lambda: store.query(everything)))
            get_rates.append(len(picks) / _timed(lambda: [store.get_record(h) for h in picks]))
            window_rates.append(500 / _timed(lambda: [store.query(window) for _ in range(500)]))
            head_rates.append(2000 / _timed(lambda: [store.head() for _ in range(2000)]))
    return {
        "read_cold_window_s": round(cold_window_s, 4),
        "read_cold_query_s": round(cold_s, 4),
        "read_cold_records_per_s": round(found / cold_s, 1),
        "read_query_records_per_s": round(statistics.median(query_rates), 1),
        "read_get_record_per_s": round(statistics.median(get_rates), 1),
        "read_window_queries_per_s": round(statistics.median(window_rates), 1),
        "read_head_per_s": round(statistics.median(head_rates), 1),
    }


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _raw_verify_rate(signed_messages: list[bytes], public_key: bytes) -> float:
    verify = nacl.bindings.crypto_sign_open
    started = time.perf_counter()
    for message in signed_messages:
        verify(message, public_key)
    return len(signed_messages) / (time.perf_counter() - started)
