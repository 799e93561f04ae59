"""Signature checks in batches, on other cores.

Verifying a long chain (or a burst of DHT ops) is dominated by Ed25519 verification, and the
decoding and rule checks around it are Python that holds the GIL. Threads would fight over the
GIL between every libsodium call, so batches go to worker *processes* instead, while the caller
decodes and checks the same records on its own core. Each check is sent as libsodium's "signed
message" form (signature + framed message) with the public key, exactly what
``crypto_sign_open`` takes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import nacl.bindings
import nacl.exceptions

from ioe.errors import CryptoError

SignedMessage = tuple[bytes, bytes]
"""(public key, signature + framed message)"""


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


def default_workers() -> int:
    """One worker per core but the caller's own."""
    return max(1, (os.cpu_count() or 1) - 1)


class SignatureWorkers:
    """A pool of processes that check batches of signatures; use as a context manager.

    ``submit`` returns a future with the index of the first bad signature in the batch, or None.
    """

    def __init__(self, workers: int | None = None) -> None:
        try:
            self._pool = ProcessPoolExecutor(
                max_workers=workers or default_workers(),
                mp_context=multiprocessing.get_context("spawn"),
            )
        except (OSError, ValueError) as exc:
            raise CryptoError(f"cannot start signature workers: {exc}") from exc

    def submit(self, checks: Sequence[SignedMessage]) -> Future[int | None]:
        try:
            return self._pool.submit(first_bad_signature, list(checks))
        except (BrokenProcessPool, RuntimeError) as exc:
            raise CryptoError(f"signature workers stopped: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SignatureWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
