"""Site meters: a device enrolled with a ``monitor`` certificate attests the claims of its own
owner's devices (the plug that sat out a peak), with no entry in the DNA's properties.

The devices here join with real enrollment certificates as membrane proofs, on one in-memory
database with the currency kit's cast (see ``currency_kit``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from currency_kit import HOUR, ZONES, World, world

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.engine.cell import Cell
from ioe.errors import ValidationError
from ioe.hashing import ActionHash
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.testing.membership import membrane_proof_for
from ioe.vocabulary import DeviceType, Verification
from ioe.zomes.currency.rewards import demand_reduction_reward_mc, need_index_from_cents
from ioe.zomes.currency.value import ValueRules

ZONE = ZONES["home"]


class Household:
    """An owner (single-owner keyset) and what it enrolls."""

    def __init__(self, seed: int) -> None:
        self.account = OwnerAccount.from_root_seed(bytes([seed]) * 32)
        authz, revoker = self.account.authorization_key(), self.account.revocation_key()
        self.authz = authz
        self.keyset = Keyset(single_owner(authz.agent, revoker.agent))

    def device(self, index: int) -> KeyPair:
        return device_agent_key(self.account.device_seed(index), 0)

    def certificate(self, device: KeyPair, device_type: DeviceType) -> EnrollmentCertificate:
        cert = issue(
            keyset=self.keyset,
            owner_agent=self.account.agent_key(),
            device=device.agent,
            device_type=device_type,
            name=str(device_type),
            zone=ZONE,
            networks=("ioe-core",),
            issued_us=1,
            serial=1,
        )
        return cert.signed_by(self.authz)


def join(w: World, name: str, keys: KeyPair, proof: bytes | None) -> Cell:
    """Add a cell to ``w`` on the same database, joined with ``proof``."""
    db = w["home"].store.db  # type: ignore[attr-defined]
    cell = Cell(w.dna, keys, db.chain(w.dna.hash, keys.agent))
    cell.genesis(proof, now_us=w.now - HOUR)
    w.cells[name] = cell
    return cell


@pytest.fixture
def site() -> World:
    """Household 1's plug and meter; household 2's plug and meter; a monitor certificate
    that claims household 1 but is signed by household 2 (the core DNA's membrane refuses it);
    a member with no certificate."""
    w = world()
    ours, theirs = Household(1), Household(2)
    for house, tag in ((ours, ""), (theirs, "2")):
        plug, meter = house.device(1), house.device(2)
        join(w, f"plug{tag}", plug, house.certificate(plug, DeviceType.CONSUMPTION).to_bytes())
        join(w, f"meter{tag}", meter, house.certificate(meter, DeviceType.MONITOR).to_bytes())
    forged_keys = ours.device(3)
    forged = replace(theirs.certificate(forged_keys, DeviceType.MONITOR), keyset=ours.keyset)
    with pytest.raises(ValidationError, match="did not bind"):  # the membrane keeps it out
        join(w, "forged", forged_keys, forged.to_bytes())
    bare = ours.device(4)
    join(w, "bare", bare, membrane_proof_for(bare))  # a member, but with no certificate
    return w


def reduction(w: World, by: str = "plug", wh: int = 400) -> ActionHash:
    claim: ActionHash = w.call(
        by,
        "claim_reduction",
        {
            "avoided_wh": wh,
            "zone": ZONE,
            "start_us": w.now - 300_000_000,
            "end_us": w.now - 1,
            "price_cents": 30_000,
            "average_cents": 12_000,
        },
    )
    return claim


def reward_terms(w: World, attestation: ActionHash, claim: ActionHash, wh: int) -> dict[str, Any]:
    return {
        "kind": "reward",
        "provenance": {
            "energy_wh": wh,
            "source": "grid_mix",
            "clean": True,
            "origin_zone": ZONE,
            "trust": "meter_attested",
            "claim": claim,
        },
        "terms": {"reward": "demand_reduction", "cites": attestation},
    }


def test_a_site_meter_attests_its_own_owner_s_plug_and_the_reward_follows(site: World) -> None:
    w = site
    claim = reduction(w, wh=400)
    attestation = w.attest(claim, by="meter", energy_wh=350)
    reward = w.prepare("meter", "plug", **reward_terms(w, attestation, claim, 350))
    expected = demand_reduction_reward_mc(
        ValueRules(),
        avoided_wh=350,
        need_index=need_index_from_cents(30_000, 12_000),
        verification=Verification.METER_ATTESTED,
        zone=ZONE,
    )
    assert reward.amount_mc == expected > 350  # a peak: more than par
    w.commit(reward)
    assert w.balance("plug") == expected == -w.balance("meter")


def test_a_site_meter_does_not_attest_another_owner_s_devices(site: World) -> None:
    claim = reduction(site, by="plug2")
    with pytest.raises(ValidationError, match="its own owner's devices"):
        site.attest(claim, by="meter")
    site.attest(claim, by="meter2")  # theirs may


@pytest.mark.parametrize(
    ("by", "match"),
    [
        ("plug2", "only a distributor validator"),  # enrolled, but not as a monitor
        ("bare", "only a distributor validator"),  # an owner membership, no certificate
        ("home", "only a distributor validator"),  # the kit's unnamed agent
    ],
)
def test_only_a_certified_monitor_is_a_site_meter(site: World, by: str, match: str) -> None:
    claim = reduction(site)
    with pytest.raises(ValidationError, match=match):
        site.attest(claim, by=by)


@pytest.mark.parametrize("extra", [{"level": "substation_attested"}, {"fee_mc": 1}, {"fee_pm": 5}])
def test_a_site_meter_vouches_as_a_meter_and_charges_nothing(
    site: World, extra: dict[str, Any]
) -> None:
    claim = reduction(site)
    with pytest.raises(ValidationError, match="meter-attested and charges no fee"):
        site.attest(claim, by="meter", **extra)


def test_a_distributor_named_in_the_dna_still_attests_anyone(site: World) -> None:
    claim = reduction(site, by="plug2")
    site.attest(claim, by="grid")
