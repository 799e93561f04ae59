"""Integrity rules of the reputation zome (pure: no clock, no I/O).

A ``reputation_claim`` entry is valid when its bytes decode as a :class:`ReputationClaim` that
:func:`claim_problem` accepts (a version this build knows, sane score and basis, not about its
own claimant, signed by the claimant) and its author is the claimant: nobody publishes words in
someone else's name, even words that person signed. The score itself is an opinion and is not
judged.

A ``reputation_claim`` link goes from the claim's subject to the author's own claim entry.
"""

from __future__ import annotations

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.links import AgentLinkRule
from ioe.engine.records import CreateLink, Visibility
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.hashing import AgentPubKey
from ioe.identity.reputation import claim_problem
from ioe.zomes.reputation.entries import CLAIM_LINK, REPUTATION_CLAIM_ENTRY, ReputationClaimEntry

REPUTATION_ZOME = "reputation"


def claim_entry_problem(entry: ReputationClaimEntry, author: AgentPubKey) -> str | None:
    """Why ``entry`` committed by ``author`` is not a valid claim, or None."""
    claim = entry.decoded()
    if isinstance(claim, str):
        return claim
    problem = claim_problem(claim)
    if problem:
        return problem
    if claim.claimant != author:
        return "a reputation claim is published by its own claimant"
    return None


def _subject(entry: ReputationClaimEntry) -> AgentPubKey | None:
    claim = entry.decoded()
    return None if isinstance(claim, str) else claim.subject


CLAIM_LINK_RULE = AgentLinkRule(
    entry=ReputationClaimEntry,
    subject=_subject,
    not_agent_link="a reputation link goes from the subject's agent key to a claim",
    not_own_entry="a reputation link points at the author's own claim entry",
    not_entry="a reputation link points at a reputation claim",
    not_subject="a reputation link goes from the subject of its claim",
)


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    if isinstance(op.app_entry, ReputationClaimEntry):
        problem = claim_entry_problem(op.app_entry, action.author)
        if problem:
            return Invalid(problem)
    if isinstance(action, CreateLink) and op.type in (
        OpType.STORE_RECORD,
        OpType.REGISTER_ADD_LINK,
    ):
        return CLAIM_LINK_RULE.check(action, host)
    return VALID


integrity = IntegrityZome(
    name=REPUTATION_ZOME,
    version="1",
    entry_defs=(EntryDef(REPUTATION_CLAIM_ENTRY, ReputationClaimEntry, Visibility.PUBLIC),),
    link_types=(CLAIM_LINK,),
    validate=validate,
)

__all__ = ["REPUTATION_ZOME", "claim_entry_problem", "integrity", "validate"]
