"""Remote zome calls under capability grants, and remote signals, between two nodes on the
in-memory network (the same path runs over libp2p in tests/net/test_net_remote_control.py)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from ioe.dht.service import DhtConfig
from ioe.encoding import decode, encode
from ioe.engine.dht import DhtOp
from ioe.engine.ops import OpType
from ioe.engine.signals import MAX_SIGNAL_BYTES
from ioe.engine.warrants import Warrant, WarrantKind
from ioe.hashing import ActionHash, AgentPubKey
from ioe.net.interface import NetworkError, RequestRefused
from ioe.node.runtime import Node
from ioe.services.remote import (
    CALL_LIFETIME_US,
    CallRequest,
    NonceCache,
    RemoteCallError,
    RemoteCalls,
    RemoteUnauthorized,
)

pytestmark = pytest.mark.anyio
FAST = DhtConfig(publish_interval_s=0.05, gossip_interval_s=0.2, request_timeout_s=1.0)


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
        bob.conductor.clock(),
    )
    envelope = request.signed(owner(bob).keys)
    protocol = bob.remote.protocol_call(dht)
    first = await bob.network.request(alice.network.peer_id, protocol, envelope, timeout=5)
    again = await bob.network.request(alice.network.peer_id, protocol, envelope, timeout=5)
    assert b'"ok"' in first
    assert b'"replay"' in again
    # A restart forgets the nonces seen: a node that starts afresh (a new RemoteCalls, as
    # Node.start makes) refuses every call issued before it started, so no replay gets in.
    restarted = RemoteCalls(alice.conductor.clock, alice.signals)
    restarted.attach(alice.dht_for(owner(alice)), [owner(alice)])
    after_restart = await bob.network.request(alice.network.peer_id, protocol, envelope, timeout=5)
    assert b"issued before this node started" in after_restart


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
        bob.conductor.clock(),
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
            while event["type"] == "presence":  # members joining share the stream
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
        alice.conductor.clock(),
    )
    dht = alice.dht_for(owner(alice))
    with pytest.raises(RequestRefused, match=r"blocked|not a member"):
        await alice.remote._answer(dht, bob.network.peer_id, request)


def test_one_caller_cannot_crowd_others_out_of_the_nonce_cache() -> None:
    cache = NonceCache(limit=10, per_caller=3)
    mallory, alice = AgentPubKey(b"\x01" * 32), AgentPubKey(b"\x02" * 32)
    assert all(cache.admit(mallory, bytes([n]) * 32, 2_000, 1_000) for n in range(3))
    assert not cache.admit(mallory, b"\x09" * 32, 2_000, 1_000)  # its share is used up
    assert cache.admit(alice, b"\x0a" * 32, 2_000, 1_000)
    assert not cache.admit(alice, b"\x0a" * 32, 2_000, 1_000)  # a replay
    assert cache.admit(mallory, b"\x0b" * 32, 4_000, 3_000)  # its old calls have expired


async def test_grants_cannot_be_managed_remotely_even_when_named(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    alice.call(
        owner(alice),
        "capability",
        "grant",
        {"tag": "oops", "access": "unrestricted", "functions": ["capability.list_grants"]},
    )
    with pytest.raises(RemoteUnauthorized, match="never remotely"):
        await bob.remote.call(owner(bob), owner(alice).agent, "capability", "list_grants")
    with pytest.raises(RemoteUnauthorized, match="never remotely"):  # not even by itself
        await alice.remote.call(owner(alice), owner(alice).agent, "capability", "list_grants")


async def test_an_oversized_remote_signal_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    dht = bob.dht_for(owner(bob))
    huge = encode({"signal": b"x" * (MAX_SIGNAL_BYTES + 4096), "sig": b"y" * 64})
    with pytest.raises(RequestRefused, match="at most"):
        await bob.network.request(
            alice.network.peer_id, bob.remote.protocol_signal(dht), huge, timeout=5
        )
