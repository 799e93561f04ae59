"""Faults a test switches on in a node (:class:`ioe.faults.Faults`), in this process or,
through :mod:`ioe.testing.faulty_node`, in a node process of its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ioe.engine.cell import Cell
from ioe.errors import ZomeCallError
from ioe.faults import SessionPoint
from ioe.hashing import AgentPubKey
from ioe.zomes.currency import api as currency
from ioe.zomes.currency.entries import Kind, Transfer
from ioe.zomes.currency.ledger import LedgerError, Position, next_transfer

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86
"""The exit status of a process ended at its crash point (tests wait for it)."""


@dataclass(frozen=True, slots=True)
class InjectedFaults:
    """``crash_at``: the process exits (:data:`CRASH_EXIT_CODE`, no cleanup, as in a power
    cut) when a countersigning session reaches that point. ``unchecked_pay``: a payer sends
    the transfer as built from its chain and the receiver's head, skipping its own rules, so
    that the receiver's refusal can be seen."""

    crash_at: SessionPoint | None = None
    unchecked_pay: bool = False

    def __post_init__(self) -> None:
        if self.unchecked_pay:
            log.warning("test fault injection: payments skip the payer's own checks")

    def reached(self, point: SessionPoint) -> None:
        if point == self.crash_at:
            log.warning("test fault injection: exiting at %s", point)
            os._exit(CRASH_EXIT_CODE)

    def prepare_transfer(
        self, cell: Cell, to: AgentPubKey, payload: Mapping[str, Any], now_us: int
    ) -> Transfer | None:
        if not self.unchecked_pay:
            return None
        return unchecked_transfer(cell, to, payload, now_us)


def unchecked_transfer(
    cell: Cell, to: AgentPubKey, payload: Mapping[str, Any], now_us: int
) -> Transfer:
    """The transfer ``currency.prepare_payment`` would build from ``payload``, without its
    checks (over the limit, say): only the ledger arithmetic is done."""
    own = cell.call(currency.coordinator.name, "ledger_head", now_us=now_us)
    assert isinstance(own, Position)
    provenance, terms = payload.get("provenance"), payload.get("terms")
    try:
        return next_transfer(
            cell.agent,
            own,
            to,
            currency.parse_position(payload["receiver_head"]),
            amount_mc=payload["amount_mc"],
            kind=Kind(payload["kind"]),
            provenance=None if provenance is None else currency.parse_provenance(provenance),
            memo=payload["memo"],
            terms=None if terms is None else currency.parse_terms(terms),
        )
    except (LedgerError, ValueError) as exc:
        raise ZomeCallError(str(exc)) from exc
