"""The process the crash checks kill: it commits telemetry batches to one chain in a loop and
prints each commit only after the commit has returned, so whatever it printed must survive a
SIGKILL at any later moment.

Run as ``python -m ioe.check.crash_writer DB_PATH``. Its output, one line each:

* ``ready``: the database is open; genesis comes next (a kill soon after lands in genesis);
* ``SEQ HASH``: the chain's head after a commit returned (sequence number and action hash).

It writes until it is killed. A second run on the same file carries on from the head, as a
restarted node does.
"""

from __future__ import annotations

import sys

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.ports import ChainHead
from ioe.store.sqlite import SqliteDatabase
from ioe.testing.membership import membrane_proof_for

SEED = bytes(range(32))
START_US = 1_800_000_000_000_000
READY = "ready"


def report(head: ChainHead | None) -> None:
    """Print a committed head (nothing if there is none yet), as one write: a kill cannot
    leave half a line that reads as another commit."""
    if head is not None:
        sys.stdout.write(f"{head.seq} {head.hash.to_text()}\n")
        sys.stdout.flush()


def main(path: str) -> None:
    dna = core_dna()
    keys = KeyPair(SEED)
    db = SqliteDatabase.open(path, dnas=[dna])
    cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
    print(READY, flush=True)
    cell.genesis(membrane_proof_for(cell.keys), now_us=START_US)
    head = cell.head()
    report(head)
    n = head.seq if head else 0
    while True:
        n += 1
        now = START_US + n * 1_000
        batches = [[{"at_us": now - 10 + i, "values": {"energy_mwh": n}}] for i in range(1 + n % 3)]
        cell.call("telemetry", "record_batches", batches, now_us=now)
        report(cell.head())


if __name__ == "__main__":
    main(sys.argv[1])
