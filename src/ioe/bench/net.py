"""``ioe bench net``: the network path against the machine's own limits, in one run.

1. Request/response round trips per second between two processes over libp2p (TCP, Noise,
   yamux, our request framing, the trio↔asyncio bridge), against a plain asyncio TCP echo between
   the same two processes measured in the same run (``ratio``), one request at a time and with
   many in flight.
2. Publish-to-visible latency across ``nodes`` real ``ioe node run`` processes on loopback: one
   node publishes a profile, every other node polls its own API until it sees it; p50 and p95
   over every (publisher, observer) pair.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ioe.net.p2p import P2PNetwork
from ioe.node.client import ApiError, call_api
from ioe.node.nodefile import NoRunningNode

ECHO_PROTOCOL = "/ioe/bench/echo/1"
PAYLOAD = b"x" * 64


# ------------------------------------------------------------------------ echo server (child)


async def _serve_echo() -> None:
    network = P2PNetwork(os.urandom(32))
    await network.start()

    async def echo(peer: str, data: bytes) -> bytes:
        return data

    network.set_handler(ECHO_PROTOCOL, echo)

    async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while header := await reader.readexactly(4):
                body = await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(header + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"p2p": network.listen_addrs()[0], "tcp": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    server.close()
    await network.close()


# --------------------------------------------------------------------------- round trips


async def _round_trips(
    p2p_addr: str, tcp_port: int, requests: int, in_flight: int
) -> dict[str, float]:
    client = P2PNetwork(os.urandom(32))
    await client.start()
    try:
        peer = await client.connect(p2p_addr)
        for _ in range(50):  # warm up the stream
            await client.request(peer, ECHO_PROTOCOL, PAYLOAD)

        async def p2p_worker(count: int) -> None:
            for _ in range(count):
                await client.request(peer, ECHO_PROTOCOL, PAYLOAD)

        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        lock = asyncio.Lock()

        async def tcp_once() -> None:
            async with lock:  # one connection, like the one libp2p stream
                writer.write(len(PAYLOAD).to_bytes(4, "big") + PAYLOAD)
                header = await reader.readexactly(4)
                await reader.readexactly(int.from_bytes(header, "big"))

        async def tcp_worker(count: int) -> None:
            for _ in range(count):
                await tcp_once()

        results: dict[str, float] = {}
        for label, worker, flight in (
            ("p2p_rtt_per_s", p2p_worker, 1),
            ("tcp_rtt_per_s", tcp_worker, 1),
            ("p2p_concurrent_per_s", p2p_worker, in_flight),
            ("tcp_concurrent_per_s", tcp_worker, in_flight),
        ):
            started = time.perf_counter()
            await asyncio.gather(*(worker(requests // flight) for _ in range(flight)))
            results[label] = (requests // flight) * flight / (time.perf_counter() - started)
        writer.close()
        return results
    finally:
        await client.close()


def measure_round_trips(requests: int = 2000, in_flight: int = 32) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, "-m", "ioe.bench.net", "serve-echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        ready = json.loads(child.stdout.readline())
        return asyncio.run(_round_trips(ready["p2p"], ready["tcp"], requests, in_flight))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


# ---------------------------------------------------------------- publish-to-visible latency


def _ioe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )


def measure_visibility(
    nodes: int = 10, rounds: int = 10, timeout_s: float = 30.0
) -> dict[str, Any]:
    env = {**os.environ, "IOE_PASSPHRASE": "bench passphrase, not a secret"}
    with tempfile.TemporaryDirectory(prefix="ioe-bench-net-") as tmp:
        dirs = [Path(tmp) / f"n{i}" for i in range(nodes)]
        with ThreadPoolExecutor(nodes) as pool:
            inits = list(
                pool.map(lambda d: _ioe("init", "--data-dir", str(d), "--json", env=env), dirs)
            )
        owners = [json.loads(r.stdout.strip().splitlines()[-1])["owner"] for r in inits]
        processes: list[subprocess.Popen[str]] = []
        try:
            first = _start_node(dirs[0], [], env)
            processes.append(first[0])
            bootstrap = ["--bootstrap", first[1]]
            for d in dirs[1:]:
                processes.append(_start_node(d, bootstrap, env)[0])
            _wait(lambda: all(_members(d) == nodes for d in dirs), 60)
            latencies: list[float] = []
            rng = random.Random(1)
            for round_ in range(rounds):
                publisher = rng.randrange(nodes)
                started = time.perf_counter()
                result = call_api(
                    dirs[publisher],
                    "POST",
                    "/v1/profile",
                    {"name": f"n{round_}", "zone": "au/bench"},
                )
                wanted = result["hash"]
                observers = [dirs[i] for i in range(nodes) if i != publisher]
                with ThreadPoolExecutor(len(observers)) as pool:
                    seen = pool.map(
                        _time_until_seen,
                        observers,
                        [owners[publisher]] * len(observers),
                        [wanted] * len(observers),
                        [started] * len(observers),
                        [timeout_s] * len(observers),
                    )
                    latencies += list(seen)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
                if process.stdout is not None:
                    process.stdout.close()
    ordered = sorted(latencies)
    return {
        "nodes": nodes,
        "publishes": rounds,
        "visible_p50_s": round(statistics.median(ordered), 3),
        "visible_p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "visible_max_s": round(ordered[-1], 3),
    }


def _start_node(
    data_dir: Path, extra: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ioe",
            "node",
            "run",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    return process, str(ready["addrs"][0])


def _members(data_dir: Path) -> int:
    try:
        members = call_api(data_dir, "GET", "/v1/peers")["members"]
    except (ApiError, NoRunningNode):
        return 0
    return max((len(m) for m in members.values()), default=0)


def _wait(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("the nodes did not all find each other in time")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` 0.95 → p95)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(len(ordered) * fraction) - 1))]


@contextmanager
def node_pair(prefix: str, extra: Sequence[str] = ()) -> Iterator[tuple[list[Path], list[str]]]:
    """Two ``ioe node run`` processes on loopback, the second bootstrapped from the first, both
    members of each other's core network: yields their data dirs and owner agents, and stops
    them after. ``extra`` is added to both command lines."""
    env = {**os.environ, "IOE_PASSPHRASE": "bench passphrase, not a secret"}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        dirs = [Path(tmp) / "a", Path(tmp) / "b"]
        owners = [
            json.loads(
                _ioe("init", "--data-dir", str(d), "--json", env=env).stdout.splitlines()[-1]
            )["owner"]
            for d in dirs
        ]
        processes: list[subprocess.Popen[str]] = []
        try:
            first, addr = _start_node(dirs[0], list(extra), env)
            processes.append(first)
            processes.append(_start_node(dirs[1], [*extra, "--bootstrap", addr], env)[0])
            _wait(lambda: all(_members(d) == 2 for d in dirs), 60)
            yield dirs, owners
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
                if process.stdout is not None:
                    process.stdout.close()


def _time_until_seen(
    data_dir: Path, agent: str, wanted: str, started: float, timeout_s: float
) -> float:
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        try:
            if call_api(data_dir, "GET", f"/v1/profile/{agent}")["hash"] == wanted:
                return time.perf_counter() - started
        except (ApiError, NoRunningNode):
            pass
        time.sleep(0.02)
    return timeout_s


def bench_net(*, nodes: int = 10, rounds: int = 10, requests: int = 2000) -> dict[str, Any]:
    trips = measure_round_trips(requests)
    visibility = measure_visibility(nodes, rounds)
    return {
        "benchmark": "net",
        **{k: round(v, 1) for k, v in trips.items()},
        "ratio": round(trips["p2p_rtt_per_s"] / trips["tcp_rtt_per_s"], 3),
        "ratio_concurrent": round(trips["p2p_concurrent_per_s"] / trips["tcp_concurrent_per_s"], 3),
        **visibility,
    }


if __name__ == "__main__" and sys.argv[1:] == ["serve-echo"]:
    asyncio.run(_serve_echo())
