"""Issuance between separate ``ioe node run`` processes on loopback: credit for energy needs an
attestation, whoever builds the transfer.

A plug-like agent claims a demand reduction (``currency.claim_reduction`` on its own node), and
another agent tries to reward it citing the bare claim instead of a distributor's attestation:

- the payer's own node refuses to build it (``POST /v1/wallet/pay`` → 400), after fetching the
  claim from the DHT to see what it is;
- a payer that skips its own checks (``InjectedFaults(unchecked_pay=True)``) is refused by the
  receiver's node, which fetches the cited record itself before it judges the session (409).

Nothing is committed on either chain: both balances stay at zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, init, members, wait_for

from ioe.hashing import ActionHash
from ioe.node.client import ApiError
from ioe.testing.faults import InjectedFaults

pytestmark = pytest.mark.process

ZONE = "au/nsw/newtown"
START_US = 1_674_017_100_000_000  # a 5-minute NEM interval of 18 January 2023


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    dirs = [tmp_path / name for name in ("plug", "payer", "cheat")]
    nodes = [NodeProcess(d, init(d)) for d in dirs]
    nodes[0].start("--no-mdns")
    nodes[2].faults = InjectedFaults(unchecked_pay=True)
    try:
        for node in nodes[1:]:
            node.start("--no-mdns", "--bootstrap", nodes[0].addr)
        owners = {n.owner for n in nodes}
        for node in nodes:
            wait_for(lambda n=node: owners <= members(n), timeout=30)
        yield nodes[0], nodes[1], nodes[2]
    finally:
        for node in nodes:
            node.stop()


def _published(node: NodeProcess) -> bool:
    stats = next(iter(node.api("GET", "/v1/dht").values()))
    return bool(stats["publishing"] == 0)


def _reward(plug: NodeProcess, claim: str) -> dict[str, Any]:
    return {
        "to": plug.owner,
        "amount_mc": 500,
        "kind": "reward",
        "provenance": {
            "energy_wh": 100,
            "source": "grid_mix",
            "clean": True,
            "origin_zone": ZONE,
            "trust": "meter_attested",
            "claim": claim,
        },
        "terms": {"reward": "demand_reduction", "cites": claim},  # a claim, not an attestation
        "memo": "no attestation",
    }


def test_a_reward_for_an_unattested_claim_is_refused_by_payer_and_receiver(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    plug, payer, cheat = trio
    claim = plug.api(
        "POST",
        "/v1/zome/currency/claim_reduction",
        {
            "avoided_wh": 100,
            "zone": ZONE,
            "start_us": START_US,
            "end_us": START_US + 300_000_000,
            "price_cents": 27_390,
            "average_cents": 9_000,
        },
    )
    claim_text = claim["result"]
    ActionHash.from_text(claim_text)  # it is an action hash
    wait_for(lambda: _published(plug), timeout=45)

    with pytest.raises(ApiError, match="not the expected attestation") as own:
        payer.api("POST", "/v1/wallet/pay", _reward(plug, claim_text))
    assert own.value.status == 400

    with pytest.raises(ApiError, match="not the expected attestation") as theirs:
        cheat.api("POST", "/v1/wallet/pay", _reward(plug, claim_text))
    assert theirs.value.status == 409  # refused by the receiver's node

    for node in (plug, payer, cheat):
        assert node.api("GET", "/v1/wallet")["balance_mc"] == 0
