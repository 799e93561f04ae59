"""Batch signature checks in worker processes agree with in-process checks."""

from __future__ import annotations

import io
import struct

import pytest

from ioe.crypto.batch import SignatureWorkers, first_bad_signature, serve, signed_message
from ioe.crypto.keys import KeyPair
from ioe.errors import CryptoError

CONTEXT = b"ioe/test/v1"


def checks(count: int, bad: set[int]) -> list[tuple[bytes, bytes]]:
    keys = KeyPair(bytes(range(32)))
    made = []
    for i in range(count):
        message = i.to_bytes(4, "big")
        signature = keys.sign(CONTEXT, message)
        if i in bad:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        made.append(signed_message(keys.agent, CONTEXT, message, signature))
    return made


@pytest.mark.parametrize("bad", [set(), {0}, {7}, {3, 9}, {19}])
def test_first_bad_signature_in_process(bad: set[int]) -> None:
    assert first_bad_signature(checks(20, bad)) == (min(bad) if bad else None)


def test_workers_answer_batches_in_order() -> None:
    batches = [checks(20, set()), checks(20, {5}), checks(3, {0, 2}), checks(0, set())]
    with SignatureWorkers() as workers:
        pending = [workers.submit(batch) for batch in batches]
        assert [p.result() for p in reversed(pending)] == [None, 0, 5, None]


def test_the_worker_loop_speaks_the_documented_frames() -> None:
    request = bytearray(struct.pack("<I", 2))
    for public_key, signed in checks(2, {1}):
        request += public_key + struct.pack("<I", len(signed)) + signed
    answer = io.BytesIO()
    serve(io.BytesIO(bytes(request)), answer)
    assert struct.unpack("<i", answer.getvalue()) == (1,)


def test_a_dead_worker_is_an_error_not_a_hang() -> None:
    workers = SignatureWorkers()
    try:
        for worker in workers._workers:
            worker.process.kill()
            worker.process.wait()
        with pytest.raises(CryptoError):
            workers.submit(checks(2, set())).result()
    finally:
        workers.close()
