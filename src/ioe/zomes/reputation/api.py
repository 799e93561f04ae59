"""Zome functions of the reputation zome."""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.reputation.entries import CLAIM_LINK, ReputationClaimEntry
from ioe.zomes.reputation.validation import REPUTATION_ZOME, claim_entry_problem

coordinator = CoordinatorZome(REPUTATION_ZOME)


@coordinator.function
def publish(ctx: CallContext, payload: Any) -> ActionHash:
    """Publish a signed claim (``payload``: its wire bytes, signed by this agent) and link it from
    its subject. Refused here, before any commit, if validation would refuse it."""
    if not isinstance(payload, bytes):
        raise ZomeCallError("publish takes a reputation claim's wire bytes")
    entry = ReputationClaimEntry(payload)
    problem = claim_entry_problem(entry, ctx.agent)
    if problem:
        raise ZomeCallError(f"not a valid reputation claim: {problem}")
    claim = entry.decoded()
    assert not isinstance(claim, str)
    action = ctx.create(entry)
    ctx.create_link(claim.subject, action, CLAIM_LINK)
    return action


@coordinator.function
def claims_about(ctx: CallContext, payload: Any) -> list[bytes]:
    """The wire forms of the claims about agent ``payload`` (its key bytes) known to this cell.
    (Claims by anyone, from the network: the node's ``/v1/reputation/{agent}/claims``.)"""
    try:
        agent = AgentPubKey(bytes(payload))
    except (TypeError, ValueError, EncodingError) as exc:
        raise ZomeCallError(f"claims_about takes an agent key: {exc}") from None
    found = []
    for link in ctx.get_links(agent, CLAIM_LINK):
        entry = ctx.get_value(ActionHash(link.target), ReputationClaimEntry)
        if entry is not None:
            found.append(entry.claim)
    return found
