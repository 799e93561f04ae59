"""A child process whose output lines are collected as they come, so a check can wait for a
line, act at a moment of its choosing (SIGKILL, mostly) and still have every line the child
printed before it died.

Every wait is bounded; :meth:`Child.close` always reaps the process and its pipes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

STDERR_TAIL = 2000


class ChildFailed(RuntimeError):
    """The child did not do what was waited for in time, or died by itself."""


class Child:
    """``python -m MODULE ARGS`` with its stdout read into :attr:`lines` by a thread."""

    def __init__(
        self, module: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else dict(env),
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)
            if len(self._stderr) > 200:  # keep the tail only: a chatty child stays bounded
                del self._stderr[:100]

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-STDERR_TAIL:]

    def wait_lines(self, count: int, timeout_s: float) -> list[str]:
        """Wait until the child has printed ``count`` lines; :class:`ChildFailed` if it exits
        or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildFailed(f"no line {count} within {timeout_s} s")
                if self.process.poll() is not None and not self._readers[0].is_alive():
                    raise ChildFailed(
                        f"exited with {self.process.returncode}: {self.stderr_tail()}"
                    )
                self._changed.wait(min(left, 0.1))
            return list(self.lines)

    def kill(self, timeout_s: float = 30.0) -> int:
        """SIGKILL the child and reap it; its exit code (``-SIGKILL`` unless it had already
        died by itself). Every line it printed is in :attr:`lines` afterwards."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        code = self.process.wait(timeout=timeout_s)
        for reader in self._readers:
            reader.join(timeout=timeout_s)
        return code

    def close(self) -> None:
        """Make sure the child is gone and its pipes are closed (idempotent)."""
        if self.process.poll() is None:
            self.kill()
        for reader in self._readers:
            reader.join(timeout=30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
