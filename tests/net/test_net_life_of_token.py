"""The life of a token between separate ``ioe node run`` processes on loopback.

Three owners on one network that names a grid distributor (``ioe network use`` for the
founder, ``ioe init --network`` for the others):

1. the PV owner claims 10 kWh of solar generation (``currency.claim_generation``);
2. the grid distributor fetches the claim from the DHT and attests it, with its fee;
3. the grid countersigns a consumption receipt of 4 kWh with the home's node
   (``ioe wallet receipt``); the home's node co-signs it only as its consumer;
4. the home settles it (``ioe wallet settle``): the PV node co-signs a trade whose amount is
   the value of the kWh by the network's rules;
5. the PV owner pays the distributor's fee, citing its own record of the trade.

Both ledgers show the provenance (clean solar, the claim, the receipt, substation-attested),
balances sum to zero, the fee is what the attestation says, and every chain verifies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import NodeProcess, init, ioe_json, members, wait_for

from ioe.node.client import ApiError
from ioe.zomes.currency.value import ValueRules, Verification, factors, value_mc

pytestmark = pytest.mark.process

PV_ZONE = "au/nsw/newtown/king-st/12"
HOME_ZONE = "au/nsw/newtown/king-st/14"
HOUR_US = 3_600_000_000


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    grid_dir = tmp_path / "grid"
    grid = init(grid_dir)
    spec = {
        "network_seed": "life-of-a-token test",
        "properties": {"currency": {"device_types": {grid: "distributor"}}},
    }
    path = tmp_path / "network.json"
    path.write_text(json.dumps(spec))
    used = ioe_json("network", "use", str(path), "--data-dir", str(grid_dir), "--json")
    nodes = {"grid": NodeProcess(grid_dir, grid)}
    for name in ("pv", "home"):
        made = ioe_json(
            "init", "--data-dir", str(tmp_path / name), "--network", str(path), "--json"
        )
        nodes[name] = NodeProcess(tmp_path / name, made["owner"])
    for node in nodes.values():
        shown = ioe_json("network", "show", "--data-dir", str(node.data_dir), "--json")
        assert shown["dna"] == used["dna"]  # one network
    nodes["grid"].start("--no-mdns")
    try:
        for name in ("pv", "home"):
            nodes[name].start("--no-mdns", "--bootstrap", nodes["grid"].addr)
        owners = {n.owner for n in nodes.values()}
        for node in nodes.values():
            wait_for(lambda n=node: owners <= members(n), timeout=30)
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()


def _published(node: NodeProcess) -> bool:
    stats = next(iter(node.api("GET", "/v1/dht").values()))
    return bool(stats["publishing"] == 0)


def test_the_life_of_a_token_across_processes(network: dict[str, NodeProcess]) -> None:
    grid, pv, home = network["grid"], network["pv"], network["home"]
    now_us = time.time_ns() // 1000
    claim = pv.api(
        "POST",
        "/v1/zome/currency/claim_generation",
        {
            "energy_wh": 10_000,
            "source": "solar",
            "zone": PV_ZONE,
            "start_us": now_us - HOUR_US,
            "end_us": now_us,
        },
    )["result"]
    wait_for(lambda: _published(pv), timeout=45)
    # The distributor fetches the claim it does not hold and attests it, with its fee.
    attestation = grid.api(
        "POST",
        "/v1/zome/currency/attest",
        {"claim": claim, "level": "substation_attested", "fee_pm": 30},
    )["result"]
    wait_for(lambda: _published(grid), timeout=45)

    # Only a distributor the network names signs receipts (the home's own node refuses).
    with pytest.raises(ApiError, match="not a distributor validator"):
        home.api(
            "POST",
            "/v1/wallet/receipt",
            {
                "consumer": grid.owner,
                "attestation": attestation,
                "energy_wh": 4_000,
                "consumer_zone": HOME_ZONE,
            },
        )

    signed = ioe_json(
        "wallet",
        "receipt",
        home.owner,
        "--attestation",
        attestation,
        "--energy-wh",
        "4000",
        "--zone",
        HOME_ZONE,
        "--need-index",
        "200",
        "--data-dir",
        str(grid.data_dir),
        "--json",
    )
    assert signed["receipt"]["consumer"] == home.owner
    [mine] = home.api("GET", "/v1/wallet/receipts")["items"]
    assert not mine["settled"] and mine["receipt"]["energy_wh"] == 4_000
    wait_for(lambda: _published(home) and _published(grid), timeout=45)

    paid = ioe_json(
        "wallet", "settle", mine["action_hash"], "--data-dir", str(home.data_dir), "--json"
    )
    expected = value_mc(
        4_000,
        factors(
            ValueRules(),
            clean=True,
            producer_zone=PV_ZONE,
            consumer_zone=HOME_ZONE,
            need_index=200,
            verification=Verification.SUBSTATION_ATTESTED,
            reputation_pm=1000,
        ),
    )
    assert (paid["to"], paid["kind"], paid["amount_mc"]) == (pv.owner, "trade", expected)
    [settled] = home.api("GET", "/v1/wallet/receipts")["items"]
    assert settled["settled"]
    with pytest.raises(ApiError, match="already settled"):  # once per receipt
        home.api("POST", "/v1/wallet/settle", {"receipt": mine["action_hash"]})
    wait_for(lambda: _published(home) and _published(pv), timeout=45)

    # The producer pays the distributor's fee, citing its own record of the trade.
    [sale] = pv.api("GET", "/v1/wallet/history")["items"]
    fee = ioe_json(
        "wallet",
        "pay",
        grid.owner,
        "--kind",
        "fee",
        "--terms",
        json.dumps({"fee": "distributor", "cites": sale["action_hash"]}),
        "--data-dir",
        str(pv.data_dir),
        "--json",
    )
    assert fee["amount_mc"] == expected * 30 // 1000

    # Both ledgers show where the energy came from.
    [bought] = home.api("GET", "/v1/wallet/history")["items"]
    for item in (bought, sale):
        provenance = item["provenance"]
        assert item["kind"] == "trade" and item["amount_mc"] == expected
        assert (provenance["source"], provenance["clean"], provenance["claim"]) == (
            "solar",
            True,
            claim,
        )
        assert provenance["receipt"] == mine["action_hash"]
        assert provenance["trust"] == "substation_attested"
        assert provenance["origin_zone"] == PV_ZONE
    balances = {name: n.api("GET", "/v1/wallet")["balance_mc"] for name, n in network.items()}
    assert balances == {
        "home": -expected,
        "pv": expected - fee["amount_mc"],
        "grid": fee["amount_mc"],
    }
    assert sum(balances.values()) == 0
    for node in network.values():
        node.stop()
        verified = ioe_json("chain", "verify", "--data-dir", str(node.data_dir), "--json")
        assert verified["ok"] is True
