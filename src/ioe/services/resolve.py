"""Fetch what a write or a judgement cites, then try again.

A zome call that validates a record citing another agent's records (a reward citing a meter's
attestation, an attestation citing a plug's claim) can only be judged once those records are
here. The engine says which are missing (:class:`~ioe.errors.MissingDependencies`); the DNA
network fetches them (``DnaNetwork.fetch_missing``) and caches them, so the cell's ``reader``
(the network's store) sees them, and the call is made again, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from ioe.dht.service import DnaNetwork
from ioe.errors import MissingDependencies
from ioe.hashing import ActionHash

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ROUNDS = 6
"""Each round fetches one layer of citations (a reward → its attestation → its claim → the
claimant's chain); six is more than any currency record needs."""


async def resolving(dht: DnaNetwork, attempt: Callable[[], T], rounds: int = MAX_ROUNDS) -> T:
    """``attempt()``, fetching what it reports missing and calling it again (at most
    ``rounds`` fetches). Re-raises :class:`MissingDependencies` when a round brings nothing
    new: the records are not to be had now."""
    for _ in range(rounds):
        try:
            return attempt()
        except MissingDependencies as exc:
            if not await dht.fetch_missing(exc.deps):
                raise
            log.debug("fetched %s; trying again", exc)
    return attempt()


async def prefetch(dht: DnaNetwork, hashes: Iterable[ActionHash]) -> None:
    """Fetch records a zome function will read (``ctx.get``) before it is called."""
    for action_hash in hashes:
        record = await dht.get_record(action_hash)
        if record is not None:
            await dht.get_agent_activity(record.action.author)
