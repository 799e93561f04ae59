"""The zone directory (members by their certificates; private devices only on their owner's
node) and the owner's device alerts (``device_presence``, ``present`` in the device list)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FAST, eventually
from ioe.conductor import Conductor
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dnas import CORE_DNA_NAME, core_dna
from ioe.engine.dht import AgentInfo
from ioe.hashing import AgentPubKey
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import DeviceVisibility, EnrollmentCertificate, issue
from ioe.identity.service.directory import OWNER_KIND, directory, entry_for, in_zone
from ioe.identity.service.enrollment import DEVICES_SETTING, OwnerEnrollment
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.runtime import Node, NodeConfig
from ioe.vocabulary import DeviceType

T0 = 1_800_000_000_000_000
DNA = core_dna()


def account(n: int) -> OwnerAccount:
    return OwnerAccount.from_root_seed(bytes([n]) * 32)


def enrolled(
    owner: OwnerAccount,
    index: int,
    name: str,
    zone: str,
    visibility: DeviceVisibility = DeviceVisibility.PUBLIC,
) -> tuple[KeyPair, EnrollmentCertificate]:
    keyset = Keyset(single_owner(owner.authorization_key().agent, owner.revocation_key().agent))
    device = device_agent_key(owner.device_seed(index), 0)
    cert = issue(
        keyset=keyset,
        owner_agent=owner.agent_key(),
        device=device.agent,
        device_type=DeviceType.CONSUMPTION,
        name=name,
        zone=zone,
        networks=(CORE_DNA_NAME,),
        issued_us=T0,
        serial=index,
        visibility=visibility,
    ).signed_by(owner.authorization_key())
    return device, cert


def info(keys: KeyPair, proof: bytes | None, *, departed: bool = False) -> AgentInfo:
    return AgentInfo.sign(
        keys,
        dna_hash=DNA.hash,
        peer_id=f"peer-{keys.agent.to_text()[-6:]}",
        addrs=[] if departed else ["/memory/1/p2p/x"],
        now_us=T0,
        ttl_us=60_000_000,
        membrane_proof=proof,
    )


ANN, BOB = account(1), account(2)
KETTLE, KETTLE_CERT = enrolled(ANN, 1, "Kettle", "au/nsw/newtown")
SAFE, SAFE_CERT = enrolled(ANN, 2, "Safe", "au/nsw/newtown", DeviceVisibility.PRIVATE)
PV, PV_CERT = enrolled(BOB, 1, "Roof PV", "au/nswx")
INFOS = [
    info(KETTLE, KETTLE_CERT.to_bytes()),
    info(SAFE, SAFE_CERT.to_bytes()),
    info(PV, PV_CERT.to_bytes()),
    info(ANN.agent_key(), None),
    info(BOB.agent_key(), None),
]


def agents(entries: list) -> list[AgentPubKey]:  # type: ignore[type-arg]
    return [e.agent for e in entries]


def test_devices_are_listed_by_their_certificates_and_owners_as_owners() -> None:
    listed = directory(INFOS, {BOB.agent_key().agent})
    owners = sorted([ANN.agent_key().agent, BOB.agent_key().agent])
    assert agents(listed) == [KETTLE.agent, PV.agent, *owners]


def test_listing_fields() -> None:
    kettle = directory(INFOS, set(), zone="au/nsw/newtown")[0].to_json()
    assert kettle == {
        "agent": KETTLE.agent.to_text(),
        "kind": "device",
        "name": "Kettle",
        "type": "consumption",
        "zone": "au/nsw/newtown",
        "owner": ANN.agent_key().agent.to_text(),
        "visibility": "public",
        "present": True,
    }
    owner = entry_for(INFOS[3])
    assert owner is not None and owner.to_json()["type"] == OWNER_KIND
    assert owner.owner == ANN.agent_key().agent


def test_a_private_device_is_listed_only_on_its_owners_node_and_its_own() -> None:
    on_ann = directory(INFOS, {ANN.agent_key().agent})
    on_bob = directory(INFOS, {BOB.agent_key().agent})
    on_safe = directory(INFOS, {SAFE.agent})
    on_nobody = directory(INFOS, set())
    assert SAFE.agent in agents(on_ann) and SAFE.agent in agents(on_safe)
    assert SAFE.agent not in agents(on_bob) and SAFE.agent not in agents(on_nobody)
    # the owner's other device sees nothing more than a stranger: only the owner agent counts
    assert SAFE.agent not in agents(directory(INFOS, {KETTLE.agent}))


def test_zone_filter_is_by_segments_and_leaves_owners_without_profiles_out() -> None:
    assert agents(directory(INFOS, set(), zone="au/nsw")) == [KETTLE.agent]
    assert agents(directory(INFOS, set(), zone="au")) == [KETTLE.agent, PV.agent]
    assert agents(directory(INFOS, set(), zone="au/nswx")) == [PV.agent]
    assert directory(INFOS, set(), zone="eu") == []
    with pytest.raises(ValueError, match="segment"):
        directory(INFOS, set(), zone="AU/../nsw")
    assert in_zone("au/nsw/newtown", "au/nsw") and not in_zone("au/nswx", "au/nsw")
    assert not in_zone("not a zone", "au")


def test_owners_are_named_and_zoned_by_their_profiles() -> None:
    """The tutorial's neighbours: two owners who set profiles in King St are listed by name and
    zone, and a zone filter finds them there (an owner without a profile only without one)."""
    ann, bob = ANN.agent_key().agent, BOB.agent_key().agent
    profiles = {ann: ("Ann", "au/nsw/newtown/king-st"), bob: ("Bob", "au/nsw/newtown/king-st")}
    in_street = directory(INFOS, set(), zone="au/nsw/newtown/king-st", profiles=profiles)
    assert [(e.agent, e.name, e.zone) for e in in_street] == sorted(
        [(ann, "Ann", "au/nsw/newtown/king-st"), (bob, "Bob", "au/nsw/newtown/king-st")],
        key=lambda item: (item[1], item[0]),
    )
    assert in_street[0].to_json()["type"] == OWNER_KIND
    in_suburb = directory(
        INFOS, set(), zone="au/nsw/newtown", profiles={ann: ("Ann", "au/nsw/newtown/king-st")}
    )
    assert agents(in_suburb) == [KETTLE.agent, ann]  # Bob set no profile: left out of a zone
    everyone = directory(INFOS, set(), profiles={ann: ("Ann", "au/nsw/newtown/king-st")})
    assert bob in agents(everyone) and [e.name for e in everyone if e.agent == bob] == [None]


def test_forged_departed_and_tampered_members_are_left_out() -> None:
    borrowed = info(KeyPair(bytes([9]) * 32), KETTLE_CERT.to_bytes())  # someone else's cert
    tampered_cert = dataclasses.replace(KETTLE_CERT, name="Not a kettle")
    tampered = info(KETTLE, tampered_cert.to_bytes())  # the signatures no longer hold
    departed = info(PV, PV_CERT.to_bytes(), departed=True)
    assert entry_for(borrowed) is None
    assert entry_for(tampered) is None
    assert entry_for(departed) is None
    assert directory([borrowed, tampered, departed], {ANN.agent_key().agent}) == []


def test_presence_is_taken_from_the_node() -> None:
    listed = directory(INFOS[:3], {ANN.agent_key().agent}, present=lambda a: a != KETTLE.agent)
    assert {e.agent: e.present for e in listed} == {
        KETTLE.agent: False,
        SAFE.agent: True,
        PV.agent: True,
    }


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_any_proof_bytes_give_an_owner_entry_or_nothing(proof: bytes) -> None:
    """Proofs come from the network: whatever they hold, listing never raises, and nothing but
    a valid certificate for the very agent lists it as a device."""
    entry = entry_for(info(KETTLE, proof))
    assert entry is None or entry.kind == OWNER_KIND


@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3]), st.booleans()), min_size=1, max_size=6, unique=False
    ),
    st.sampled_from([1, 2, 3]),
)
@settings(max_examples=40, deadline=None)
def test_private_devices_of_other_owners_are_never_listed(
    devices: list[tuple[int, bool]], viewer: int
) -> None:
    infos, expected = [], set()
    for index, (owner_n, private) in enumerate(devices, start=1):
        visibility = DeviceVisibility.PRIVATE if private else DeviceVisibility.PUBLIC
        keys, cert = enrolled(account(owner_n), index, f"d{index}", "au/nsw", visibility)
        infos.append(info(keys, cert.to_bytes()))
        if not private or owner_n == viewer:
            expected.add(keys.agent)
    listed = directory(infos, {account(viewer).agent_key().agent}, zone="au")
    assert set(agents(listed)) == expected


# ------------------------------------------------------------- the owner's device alerts


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def owner_and_device(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes; the first lists the second's agent among its enrolled devices (as
    enrollment would record it), with a short liveness timeout."""
    hub = MemoryHub()
    config = NodeConfig(dht=dataclasses.replace(FAST, liveness_timeout_s=0.6))
    nodes = []
    for name in ("owner", "device"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
        nodes.append(Node(conductor, config, network=MemoryNetwork(hub)))
    owner, device = nodes
    record = {"agent": device.conductor.owner_cell.agent.to_text(), "index": 1, "name": "Plug"}
    owner.conductor.db.put_setting(DEVICES_SETTING, [record])
    for node in nodes:
        await node.start()
    try:
        yield owner, device
    finally:
        for node in nodes:
            await node.close()
            node.conductor.close()


@pytest.mark.anyio
async def test_the_owner_is_alerted_when_its_device_comes_and_goes(
    owner_and_device: tuple[Node, Node],
) -> None:
    owner, device = owner_and_device
    role = owner.enrollment
    assert isinstance(role, OwnerEnrollment)
    agent = device.conductor.owner_cell.agent
    core = owner.dht_for(owner.conductor.owner_cell)
    assert agent in core._watched
    async with owner.signals.listen() as listener:
        await device.network.connect(owner.network.listen_addrs()[0])
        await eventually(lambda: role.device_status()[0]["present"])
        status = role.device_status()[0]
        assert status["name"] == "Plug" and status["last_seen_us"] is not None
        # the device vanishes without a word (as if unplugged)
        for dht in device.dnas.values():
            await dht.close()
        await device.network.close()
        await eventually(lambda: not role.device_status()[0]["present"])
        alerts: list[dict[str, object]] = []
        async with asyncio.timeout(10):
            while len(alerts) < 2:
                event = await listener.next()
                if event["type"] == "device_presence":
                    alerts.append(event)
    assert alerts == [
        {"type": "device_presence", "device": agent.to_text(), "name": "Plug", "present": True},
        {"type": "device_presence", "device": agent.to_text(), "name": "Plug", "present": False},
    ]
