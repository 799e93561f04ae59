"""A real mosquitto broker on a free loopback port, for tests of MQTT adapters.

The broker runs from a generated minimal configuration (one listener on 127.0.0.1, anonymous
clients allowed, no persistence), so nothing it sees outlives it: a restart starts it empty on the
same port, as a real broker comes back after a crash without retained state. ``start``/``stop``
block (for fixtures); ``astart``/``astop``/``arestart`` wait without blocking the event loop (for
tests that take the broker away under running clients).

    from ioe.testing.mosquitto import mosquitto_fixture
    mosquitto = mosquitto_fixture()          # in a conftest.py

    def test_x(mosquitto: MosquittoBroker) -> None:
        ... mosquitto.host, mosquitto.port ...
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

HOST = "127.0.0.1"
READY_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0
_POLL_S = 0.02


class MosquittoUnavailable(RuntimeError):
    """No mosquitto executable on this machine."""


def find_mosquitto() -> str:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.access("/usr/sbin/mosquitto", os.X_OK):
        return "/usr/sbin/mosquitto"
    raise MosquittoUnavailable("mosquitto is not installed (Debian package 'mosquitto')")


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker:
    """One mosquitto process; its port stays the same across restarts."""

    def __init__(self, port: int | None = None, *, executable: str | None = None) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self._executable = executable or find_mosquitto()
        self._dir = Path(tempfile.mkdtemp(prefix="ioe-mosquitto-"))
        self._config = self._dir / "mosquitto.conf"
        self._log = self._dir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:  # as root, mosquitto would switch to a "mosquitto" user
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        self._config.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _spawn(self) -> None:
        if self.running:
            raise RuntimeError("mosquitto is already running")
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [self._executable, "-c", str(self._config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def _ready_or_failed(self) -> bool:
        """True once it accepts connections; raises if the process died."""
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"mosquitto exited on port {self.port}: {self.log_tail()}")
        return _accepts(self.host, self.port)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        """Start and wait (blocking) until it accepts connections."""
        self._spawn()
        deadline = time.monotonic() + READY_DEADLINE_S
        while not self._ready_or_failed():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on port {self.port} in time")
            time.sleep(_POLL_S)

    def stop(self, *, graceful: bool = False) -> None:
        """Stop (blocking) and wait until the process is gone.

        By default the broker is killed, as in a crash (and at once; a graceful SIGTERM stop
        takes mosquitto about 0.1 s). Clients see their connection drop either way.
        """
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if graceful:
            process.terminate()
            try:
                process.wait(timeout=STOP_DEADLINE_S)
                return
            except subprocess.TimeoutExpired:
                pass
        process.kill()
        process.wait(timeout=STOP_DEADLINE_S)

    async def astart(self) -> None:
        """Start without blocking the event loop."""
        self._spawn()
        with anyio.fail_after(READY_DEADLINE_S):
            while not self._ready_or_failed():
                await anyio.sleep(_POLL_S)

    async def astop(self, *, graceful: bool = False) -> None:
        """Stop without blocking the event loop (killed, as in a crash, unless ``graceful``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if graceful:
            process.terminate()
            with anyio.move_on_after(STOP_DEADLINE_S):
                while process.poll() is None:
                    await anyio.sleep(_POLL_S)
        if process.poll() is None:
            process.kill()
            with anyio.fail_after(STOP_DEADLINE_S):
                while process.poll() is None:
                    await anyio.sleep(_POLL_S)

    async def arestart(self, down_s: float = 0.0, *, graceful: bool = False) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port (empty)."""
        await self.astop(graceful=graceful)
        await anyio.sleep(down_s)
        await self.astart()

    def cleanup(self) -> None:
        """Stop and remove the generated configuration and log."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def running_mosquitto() -> Iterator[MosquittoBroker]:
    """A started broker, stopped on exit. Retries once on a port taken in the meantime."""
    for attempt in range(2):
        broker = MosquittoBroker()
        try:
            broker.start()
        except RuntimeError:
            broker.cleanup()
            if attempt:
                raise
            continue
        try:
            yield broker
        finally:
            broker.cleanup()
        return


def mosquitto_fixture(*, scope: Any = "function") -> Callable[..., Iterator[MosquittoBroker]]:
    """A pytest fixture giving a running broker (the test is skipped if mosquitto is missing).

    Function scope by default: every test gets an empty broker it may stop and restart.
    """

    @pytest.fixture(scope=scope)
    def mosquitto() -> Iterator[MosquittoBroker]:
        try:
            find_mosquitto()
        except MosquittoUnavailable as missing:
            pytest.skip(str(missing))
        with running_mosquitto() as broker:
            yield broker

    return mosquitto
