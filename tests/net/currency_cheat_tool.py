"""Test helper (run as a script) playing a cheating payer of the currency against real nodes.

    python currency_cheat_tool.py overlimit DATA_DIR ACCOMPLICE_DIR AMOUNT_MC
        DATA_DIR's owner pays ACCOMPLICE_DIR's owner AMOUNT_MC, ignoring its credit limit: the
        transfer is built from both ledger heads and both agents sign the session (the
        accomplice colludes, so every signature is genuine). The payer's own chain refuses to
        commit it (the answer is printed), so the tool builds the payer's record as its chain
        would have written it, without validation, and puts the record's ops in the publish
        queue of DATA_DIR: its ``ioe node run`` publishes them to the authorities.

Both data directories must be stopped (no node running on them). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nodes import PASSPHRASE

from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock
from ioe.encoding import encode
from ioe.engine.cell import CallContext, Scratch
from ioe.engine.countersigning import (
    SESSION_ID_BYTES,
    CountersignedEntry,
    Preflight,
    Response,
    commit_session,
)
from ioe.engine.dht import publishable_ops
from ioe.engine.schema import to_value
from ioe.errors import ValidationError
from ioe.store.dht import SqliteDhtStore
from ioe.zomes.currency.entries import Kind, Transfer
from ioe.zomes.currency.ledger import Position, next_transfer

SESSION_US = 10_000_000


def overlimit(data_dir: Path, accomplice_dir: Path, amount_mc: int) -> dict[str, object]:
    unlock = Unlock(passphrase=PASSPHRASE)
    with (
        Conductor.open(data_dir, unlock) as payer,
        Conductor.open(accomplice_dir, unlock) as accomplice,
    ):
        spender, receiver = payer.owner_cell, accomplice.owner_cell
        spender_at = payer.call(spender, "currency", "ledger_head")
        receiver_at = accomplice.call(receiver, "currency", "ledger_head")
        assert isinstance(spender_at, Position) and isinstance(receiver_at, Position)
        transfer = next_transfer(
            spender.agent,
            spender_at,
            receiver.agent,
            receiver_at,
            amount_mc=amount_mc,
            kind=Kind.TRANSFER,
            memo="beyond my credit",
        )
        entry_type, _ = spender.dna.entry_type_for(Transfer)
        now = payer.clock()
        preflight = Preflight(
            session_id=os.urandom(SESSION_ID_BYTES),
            dna_hash=spender.dna.hash,
            parties=(spender.agent, receiver.agent),
            witness=None,
            entry_zome=entry_type.zome_index,
            entry_index=entry_type.entry_index,
            entry=encode(to_value(transfer)),
            session_time_us=now,
            expires_us=now + SESSION_US,
        )
        responses = []
        for cell in (spender, receiver):
            head = cell.head()
            assert head is not None
            responses.append(Response.sign(cell.keys, preflight, head))
        entry = CountersignedEntry(preflight, tuple(responses))
        try:
            commit_session(spender, entry)
        except ValidationError as exc:
            refused = str(exc)
        else:
            raise SystemExit("the payer's own chain committed an over-limit transfer")
        scratch = Scratch(spender.store)
        CallContext(spender, scratch, now, spender.head()).create(entry)
        [record] = scratch.records
        ops = publishable_ops(record)
        SqliteDhtStore(payer.db, spender.dna.hash).enqueue(ops, payer.clock())
        return {
            "agent": spender.agent.to_text(),
            "receiver": receiver.agent.to_text(),
            "action": record.action_hash.to_text(),
            "seq": record.action.seq,
            "ops": len(ops),
            "own_chain_refused": refused,
        }


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else ""
    if mode != "overlimit" or len(argv) != 4:
        raise SystemExit(__doc__)
    result = overlimit(Path(argv[1]), Path(argv[2]), int(argv[3]))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
