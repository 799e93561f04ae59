"""Signature checks in batches, on other cores.

Verifying a long chain (or a burst of DHT ops) is dominated by Ed25519 verification, and the
decoding and rule checks around it are Python that holds the GIL. Threads would fight over the
GIL between every libsodium call, so batches go to worker *processes* instead, while the caller
decodes and checks the same records on its own core.

Workers are plain child processes (``python -m ioe.crypto.batch``) speaking a tiny framed
protocol over their stdin/stdout, so nothing depends on how the caller's program was started
(multiprocessing's spawn would re-import the caller's ``__main__``). A request is::

    u32 count, then per check: 32-byte public key, u32 length, signed message
    (signature + context + 0x00 + message: what libsodium's crypto_sign_open takes)

and the answer is one i32: the index of the first bad signature, or -1. Answers come in request
order.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import BinaryIO

import nacl.bindings
import nacl.exceptions

from ioe.errors import CryptoError

SignedMessage = tuple[bytes, bytes]
"""(public key, signature + framed message)"""

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
MAX_BATCH = 65536
MAX_MESSAGE = 1 << 20


def signed_message(
    public_key: bytes, context: bytes, message: bytes, signature: bytes
) -> SignedMessage:
    """One check in the form the workers take (same framing as :func:`ioe.crypto.keys.verify`)."""
    return (bytes(public_key), bytes(signature) + context + b"\x00" + bytes(message))


def first_bad_signature(checks: Sequence[SignedMessage]) -> int | None:
    """Index of the first check that fails, or None when all pass."""
    open_signed = nacl.bindings.crypto_sign_open
    for index, (public_key, signed) in enumerate(checks):
        try:
            open_signed(signed, public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            return index
    return None


class PendingCheck:
    """The answer to one submitted batch; :meth:`result` waits for it."""

    __slots__ = ("_answer", "_answered", "_worker")

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._answered = False
        self._answer: int | None = None

    def result(self) -> int | None:
        while not self._answered:
            self._worker.read_one()
        return self._answer

    def _set(self, answer: int | None) -> None:
        self._answer, self._answered = answer, True


class _Worker:
    def __init__(self) -> None:
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ioe.crypto.batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            raise CryptoError(f"cannot start a signature worker: {exc}") from exc
        self.waiting: deque[PendingCheck] = deque()

    def submit(self, checks: Sequence[SignedMessage]) -> PendingCheck:
        parts = [_U32.pack(len(checks))]
        for public_key, signed in checks:
            parts += (public_key, _U32.pack(len(signed)), signed)
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(b"".join(parts))
            stdin.flush()
        except OSError as exc:
            raise CryptoError(f"signature worker stopped: {exc}") from exc
        pending = PendingCheck(self)
        self.waiting.append(pending)
        return pending

    def read_one(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        raw = stdout.read(_I32.size)
        if len(raw) != _I32.size:
            raise CryptoError("signature worker stopped unexpectedly")
        (index,) = _I32.unpack(raw)
        self.waiting.popleft()._set(None if index < 0 else index)

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a worker that died leaves a broken pipe
                    stream.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SignatureWorkers:
    """Child processes that check batches of signatures; use as a context manager.

    ``submit`` returns a :class:`PendingCheck` whose ``result()`` is the index of the first bad
    signature in the batch, or None.
    """

    def __init__(self, workers: int = 1) -> None:
        self._workers = [_Worker() for _ in range(max(1, workers))]
        self._next = 0

    def submit(self, checks: Sequence[SignedMessage]) -> PendingCheck:
        if len(checks) > MAX_BATCH:
            raise CryptoError(f"at most {MAX_BATCH} checks per batch")
        worker = self._workers[self._next]
        self._next = (self._next + 1) % len(self._workers)
        return worker.submit(checks)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> SignatureWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker loop: answer batches until the input closes."""
    while (header := _read_exact(stdin, _U32.size)) is not None:
        (count,) = _U32.unpack(header)
        if count > MAX_BATCH:
            raise SystemExit("batch too large")
        checks: list[SignedMessage] = []
        for _ in range(count):
            item = _read_exact(stdin, 32 + _U32.size)
            if item is None:
                return
            (length,) = _U32.unpack(item[32:])
            if length > MAX_MESSAGE:
                raise SystemExit("message too large")
            signed = _read_exact(stdin, length)
            if signed is None:
                return
            checks.append((item[:32], signed))
        bad = first_bad_signature(checks)
        stdout.write(_I32.pack(-1 if bad is None else bad))
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
