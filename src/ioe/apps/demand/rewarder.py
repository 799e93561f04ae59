"""The rewarder of the Demand Management app: a site meter that attests and pays reductions.

A node started with ``--demand-rewards`` (a site meter: a device enrolled as a ``monitor``)
answers ``demand_rewards.claim`` from any member (an unrestricted grant, as the wallet keeps
for ``ledger_head``). For each claim a plug names, all in the currency zome
(``docs/currency.md``, Issuance and value):

1. fetch it from the network and check it is the caller's and worth paying
   (:func:`~ioe.apps.demand.claims.reduction_problem`);
2. attest it (``ClaimAttestation``, meter-attested, all the claimed energy; as a site meter it
   may attest only its own owner's devices) and wait until the attestation is published;
3. pay the reward with a ``reward`` transfer citing the attestation; the amount is the
   currency's rule (``demand_reduction_reward_mc``), which the plug and every authority
   recompute.

What was attested and paid is kept (setting :data:`PAID_KEY`), so a repeated request pays
nothing twice; the answer says, claim by claim, what was paid for it (now or before), so the
plug can show what reached its wallet. The meter attests the energy the plug claims: it does
not yet compare claims with its own readings (see ``docs/demand-app.md``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ioe.apps.demand.claims import claim_hashes, reduction_problem
from ioe.apps.host import AppHost
from ioe.encoding import Value
from ioe.errors import IoEError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.entries import ReductionClaim

log = logging.getLogger(__name__)

REWARDS_SERVICE = "demand_rewards"
PAID_KEY = "apps.demand.rewarded"
"""The rewarder's record of what it attested and paid, by claim."""
CURRENCY_ZOME = "currency"
ATTESTATION_PUBLISH_S = 10.0


class DemandRewarder:
    """Pays demand-reduction rewards to plugs that claim them (see the module docstring)."""

    def __init__(self, host: AppHost) -> None:
        self.host = host
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self.host.serve(REWARDS_SERVICE, ("claim",), self.serve)

    def _done(self) -> dict[str, dict[str, str]]:
        found = self.host.get_setting(PAID_KEY)
        return dict(found) if isinstance(found, dict) else {}

    def _keep(self, key: str, **values: str) -> None:
        done = self._done()
        done[key] = {**done.get(key, {}), **values}
        self.host.put_setting(PAID_KEY, done)

    async def serve(self, function: str, payload: Value, caller: AgentPubKey) -> object:
        if function != "claim":
            raise ZomeCallError(f"the {REWARDS_SERVICE} service has no function {function!r}")
        hashes = claim_hashes(payload)
        async with self._lock:
            results: dict[ActionHash, dict[str, Any]] = {}
            claims: dict[ActionHash, ReductionClaim] = {}
            attested: list[ActionHash] = []
            for claim_hash in hashes:
                try:
                    claims[claim_hash], fresh = await self._attest(claim_hash, caller)
                except (ZomeCallError, ValidationError) as exc:
                    results[claim_hash] = {"paid": False, "reason": str(exc)}
                    continue
                if fresh is not None:
                    attested.append(fresh)
            if attested:  # the plug's node fetches them to judge the rewards
                await self.host.wait_published(attested, timeout_s=ATTESTATION_PUBLISH_S)
            for claim_hash, claim in claims.items():
                results[claim_hash] = await self._pay(claim_hash, claim, caller)
        items = [{"claim": h.to_text(), **results[h]} for h in hashes]
        return {
            "paid": sum(1 for item in items if item["paid"]),
            "credits_mc": sum(  # paid by this request
                int(item.get("credits_mc", 0)) for item in items if not item.get("again")
            ),
            "claims": items,
        }

    async def _attest(
        self, claim_hash: ActionHash, caller: AgentPubKey
    ) -> tuple[ReductionClaim, ActionHash | None]:
        """The claim, checked, and this meter's attestation of it if made now (None: made
        before)."""
        record = await self.host.fetch_record(claim_hash)
        if record is None or not isinstance(record.value, ReductionClaim):
            raise ZomeCallError(f"no reduction claim {claim_hash.short()} on the network")
        claim = record.value
        if record.author != caller:
            raise ZomeCallError("a reward is claimed by the device that reduced")
        problem = reduction_problem(claim)
        if problem:
            self.host.observe(caller, claim_hash, kept=False)
            raise ZomeCallError(problem)
        if "attestation" in self._done().get(claim_hash.to_text(), {}):
            return claim, None
        attestation = await self.host.call_zome(CURRENCY_ZOME, "attest", {"claim": claim_hash})
        assert isinstance(attestation, ActionHash)
        self._keep(claim_hash.to_text(), attestation=attestation.to_text())
        self.host.observe(caller, claim_hash, kept=True)
        return claim, attestation

    async def _pay(
        self, claim_hash: ActionHash, claim: ReductionClaim, caller: AgentPubKey
    ) -> dict[str, Any]:
        done = self._done().get(claim_hash.to_text(), {})
        if "payment" in done:
            before: dict[str, Any] = {"paid": True, "again": True}
            if done.get("amount_mc", "").isdigit():
                before["credits_mc"] = int(done["amount_mc"])
            return before
        provenance: dict[str, Value] = {
            "energy_wh": claim.avoided_wh,
            "source": "grid_mix",
            "clean": True,  # energy not drawn burns nothing
            "origin_zone": claim.zone,
            "trust": "meter_attested",
            "claim": claim_hash,
        }
        attestation = ActionHash.from_text(done["attestation"])
        terms: dict[str, Value] = {"reward": "demand_reduction", "cites": attestation}
        try:
            paid = await self.host.pay(
                caller,
                None,  # the currency's rule prices it
                kind="reward",
                provenance=provenance,
                terms=terms,
                memo="demand reduction at a price peak",
            )
        except (TimeoutError, IoEError) as exc:
            log.warning("reward for %s not paid: %s", claim_hash.short(), exc)
            return {"paid": False, "reason": str(exc)}
        self._keep(
            claim_hash.to_text(), payment=paid.action.to_text(), amount_mc=str(paid.amount_mc)
        )
        return {"paid": True, "credits_mc": paid.amount_mc}
