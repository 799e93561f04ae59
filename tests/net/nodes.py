"""Helpers to run real ``ioe node run`` processes on loopback for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioe.identity.pairing import normalise_code
from ioe.node.client import call_api
from ioe.testing import faulty_node
from ioe.testing.faults import InjectedFaults

PASSPHRASE = "a test passphrase, never a real one"
ZONE = "au/nsw/newtown"


def env() -> dict[str, str]:
    return {**os.environ, "IOE_PASSPHRASE": PASSPHRASE}


def init(data_dir: Path) -> str:
    """Create an owner account; returns the owner agent key text."""
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "init", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=True,
    )
    return str(json.loads(done.stdout.strip().splitlines()[-1])["owner"])


@dataclass
class NodeProcess:
    data_dir: Path
    owner: str
    args: list[str] = field(default_factory=list)
    faults: InjectedFaults | None = None
    """Faults of the next start: run through :mod:`ioe.testing.faulty_node` (None: the plain
    ``ioe node run``)."""
    process: subprocess.Popen[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, *extra: str) -> NodeProcess:
        self.args = list(extra) or self.args
        if self.faults is None:
            program = [sys.executable, "-m", "ioe", "node", "run"]
        else:
            program = faulty_node.command(self.faults)
        self.process = subprocess.Popen(
            [
                *program,
                "--data-dir",
                str(self.data_dir),
                "--listen",
                "127.0.0.1:0",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"node did not start: {self.process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        self.info = json.loads(line)
        return self

    @property
    def addr(self) -> str:
        return str(self.info["addrs"][0])

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        return call_api(self.data_dir, method, path, body, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self.process = None
        return code


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded); returns that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the predicate may fail until the network settles
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


def members(node: NodeProcess) -> set[str]:
    """The agents a running node counts as members of its DNAs."""
    found = node.api("GET", "/v1/peers")["members"]
    return {m["agent"] for agents in found.values() for m in agents}


def blocked(data_dir: Path) -> list[dict[str, Any]]:
    """``ioe node blocked --json`` of a data directory."""
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "node", "blocked", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------------------------- devices


def ioe(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
        check=False,
    )


def popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ioe", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def enroll(
    owner_dir: Path,
    bootstrap: str,
    data: Path,
    kind: str,
    name: str,
    zone: str = ZONE,
    *enroll_flags: str,
) -> str:
    """Plug a device in, enroll it with its pairing code (and ``enroll_flags``, e.g.
    ``--no-trade``); its enrolled agent key."""
    device = popen(
        "device", "plug-in", "--data-dir", str(data), "--type", kind, "--name", name,
        "--zone", zone, "--no-mdns", "--listen", "127.0.0.1:0", "--bootstrap", bootstrap,
    )  # fmt: skip
    try:
        assert device.stdout is not None
        first = json.loads(device.stdout.readline())
        code = normalise_code((data / "pairing-code").read_text())

        def pending() -> bool:
            done = ioe("owner", "pending", "--data-dir", str(owner_dir), "--json")
            return any(p["device"] == first["agent"] for p in json.loads(done.stdout or "[]"))

        wait_for(pending, timeout=30)
        done = ioe(
            "owner", "enroll", "--data-dir", str(owner_dir), first["agent"], "--code", code,
            *enroll_flags, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        second = json.loads(device.stdout.readline())
        assert second["enrollment"] == "enrolled"
        return str(second["agent"])
    finally:
        stop(device)


def run_device(data: Path, bootstrap: str, sim: str, name: str, *extra: str) -> Any:
    process = popen(
        "device", "run", "--data-dir", str(data), "--driver", "sim", "--sim", sim,
        "--name", name, "--no-mdns", "--listen", "127.0.0.1:0", "--bootstrap", bootstrap,
        "--interval", "0.5", "--batch-every", "2", *extra,
    )  # fmt: skip
    assert process.stdout is not None
    json.loads(process.stdout.readline())  # started
    return process


def ioe_json(*args: str) -> Any:
    """``ioe ARGS`` that must succeed; its last line of output as JSON."""
    done = ioe(*args, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
