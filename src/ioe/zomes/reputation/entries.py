"""Entry types of the reputation zome."""

from __future__ import annotations

from dataclasses import dataclass

from ioe.errors import EncodingError
from ioe.identity.reputation import ReputationClaim

REPUTATION_CLAIM_ENTRY = "reputation_claim"
CLAIM_LINK = "reputation_claim"
"""Link type: from a claim's subject (agent key) to the action that committed the claim."""


@dataclass(frozen=True, slots=True)
class ReputationClaimEntry:
    """Public: a :class:`ReputationClaim` in its wire form, byte for byte as its claimant signed
    it (the entry carries no field of its own, so the signature covers everything a reader
    weighs)."""

    claim: bytes

    def decoded(self) -> ReputationClaim | str:
        """The claim, or why its bytes are not one (shape only: see ``claim_problem``)."""
        try:
            return ReputationClaim.from_bytes(self.claim)
        except (EncodingError, ValueError, TypeError) as exc:
            return f"malformed reputation claim: {exc}"
