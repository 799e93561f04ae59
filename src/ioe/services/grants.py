"""A function a node opens to every member: an unrestricted grant, made once.

The wallet opens ``currency.ledger_head`` (a payer needs the receiver's head); a rewarder opens
``demand_rewards.claim``. Both make the grant at start unless a live unrestricted grant already
covers the function, and try again later if the chain is locked by a countersigning session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ioe.engine.capability import CapAccess, CapGrant
from ioe.engine.cell import Cell
from ioe.errors import ChainLocked

ZomeCall = Callable[[Cell, str, str, object], object]
"""``call(cell, zome, function, payload)``: a node's zome call, whose writes are published."""

log = logging.getLogger(__name__)


def ensure_open_grant(call: ZomeCall, cell: Cell, zome: str, function: str, tag: str) -> bool:
    """Make sure ``cell`` holds an unrestricted grant of ``zome.function``; False if it could
    not be made now (the chain is locked: call again later)."""
    grants = call(cell, "capability", "list_grants", None)
    assert isinstance(grants, dict)
    for grant in grants.values():
        assert isinstance(grant, CapGrant)
        if grant.access is CapAccess.UNRESTRICTED and grant.covers(zome, function):
            return True
    payload = {"tag": tag, "access": "unrestricted", "functions": [f"{zome}.{function}"]}
    try:
        call(cell, "capability", "grant", payload)
    except ChainLocked:
        log.info("chain locked by a session: the %s.%s grant is made later", zome, function)
        return False
    return True
