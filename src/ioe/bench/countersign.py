"""``ioe bench countersign``: two-party countersigned sessions between two node processes.

Two real ``ioe node run`` processes on loopback, talking over libp2p (TCP, Noise, yamux). Node A
runs ``sessions`` sessions with node B one after another through its HTTP API; each is complete
when A has committed and B has acknowledged the set (B committed too). Reported: sessions per
second, p50/p95 of the session as the node measures it (``p50_ms``, ``p95_ms``: from the API
request arriving to both parties committed) and as the API client sees it (``client_*``), and
the raw request round trip of the same libp2p path (the countersigning protocol's ``ping``) for
a ratio: a session costs two round trips plus six durable SQLite writes on the critical path.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from ioe.bench.net import node_pair, percentile
from ioe.node.client import call_api


def bench_countersign(*, sessions: int = 200, pings: int = 200) -> dict[str, Any]:
    with node_pair("ioe-bench-cs-", ["--countersign-accept", "profile"]) as (dirs, owners):
        body = {
            "with": [owners[1]],
            "entry": {"type": "profile", "value": {"name": "bench", "zone": "au/bench"}},
        }
        for _ in range(5):  # warm up the connection and the code paths
            call_api(dirs[0], "POST", "/v1/countersign", body)
        ping = call_api(
            dirs[0], "POST", "/v1/countersign/ping", {"with": owners[1], "count": pings}
        )["rtt_ms"]
        node_ms: list[float] = []
        client_ms: list[float] = []
        started = time.perf_counter()
        for _ in range(sessions):
            began = time.perf_counter()
            result = call_api(dirs[0], "POST", "/v1/countersign", body)
            client_ms.append((time.perf_counter() - began) * 1000)
            node_ms.append(float(result["elapsed_ms"]))
        elapsed = time.perf_counter() - started
        settled = call_api(dirs[1], "GET", "/v1/countersign")
    p50 = statistics.median(node_ms)
    rtt = statistics.median(ping)
    return {
        "benchmark": "countersign",
        "sessions": sessions,
        "sessions_per_s": round(sessions / elapsed, 1),
        "p50_ms": round(p50, 2),
        "p95_ms": round(percentile(node_ms, 0.95), 2),
        "client_p50_ms": round(statistics.median(client_ms), 2),
        "client_p95_ms": round(percentile(client_ms, 0.95), 2),
        "rtt_p50_ms": round(rtt, 3),
        "rtt_p95_ms": round(percentile(ping, 0.95), 3),
        "session_per_rtt": round(p50 / rtt, 1) if rtt else None,
        "responder_committed": len(settled["committed"]),
        "responder_locked": len(settled["locks"]),
        "target_p50_ms": 30.0,
    }


if __name__ == "__main__":
    print(json.dumps(bench_countersign(sessions=int(sys.argv[1]) if sys.argv[1:] else 200)))
