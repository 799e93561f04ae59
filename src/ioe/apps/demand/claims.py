"""Reduction claims of the Demand Management app: what a plug claims, what a rewarder pays.

Pure: the plug turns an off-period's decisions into ``currency.claim_reduction`` payloads; a
rewarder parses a request naming claims and judges each claim before attesting it.
"""

from __future__ import annotations

from typing import Any

from ioe.drivers.sim.plug import PLUG_MAX_W
from ioe.encoding import Value
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.currency.entries import ReductionClaim
from ioe.zomes.currency.rewards import price_cents

MAX_CLAIM_INTERVALS = 288


def reduction_claims(
    decisions: list[dict[str, Any]], *, interval_s: int, zone: str
) -> list[dict[str, Value]]:
    """The ``currency.claim_reduction`` payloads of an off-period: one per off interval that
    earned credits (energy avoided while the price stood above its average), priced as the
    market stood then (integer hundredths: the claim crosses the network as canonical CBOR,
    which has no floats)."""
    return [
        {
            "avoided_wh": int(d["wh"]),
            "zone": zone,
            "start_us": d["end_us"] - interval_s * 1_000_000,
            "end_us": d["end_us"],
            "price_cents": price_cents(d["price"]),
            "average_cents": price_cents(d["average"]),
        }
        for d in decisions
        if d["credits_mc"] > 0  # an interval at a peak (``report.interval_credits_mc``)
    ]


def claim_hashes(payload: Any) -> list[ActionHash]:
    """The claims a ``demand_rewards.claim`` request names (``{"claims": [action hash text,
    ...]}``, 1 to :data:`MAX_CLAIM_INTERVALS`, no repeats); ``ZomeCallError`` otherwise."""
    if not isinstance(payload, dict) or set(payload) != {"claims"}:
        raise ZomeCallError('a reward request is {"claims": [action hash, ...]}')
    raw = payload["claims"]
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_CLAIM_INTERVALS:
        raise ZomeCallError(f"a reward request names 1 to {MAX_CLAIM_INTERVALS} claims")
    hashes = []
    for item in raw:
        try:
            hashes.append(ActionHash.from_text(item) if isinstance(item, str) else None)
        except ValueError:
            hashes.append(None)
    if None in hashes:
        raise ZomeCallError("each claim is named by its action hash (text)")
    if len(set(hashes)) != len(hashes):
        raise ZomeCallError("a claim is named once")
    return [h for h in hashes if h is not None]


def reduction_problem(claim: ReductionClaim) -> str | None:
    """Why a rewarder does not pay for ``claim``, or None. Beyond what validation checks:
    a claim covers one market interval, no more energy than a 16 A plug draws in it, at a
    price above its average (a peak)."""
    duration_s = (claim.end_us - claim.start_us) // 1_000_000
    if not 60 <= duration_s <= 3600:
        return "a claim covers one market interval (1 to 60 minutes)"
    most_wh = int(PLUG_MAX_W * duration_s // 3600)
    if claim.avoided_wh > most_wh:
        return f"{claim.avoided_wh} Wh is more than a plug draws in {duration_s} s ({most_wh})"
    if claim.price_cents <= claim.average_cents:
        return "a reduction is rewarded only while the price is above its average"
    return None
