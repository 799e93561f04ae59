"""What a node co-signs when another agent asks: only the entry types it was told to accept."""

from __future__ import annotations

import pytest

from ioe.node.runtime import Node
from ioe.services.countersign import CountersignError
from ioe.zomes.profile.entries import Profile

pytestmark = pytest.mark.anyio


async def test_a_node_co_signs_nothing_by_default(make_pair) -> None:
    alice, bob = await make_pair()
    await _refused(alice, bob, "does not co-sign 'profile' entries")


async def test_a_node_co_signs_the_types_it_accepts(make_pair) -> None:
    alice, bob = await make_pair(countersign_accept=("profile",))
    cell = alice.conductor.owner_cell
    countersigner = alice.countersigners[cell.dna.hash]
    action, entry = await countersigner.start_session(
        cell, [bob.conductor.owner_cell.agent], Profile("Deal", "au/nsw"), timeout_s=5
    )
    assert entry.preflight.parties == (cell.agent, bob.conductor.owner_cell.agent)
    assert cell.get(action) is not None


async def _refused(alice: Node, bob: Node, reason: str) -> None:
    cell = alice.conductor.owner_cell
    head = cell.head()
    with pytest.raises(CountersignError, match=reason):
        await alice.countersigners[cell.dna.hash].start_session(
            cell, [bob.conductor.owner_cell.agent], Profile("Deal", "au/nsw"), timeout_s=5
        )
    assert cell.head() == head and cell.lock is None
    assert bob.conductor.owner_cell.lock is None
