"""A payment's or a receipt's countersigning session when both cells are in this process (tests,
simulations): the same policy, signatures and commits as a session over the network, without one.
"""

from __future__ import annotations

from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response, commit_session
from ioe.engine.schema import to_value
from ioe.errors import ChainError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.currency.api import policy
from ioe.zomes.currency.entries import Transfer

DEFAULT_SESSION_TIMEOUT_US = 10_000_000


def countersign_in_process(
    initiator: Cell,
    other: Cell,
    value: object,
    *,
    session_id: bytes,
    now_us: int,
    timeout_us: int = DEFAULT_SESSION_TIMEOUT_US,
) -> tuple[ActionHash, ActionHash]:
    """Countersign and commit ``value`` (a transfer or a consumption receipt) on both chains
    when both cells are in this process (tests, simulations): ``other``'s policy is asked,
    both sign their heads, then each commits the set, the initiator first. Returns (the
    initiator's action, the other's action). Raises ``ZomeCallError`` if ``other`` refuses,
    ``ValidationError`` if a chain's rules do (a refusal at the initiator leaves both chains
    unchanged)."""
    entry_type, _ = initiator.dna.entry_type_for(type(value))
    preflight = Preflight(
        session_id=session_id,
        dna_hash=initiator.dna.hash,
        parties=(initiator.agent, other.agent),
        witness=None,
        entry_zome=entry_type.zome_index,
        entry_index=entry_type.entry_index,
        entry=encode(to_value(value)),
        session_time_us=now_us,
        expires_us=now_us + timeout_us,
    )
    reason = policy(other, preflight, value)
    if reason is not None:
        raise ZomeCallError(f"the counterparty refuses: {reason}")
    responses = []
    for cell in (initiator, other):
        head = cell.head()
        if head is None:
            raise ChainError(f"{cell.agent.short()} has no chain")
        responses.append(Response.sign(cell.keys, preflight, head))
    entry = CountersignedEntry(preflight, tuple(responses))
    return commit_session(initiator, entry), commit_session(other, entry)


def commit_in_process(
    spender: Cell,
    receiver: Cell,
    transfer: Transfer,
    *,
    session_id: bytes,
    now_us: int,
    timeout_us: int = DEFAULT_SESSION_TIMEOUT_US,
) -> tuple[ActionHash, ActionHash]:
    """Countersign and commit ``transfer`` on both chains in one process (the spender
    initiates, the receiver's policy is asked). Returns (spender's action, receiver's
    action); see :func:`countersign_in_process`."""
    try:
        return countersign_in_process(
            spender, receiver, transfer, session_id=session_id, now_us=now_us, timeout_us=timeout_us
        )
    except ZomeCallError as exc:
        raise ZomeCallError(str(exc).replace("the counterparty", "the receiver", 1)) from exc
