"""Child process of the crash test: commits reading batches in a loop, printing each committed
head sequence number only after the commit has returned. Killed with SIGKILL by the test."""

from __future__ import annotations

import sys

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import membrane_proof_for

SEED = bytes(range(32))
START_US = 1_800_000_000_000_000


def main(path: str) -> None:
    dna = core_dna()
    keys = KeyPair(SEED)
    db = SqliteDatabase.open(path, dnas=[dna])
    cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
    cell.genesis(membrane_proof_for(cell.keys), now_us=START_US)
    head = cell.head()
    n = head.seq if head else 0
    while True:
        n += 1
        now = START_US + n * 1_000
        batches = [[{"at_us": now - 10 + i, "values": {"energy_mwh": n}}] for i in range(1 + n % 3)]
        cell.call("telemetry", "record_batches", batches, now_us=now)
        committed = cell.head()
        assert committed is not None
        print(committed.seq, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
