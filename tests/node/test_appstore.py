"""The app store between three owners' nodes on the in-memory network: a developer publishes,
a manager installs into its community and pays each period to the developer, the app's network
runs behind its membrane, stops when unpaid or uninstalled, and refuses an outsider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import FAST, eventually
from ioe.appstore.service import AppStoreError
from ioe.community.invitation import Invitation
from ioe.conductor import Conductor, system_clock_us
from ioe.crypto.derivation import app_agent_index
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dnas import app_dna
from ioe.encoding import encode
from ioe.engine.dht import AgentInfo
from ioe.engine.integrity import Invalid
from ioe.errors import ValidationError, ZomeCallError
from ioe.net.interface import NetworkError
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.zomes.appnet.membrane import app_membership
from ioe.zomes.appstore.entries import AppManifest

pytestmark = pytest.mark.anyio

FEE_MC = 700
PERIOD_S = 40
US = 1_000_000
MANIFEST = {
    "app": "board-test",
    "name": "Notice board",
    "version": "1.0.0",
    "description": "Members post notes for each other.",
    "pricing": {"model": "subscription", "fee_mc": FEE_MC, "period_s": PERIOD_S},
    "capabilities": [{"point": "power_w", "access": "see"}],
    "dna": "board/1",
}


class Clock:
    """Real time plus an offset the test moves forward (every node shares it)."""

    def __init__(self) -> None:
        self.real = system_clock_us
        self.offset_us = 0

    def __call__(self) -> int:
        return self.real() + self.offset_us


Trio = tuple[Node, Node, Node, Clock]


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[Trio]:
    hub = MemoryHub()
    clock = Clock()
    nodes = []
    for name in ("dev", "ann", "bob"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key), clock=clock)
        node = Node(conductor, NodeConfig(dht=FAST), network=MemoryNetwork(hub))
        await node.start()
        await node.appstore.close()  # the test drives the store's rounds itself
        nodes.append(node)
    dev, ann, bob = nodes
    for node in (ann, bob):
        await node.network.connect(dev.network.listen_addrs()[0])
    await eventually(lambda: all(len(n.dht_for(n.core_cell()).members()) == 3 for n in nodes))
    try:
        yield dev, ann, bob, clock
    finally:
        for node in nodes:
            await node.close()
            node.conductor.close()


async def _installed(ann: Node, community: str, **kwargs: object) -> dict[str, object]:
    async def listed() -> bool:
        try:
            await ann.appstore.listing("board-test")
        except AppStoreError:
            return False
        return True

    for _ in range(100):  # the listing reaches ann's authorities: bounded wait
        if await listed():
            break
        await asyncio.sleep(0.05)
    return await ann.appstore.install(community, "board-test", **kwargs)  # type: ignore[arg-type]


async def _reconciled(node: Node, running: int) -> None:
    """Run the store's round until ``running`` apps run (what was just written reaches its
    authorities first): bounded in count and time."""
    for _ in range(100):
        await node.appstore.reconcile()
        if len(node.appstore.running) == running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(node.appstore.running)} app(s) running, not {running}")


async def test_a_subscription_is_paid_each_period_then_stops_when_unpaid(trio: Trio) -> None:
    dev, ann, _, clock = trio
    listing = await dev.appstore.publish(json.dumps(MANIFEST))
    assert listing.manifest.developer == dev.core_cell().agent
    community = (await ann.communities.create("King St", "au/nsw/newtown")).charter.id.to_text()

    installed = await _installed(ann, community, periods=2)
    assert installed["state"] == "running" and installed["paid_periods"] == 1
    assert installed["granted"] == [{"point": "power_w", "access": "see"}]
    # the first period went to the developer, countersigned: both ledgers moved by the fee
    assert dev.wallet.balance().balance_mc == FEE_MC
    assert ann.wallet.balance().balance_mc == -FEE_MC

    await _reconciled(ann, 1)  # the manager runs the app in its network
    [running] = ann.appstore.running.values()
    assert running.cell.agent != ann.core_cell().agent  # its own app key
    assert running.cell.dna.name == "ioe-app/board/1"

    installed_us = int(installed["installed_us"])  # type: ignore[call-overload]
    clock.offset_us = installed_us + (PERIOD_S - 5) * US - clock.real()  # 5 s before period 1
    assert [p for _, p in await ann.appstore.renew()] == [1]
    assert dev.wallet.balance().balance_mc == 2 * FEE_MC
    clock.offset_us = installed_us + (2 * PERIOD_S - 5) * US - clock.real()
    assert await ann.appstore.renew() == []  # two periods were all it was to pay
    await ann.appstore.reconcile()
    assert ann.appstore.running  # still paid until the end of period 1

    clock.offset_us = installed_us + (2 * PERIOD_S + 1) * US - clock.real()
    await ann.appstore.reconcile()
    assert not ann.appstore.running  # unpaid: stopped, its network left
    [sub] = await ann.appstore.subscriptions()
    assert (sub.standing(clock()).state, sub.paid) == ("unpaid", (0, 1))
    assert dev.wallet.balance().balance_mc == 2 * FEE_MC  # nothing more was paid


async def test_uninstalling_stops_the_app(trio: Trio) -> None:
    dev, ann, _, _ = trio
    await dev.appstore.publish(json.dumps({**MANIFEST, "pricing": {"model": "free"}}))
    community = (await ann.communities.create("Flats", "au/nsw/newtown")).charter.id.to_text()
    installed = await _installed(ann, community)
    assert installed["state"] == "running" and "payment" not in installed
    assert dev.wallet.balance().balance_mc == 0  # free: nothing paid
    await _reconciled(ann, 1)
    with pytest.raises(AppStoreError, match="already installed"):
        await ann.appstore.install(community, "board-test")
    await ann.appstore.uninstall(community, "board-test", reason="not needed")
    await _reconciled(ann, 0)
    [sub] = await ann.appstore.subscriptions()
    assert sub.uninstalled


async def test_the_app_network_refuses_an_agent_outside_the_community(trio: Trio) -> None:
    dev, ann, bob, _ = trio
    await dev.appstore.publish(json.dumps({**MANIFEST, "pricing": {"model": "free"}}))
    founded = await ann.communities.create("King St", "au/nsw/newtown")
    community = founded.charter.id.to_text()
    await _installed(ann, community)
    await _reconciled(ann, 1)
    [running] = ann.appstore.running.values()
    ann_net = ann.dnas[running.cell.dna.hash]

    # bob is no member: he presents the charter (public) and a "membership" nobody signed
    core = bob.core_cell()
    installation = running.installation.id
    dna = app_dna("board/1", founded.charter.id, installation, "board-test", core.dna)
    assert dna.hash == running.cell.dna.hash  # the very network ann runs
    proof = bob.conductor.membrane_proof(core)
    assert proof is not None

    def forged(keys):  # type: ignore[no-untyped-def]
        return app_membership(
            core.keys,
            keys.agent,
            installation,
            charter=founded.charter.to_bytes(),
            membership=b"",
            member_proof=proof,
        ).to_bytes()

    bob_app_key = bob.conductor.key_for(0, app_agent_index(bytes(installation)))
    outcome = dna.check_membrane(bob_app_key.agent, forged(bob_app_key))
    assert isinstance(outcome, Invalid) and "only the community's manager" in outcome.reason
    with pytest.raises(ValidationError, match="only the community's manager"):
        await bob.join_app_network(dna, app_agent_index(bytes(installation)), forged)
    # his node cannot even write the genesis; so he signs an agent info by hand and offers it
    info = AgentInfo.sign(
        bob_app_key,
        dna_hash=dna.hash,
        peer_id=bob.network.peer_id,
        addrs=bob.network.listen_addrs(),
        now_us=bob.conductor.clock(),
        ttl_us=60 * US,
        membrane_proof=forged(bob_app_key),
    )
    offer = encode([info.to_bytes()])
    with pytest.raises(NetworkError, match="not a member"):
        await bob.network.request(ann.network.peer_id, ann_net.protocol_agents, offer, timeout=2)
    with pytest.raises(NetworkError, match="not a member"):
        await bob.network.request(ann.network.peer_id, ann_net.protocol_get, b"\xa0", timeout=2)
    assert set(ann_net.members()) == {running.cell.agent}


async def test_an_altered_manifest_is_refused(trio: Trio) -> None:
    dev, _, _, _ = trio
    listing = await dev.appstore.publish(json.dumps(MANIFEST))
    signed = listing.manifest
    altered = AppManifest(
        **{
            **{n: getattr(signed, n) for n in type(signed).__dataclass_fields__},
            "name": "Free money",
        }
    )
    with pytest.raises(ZomeCallError, match="altered or forged"):
        dev.call(dev.core_cell(), "appstore", "publish", {"manifest": altered.to_bytes()})


async def test_a_garbled_manifest_file_gets_a_clear_error_and_writes_nothing(
    trio: Trio,
) -> None:
    dev, _, _, _ = trio
    before = len(dev.call(dev.core_cell(), "appstore", "published"))  # type: ignore[arg-type]
    for text, reason in [
        ("{", "not JSON"),
        ("[]", "a JSON object"),
        (json.dumps({**MANIFEST, "price": 1}), "unknown manifest keys"),
        (json.dumps({**MANIFEST, "pricing": {"model": "subscription", "fee_mc": 1.5}}), "integers"),
        (json.dumps({**MANIFEST, "dna": "x"}), "not an app DNA name"),
        ("x" * 40_000, "at most"),
    ]:
        with pytest.raises(AppStoreError, match=reason):
            await dev.appstore.publish(text)
    assert len(dev.call(dev.core_cell(), "appstore", "published")) == before  # type: ignore[arg-type]


async def test_a_member_runs_the_app_and_is_dropped_once_its_membership_is_revoked(
    trio: Trio,
) -> None:
    """Bob (another owner) becomes a member: he runs the app under his own app key in the
    network Ann runs; once Ann revokes his membership, her node drops his app key."""
    dev, ann, bob, _ = trio
    await dev.appstore.publish(json.dumps({**MANIFEST, "pricing": {"model": "free"}}))
    community = (await ann.communities.create("King St", "au/nsw/newtown")).charter.id.to_text()
    await _installed(ann, community)
    await _reconciled(ann, 1)
    invited = await ann.communities.add_member(community, bob.core_cell().agent.to_text())
    assert isinstance(invited, Invitation) and invited.state == "pending"
    for _ in range(200):  # Bob's node is asked to sign: his human approves (bounded)
        pending = [a for a in bob.keyset_signing.pending() if a["state"] == "pending"]
        if pending:
            bob.keyset_signing.decide(pending[0]["id"], True)
            break
        await asyncio.sleep(0.05)
    for _ in range(200):
        if await ann.communities.members(community):
            break
        await asyncio.sleep(0.05)
    [member] = await ann.communities.members(community)
    await _reconciled(bob, 1)  # Bob's node finds the installation of his community
    [bobs] = bob.appstore.running.values()
    [anns] = ann.appstore.running.values()
    network = ann.dnas[anns.cell.dna.hash]
    for _ in range(200):  # Bob's app key reaches Ann's app network: bounded
        if bobs.cell.agent in network.members():
            break
        await bob.dnas[bobs.cell.dna.hash].exchange_agent_infos(ann.network.peer_id)
        await asyncio.sleep(0.05)
    assert bobs.cell.agent in network.members() and bobs.cell.agent != bob.core_cell().agent

    await ann.communities.remove_member(community, member.membership.member.to_text())
    for _ in range(200):  # Ann's node checks its app networks' members (bounded)
        ann.appstore._checked_at.clear()
        await ann.appstore.reconcile()
        if bobs.cell.agent in network.excluded:
            break
        await asyncio.sleep(0.05)
    assert bobs.cell.agent in network.excluded and bobs.cell.agent not in network.members()
    await _reconciled(bob, 0)  # and Bob's own node stops the app
