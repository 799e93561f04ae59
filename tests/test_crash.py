"""Kill -9 mid-write loses nothing whose commit had returned, and the chain still verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ioe.check.crash_writer import READY, SEED
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.store.sqlite import SqliteDatabase

WRITER = "ioe.check.crash_writer"


def _run_and_kill(db_path: Path, delay_s: float) -> int:
    """Start the writer, SIGKILL it after ``delay_s`` of writing; the last seq it reported."""
    child = subprocess.Popen(
        [sys.executable, "-m", WRITER, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported: list[int] = []
    started = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() != READY:
                reported.append(int(line.split()[0]))
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(timeout=60), "the writer never committed anything"
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        reader.join(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return reported[-1]


@pytest.mark.process
@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_write_loses_no_committed_record(tmp_path: Path, round_: int) -> None:
    db_path = tmp_path / "crash.sqlite"
    rng = random.Random(round_)
    dna = core_dna()
    agent = KeyPair(SEED).agent
    last_reported = 0
    for _kill in range(2):  # kill, reopen and write again, kill again: recovery is repeatable
        last_reported = _run_and_kill(db_path, rng.uniform(0.05, 0.6))
        with SqliteDatabase.open(db_path, dnas=[dna]) as db:  # verifies incrementally on open
            head = db.chain(dna.hash, agent).head()
            assert head is not None
            assert head.seq >= last_reported, "a record whose commit had returned was lost"
            assert db.verify_all({dna.hash: dna}) == head.seq + 1
    assert last_reported > 4
