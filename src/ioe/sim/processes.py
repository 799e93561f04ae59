"""One real ``ioe node run`` process per simulated agent, on loopback.

Each agent has its own data directory (so its chain can be verified afterwards with ``ioe chain
verify``), unlocked by a 0600 key file inside it (no passphrase to pass around). The first node
listens alone; the others join through it. The node's log (warnings) goes to ``node.log`` in its
data directory. Stopping is SIGTERM, a bounded wait for a clean shutdown, then SIGKILL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ioe.errors import IoEError
from ioe.node.client import ApiError, call_api
from ioe.node.nodefile import NoRunningNode

KEY_FILE = "agent.key"
LOG_FILE = "node.log"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


class SimError(IoEError):
    """A simulation could not be set up or run (a node did not start, did not join...)."""


def agent_dirs(root: Path, agents: int) -> list[Path]:
    """``root/agent-00``, ``root/agent-01``, ...: one data directory per agent."""
    return [root / f"agent-{i:02d}" for i in range(agents)]


def _ioe(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def init_agent(data_dir: Path) -> str:
    """``ioe init`` with a key file in ``data_dir``; returns the owner agent's key text."""
    data_dir.mkdir(parents=True, exist_ok=True)
    done = _ioe(
        "init", "--data-dir", str(data_dir), "--key-file", str(data_dir / KEY_FILE), "--json"
    )
    if done.returncode != 0:
        raise SimError(f"ioe init {data_dir} failed: {done.stderr.strip()[-1000:]}")
    return str(json.loads(done.stdout.strip().splitlines()[-1])["owner"])


@dataclass(slots=True)
class AgentProcess:
    """The node process of one agent."""

    data_dir: Path
    agent: str
    process: subprocess.Popen[str] | None = None
    addr: str = ""
    log: IO[str] | None = field(default=None, repr=False)

    def start(self, bootstrap: str | None = None) -> None:
        """Start ``ioe node run`` and wait (bounded) for its ready line."""
        args = [
            sys.executable,
            "-m",
            "ioe",
            "node",
            "run",
            "--data-dir",
            str(self.data_dir),
            "--key-file",
            str(self.data_dir / KEY_FILE),
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
        ]
        if bootstrap is not None:
            args += ["--bootstrap", bootstrap]
        self.log = (self.data_dir / LOG_FILE).open("a", encoding="utf-8")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = _read_line(self.process, READY_TIMEOUT_S)
        if not line:
            self.stop()
            raise SimError(f"the node of {self.data_dir} did not start (see {LOG_FILE} there)")
        self.addr = str(json.loads(line)["addrs"][0])

    def api(self, method: str, path: str, body: object | None = None, timeout: float = 30) -> Any:
        return call_api(self.data_dir, method, path, body, timeout=timeout)

    def signal_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait at most ``grace_s``, then SIGKILL. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        self.signal_stop()
        try:
            code = process.wait(timeout=max(grace_s, 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(timeout=STOP_GRACE_S)
        if process.stdout is not None:
            process.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None
        self.process = None
        return code


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first stdout line, or "" if none comes within ``timeout_s``."""
    found: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():  # killing the process closes the pipe, which ends the reader
        process.kill()
        reader.join(STOP_GRACE_S)
        return ""
    return found[0] if found else ""


def stop_all(agents: Sequence[AgentProcess], grace_s: float = STOP_GRACE_S) -> list[int | None]:
    """Stop every node: SIGTERM all at once, then a bounded wait shared by all, then kill."""
    for agent in agents:
        agent.signal_stop()
    deadline = time.monotonic() + grace_s
    return [agent.stop(max(0.1, deadline - time.monotonic())) for agent in agents]


def members(agent: AgentProcess) -> int:
    """How many members this node sees in its largest DNA network (0 if it cannot say)."""
    try:
        found = agent.api("GET", "/v1/peers")["members"]
    except (ApiError, NoRunningNode):
        return 0
    return max((len(m) for m in found.values()), default=0)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SimError(f"{what} within {timeout_s:.0f} s")
