"""Remote zome calls under capability grants, and remote signals, between two nodes on the
in-memory network (the same path runs over libp2p in tests/net/test_net_remote_control.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ioe.conductor import Conductor
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.dht.service import DhtConfig
from ioe.encoding import decode, encode
from ioe.engine.dht import DhtOp
from ioe.engine.ops import OpType
from ioe.engine.warrants import Warrant, WarrantKind
from ioe.hashing import ActionHash
from ioe.net.interface import NetworkError, RequestRefused
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.remote import CALL_LIFETIME_US, CallRequest, RemoteCallError, RemoteUnauthorized
from ioe.node.runtime import Node, NodeConfig

pytestmark = pytest.mark.anyio
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    hub = MemoryHub()
    nodes = []
    for name in ("alice", "bob"):
        key = tmp_path / f"{name}.key"
        create_device_key_file(key)
        conductor, _ = Conductor.init(tmp_path / name, Unlock(key_file=key))
        node = Node(conductor, NodeConfig(dht=FAST), network=MemoryNetwork(hub))
        await node.start()
        nodes.append(node)
    alice, bob = nodes
    await bob.network.connect(alice.network.listen_addrs()[0])
    await eventually(
        lambda: all(len(n.dht_for(n.conductor.owner_cell).members()) == 2 for n in nodes)
    )
    try:
        yield alice, bob
    finally:
        for node in nodes:
            await node.close()
            node.conductor.close()


def owner(node: Node):
    return node.conductor.owner_cell


async def call_profile(caller: Node, callee: Node, secret: bytes | None = None) -> object:
    return await caller.remote.call(
        owner(caller), owner(callee).agent, "profile", "my_profile", None, secret=secret
    )


async def test_a_call_without_a_grant_is_refused_with_a_clear_error(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    with pytest.raises(RemoteUnauthorized, match="no capability grant lets other agents call"):
        await call_profile(bob, alice)


async def test_an_assigned_grant_works_for_its_agent_until_revoked(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    secret = secrets.token_bytes(32)
    grant = alice.call(
        owner(alice),
        "capability",
        "grant",
        {
            "tag": "bob reads",
            "access": "assigned",
            "functions": ["profile.my_profile"],
            "assignees": [owner(bob).agent],
            "secret": secret,
        },
    )
    alice.call(owner(alice), "profile", "set_profile", {"name": "Alice", "zone": "au/nsw"})
    result = await call_profile(bob, alice, secret)
    assert result == {"name": "Alice", "zone": "au/nsw"}
    with pytest.raises(RemoteUnauthorized):
        await call_profile(bob, alice, secrets.token_bytes(32))  # wrong secret
    assert isinstance(grant, ActionHash)
    alice.call(owner(alice), "capability", "revoke", grant)
    with pytest.raises(RemoteUnauthorized):
        await call_profile(bob, alice, secret)


async def test_a_call_that_fails_validation_reports_it_and_commits_nothing(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    alice.call(
        owner(alice),
        "capability",
        "grant",
        {"tag": "anyone", "access": "unrestricted", "functions": ["profile.set_profile"]},
    )
    head = owner(alice).head()
    with pytest.raises(RemoteCallError, match="zone") as caught:
        await bob.remote.call(
            owner(bob), owner(alice).agent, "profile", "set_profile", {"name": "x", "zone": "BAD"}
        )
    assert caught.value.kind == "validation"
    assert owner(alice).head() == head


async def test_a_replayed_call_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    alice.call(
        owner(alice),
        "capability",
        "grant",
        {"tag": "anyone", "access": "unrestricted", "functions": ["profile.my_profile"]},
    )
    dht = bob.dht_for(owner(bob))
    request = CallRequest(
        owner(alice).agent,
        owner(bob).agent,
        "profile",
        "my_profile",
        None,
        None,
        secrets.token_bytes(32),
        bob.conductor.clock() + CALL_LIFETIME_US,
    )
    envelope = request.signed(owner(bob).keys)
    protocol = bob.remote.protocol_call(dht)
    first = await bob.network.request(alice.network.peer_id, protocol, envelope, timeout=5)
    again = await bob.network.request(alice.network.peer_id, protocol, envelope, timeout=5)
    assert b'"ok"' in first
    assert b'"replay"' in again


async def test_forged_or_garbled_calls_are_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    dht = bob.dht_for(owner(bob))
    protocol = bob.remote.protocol_call(dht)
    request = CallRequest(
        owner(alice).agent,
        owner(alice).agent,  # claims to be alice herself, signed by bob
        "capability",
        "grant",
        {"tag": "x", "access": "unrestricted", "functions": ["*"]},
        None,
        secrets.token_bytes(32),
        bob.conductor.clock() + CALL_LIFETIME_US,
    )
    body = decode(request.signed(owner(alice).keys))
    assert isinstance(body, dict)
    forged = encode(
        {"call": body["call"], "sig": owner(bob).keys.sign(b"ioe/zome-call/v1", body["call"])}
    )  # type: ignore[arg-type]
    with pytest.raises(RequestRefused, match="signature"):
        await bob.network.request(alice.network.peer_id, protocol, forged, timeout=5)
    # Alice's genuine signature, but sent from Bob's node: the caller is not at that peer.
    genuine = request.signed(owner(alice).keys)
    with pytest.raises(RequestRefused, match="not a member of this network at this peer"):
        await bob.network.request(alice.network.peer_id, protocol, genuine, timeout=5)
    for garbage in (b"", b"\xff" * 40, encode({"call": b"x", "sig": b"y"})):
        with pytest.raises(RequestRefused, match="malformed"):
            await bob.network.request(alice.network.peer_id, protocol, garbage, timeout=5)


async def test_remote_signals_reach_the_other_nodes_listeners(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    async with alice.signals.listen() as listener:
        bob.call(
            owner(bob),
            "notify",
            "send",
            {"to": [owner(alice).agent.to_text()], "kind": "hello", "body": {"n": 1}},
        )
        async with asyncio.timeout(10):
            event = await listener.next()
    assert event == {
        "type": "remote_signal",
        "dna": owner(alice).dna.hash.to_text(),
        "from": owner(bob).agent.to_text(),
        "to": owner(alice).agent.to_text(),
        "zome": "notify",
        "value": {"kind": "hello", "body": {"n": 1}},
    }


async def test_a_blocked_agent_cannot_call_even_under_an_unrestricted_grant(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    alice.call(
        owner(alice),
        "capability",
        "grant",
        {"tag": "anyone", "access": "unrestricted", "functions": ["profile.my_profile"]},
    )
    assert await call_profile(bob, alice) is None
    # Bob signs a false warrant (his own action twice as a "fork"): Alice blocks Bob.
    action = owner(alice).query()[-1].signed_action
    same = DhtOp(OpType.REGISTER_AGENT_ACTIVITY, action)
    lie = Warrant.sign(
        owner(bob).keys,
        kind=WarrantKind.FORK,
        dna_hash=owner(alice).dna.hash,
        author=owner(alice).agent,
        evidence=(same, same),
        reason="not really a fork",
        now_us=bob.conductor.clock(),
    )
    await alice.dht_for(owner(alice)).receive_warrant(lie)
    assert alice.dht_for(owner(alice)).is_blocked(owner(bob).agent)
    with pytest.raises((RequestRefused, NetworkError, RemoteCallError)):
        await call_profile(bob, alice)
    # And Alice's node refuses the call at the door even when it does reach it.
    request = CallRequest(
        owner(alice).agent,
        owner(bob).agent,
        "profile",
        "my_profile",
        None,
        None,
        secrets.token_bytes(32),
        alice.conductor.clock() + CALL_LIFETIME_US,
    )
    dht = alice.dht_for(owner(alice))
    with pytest.raises(RequestRefused, match=r"blocked|not a member"):
        await alice.remote._answer(dht, bob.network.peer_id, request)
