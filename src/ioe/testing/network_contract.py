"""The contract every :class:`~ioe.net.interface.Network` implementation passes, as a pytest class.

Subclass :class:`NetworkContract` in a test module and give it a ``make_networks`` fixture::

    class TestMemoryNetwork(NetworkContract):
        @pytest.fixture
        def make_networks(self) -> MakeNetworks:
            @asynccontextmanager
            async def make(n: int) -> AsyncIterator[list[Network]]:
                hub = MemoryHub()
                async with AsyncExitStack() as stack:
                    yield [await stack.enter_async_context(MemoryNetwork(hub)) for _ in range(n)]

            return make

**The ``make_networks`` protocol**, exactly (:data:`MakeNetworks`):

* ``make_networks(n)``, for ``1 <= n <= 4``, returns an async context manager;
* entering it yields a sequence of ``n`` **started** networks with distinct peer ids, all usable
  from the test's event loop (asyncio: the suite runs under anyio's pytest plugin on asyncio);
* they are **not connected** and know nothing of each other, but each can dial every other's
  ``listen_addrs()``;
* leaving it closes every network, including those the test already closed itself (``close`` must
  be idempotent), and leaves no task or thread running;
* each test calls it at most once.

**What the suite holds every implementation to** (beyond the docstrings of the interface):

* ``listen_addrs()`` is non-empty and every address ends with ``/p2p/<peer id>``;
* after ``connect`` returns, the dialler lists the peer in ``connected_peers()``; the dialled side
  lists the dialler soon after; both get a CONNECTED event; dialling again changes nothing;
  a malformed address, an address whose ``/p2p/`` id is not the node listening there, and one's
  own address raise :class:`PeerUnreachable`;
* ``peer_events()`` and ``subscribe()`` see everything from the moment they return, even before
  the caller starts iterating;
* ``request`` returns the handler's bytes exactly (empty to :data:`MAX_PAYLOAD`), with the
  requester's peer id given to the handler; many requests in both directions at once are each
  answered with their own reply, a slow one holding up no other; a peer whose address was given
  by ``add_peer_addrs`` is dialled on demand;
* a handler raising ``RequestRefused(reason)`` → :class:`RequestRefused` whose message contains
  ``reason``; any other exception in a handler, a reply over :data:`MAX_PAYLOAD` or an unknown
  protocol → :class:`RequestRefused`; no reply within ``timeout`` → :class:`RequestTimeout` (a
  late reply is ignored); a peer never met, or closed → :class:`PeerUnreachable`, before the
  timeout;
* a request or a published message over :data:`MAX_PAYLOAD` is the caller's bug:
  :class:`~ioe.errors.LocalProtocolError`, and both sides carry on;
* a published message reaches every subscription to its topic on connected peers, with
  ``sender`` the publisher's peer id, once each; not the publisher's own subscriptions (py-libp2p
  would deliver them locally: the libp2p implementation filters), nor any subscription of another
  topic; ``Subscription.close`` ends its iteration;
* ``close`` gives every connected peer a DISCONNECTED event and ends the node's own event
  streams and subscriptions; the others go on working.

Pub/sub may need a moment to learn who subscribes (GossipSub announces subscriptions
asynchronously), so the suite publishes again until a subscriber hears; everything "eventual" is
awaited for at most :data:`DEADLINE_S` seconds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar

import anyio
import pytest

from ioe.errors import LocalProtocolError
from ioe.net.interface import (
    MAX_PAYLOAD,
    Message,
    Network,
    PeerEvent,
    PeerEventKind,
    PeerId,
    PeerUnreachable,
    RequestRefused,
    RequestTimeout,
)

MakeNetworks: TypeAlias = Callable[[int], AbstractAsyncContextManager[Sequence[Network]]]
"""``make_networks(n)``: started, mutually dialable, unconnected networks (see the module doc)."""

DEADLINE_S = 10.0
"""Longest wait for anything eventual (a remote event, a pubsub message)."""

POLL_S = 0.02
PUBLISH_EVERY_S = 0.1
ECHO = "/ioe/contract/echo/1"
T = TypeVar("T")


@dataclass
class Collected(Generic[T]):
    """What a background task has read from an async iterator so far."""

    items: list[T] = field(default_factory=list)
    ended: anyio.Event = field(default_factory=anyio.Event)


@asynccontextmanager
async def collecting(source: AsyncIterable[T]) -> AsyncIterator[Collected[T]]:
    """Drain ``source`` in a background task for the duration of the block."""
    collected: Collected[T] = Collected()

    async def drain() -> None:
        async for item in source:
            collected.items.append(item)
        collected.ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        try:
            yield collected
        finally:
            tg.cancel_scope.cancel()


async def eventually(
    predicate: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` after ``deadline_s``."""
    for _ in range(int(deadline_s / POLL_S) + 1):
        if predicate():
            return
        await anyio.sleep(POLL_S)
    assert predicate(), f"not within {deadline_s} s: {what}"


async def echo(peer: PeerId, payload: bytes) -> bytes:
    return payload


async def connect(a: Network, b: Network) -> None:
    """Connect ``a`` to ``b`` and wait until both sides see it."""
    assert await a.connect(b.listen_addrs()[0]) == b.peer_id
    await eventually(lambda: a.peer_id in b.connected_peers(), f"{b.peer_id} sees {a.peer_id}")


async def assert_round_trip(a: Network, b: Network) -> None:
    """``a`` and ``b`` still answer each other."""
    a.set_handler(ECHO, echo)
    b.set_handler(ECHO, echo)
    with anyio.fail_after(DEADLINE_S):
        assert await a.request(b.peer_id, ECHO, b"ping a->b") == b"ping a->b"
        assert await b.request(a.peer_id, ECHO, b"ping b->a") == b"ping b->a"


def events_of(collected: Collected[PeerEvent], kind: PeerEventKind) -> list[PeerId]:
    return [event.peer for event in collected.items if event.kind is kind]


@pytest.mark.anyio
class NetworkContract:
    """Identity, connections, request/response and its errors, pub/sub, peer events, close."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    # ----------------------------------------------------------------- identity, connections

    async def test_identity_and_addresses(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as nets:
            ids = [net.peer_id for net in nets]
            assert len(set(ids)) == 3
            for net in nets:
                assert isinstance(net.peer_id, str)
                assert net.peer_id
                addrs = net.listen_addrs()
                assert addrs
                for addr in addrs:
                    assert addr.endswith(f"/p2p/{net.peer_id}")
                assert net.connected_peers() == []

    async def test_connect_shows_on_both_sides_with_events(
        self, make_networks: MakeNetworks
    ) -> None:
        async with make_networks(2) as (a, b), AsyncExitStack() as stack:
            a_events = await stack.enter_async_context(collecting(a.peer_events()))
            b_events = await stack.enter_async_context(collecting(b.peer_events()))
            assert await a.connect(b.listen_addrs()[0]) == b.peer_id
            assert a.connected_peers() == [b.peer_id]
            await eventually(lambda: b.connected_peers() == [a.peer_id], "b lists a")
            await eventually(
                lambda: b.peer_id in events_of(a_events, PeerEventKind.CONNECTED), "a's event"
            )
            await eventually(
                lambda: a.peer_id in events_of(b_events, PeerEventKind.CONNECTED), "b's event"
            )
            assert await a.connect(b.listen_addrs()[0]) == b.peer_id
            assert a.connected_peers() == [b.peer_id]
            assert b.connected_peers() == [a.peer_id]
            assert events_of(a_events, PeerEventKind.DISCONNECTED) == []
            await assert_round_trip(a, b)

    async def test_bad_addresses_are_unreachable(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as (a, b, c):
            b_addr = b.listen_addrs()[0]
            impostor = b_addr[: -len(b.peer_id)] + c.peer_id  # b's address, c's identity
            for addr in ["not an address", "/p2p/", impostor, a.listen_addrs()[0]]:
                with anyio.fail_after(DEADLINE_S), pytest.raises(PeerUnreachable):
                    await a.connect(addr)
            assert c.peer_id not in a.connected_peers()
            await connect(a, b)
            await assert_round_trip(a, b)

    # ---------------------------------------------------------------------- request/response

    async def test_request_returns_the_reply_exactly(self, make_networks: MakeNetworks) -> None:
        seen: list[PeerId] = []

        async def reverse(peer: PeerId, payload: bytes) -> bytes:
            seen.append(peer)
            return payload[::-1]

        async def digest(peer: PeerId, payload: bytes) -> bytes:
            return len(payload).to_bytes(8, "big") + hashlib.sha256(payload).digest()

        rng = random.Random(1)
        payloads = [b"", b"\x00", bytes(range(256)), rng.randbytes(1024 * 1024 + 7)]
        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/reverse/1", reverse)
            b.set_handler("/ioe/contract/digest/1", digest)
            await connect(a, b)
            with anyio.fail_after(4 * DEADLINE_S):
                for payload in payloads:
                    reply = await a.request(b.peer_id, "/ioe/contract/reverse/1", payload)
                    assert reply == payload[::-1]
                largest = rng.randbytes(MAX_PAYLOAD)
                reply = await a.request(b.peer_id, "/ioe/contract/digest/1", largest, timeout=30)
                assert reply == MAX_PAYLOAD.to_bytes(8, "big") + hashlib.sha256(largest).digest()
            assert seen == [a.peer_id] * len(payloads)

    async def test_request_dials_a_peer_known_by_address(self, make_networks: MakeNetworks) -> None:
        async with make_networks(2) as (a, b):
            b.set_handler(ECHO, echo)
            a.add_peer_addrs(b.peer_id, b.listen_addrs())
            with anyio.fail_after(DEADLINE_S):
                assert await a.request(b.peer_id, ECHO, b"hello") == b"hello"
            assert b.peer_id in a.connected_peers()
            await eventually(lambda: a.peer_id in b.connected_peers(), "b lists a")
            a.set_handler(ECHO, echo)
            with anyio.fail_after(DEADLINE_S):  # the connection serves both directions
                assert await b.request(a.peer_id, ECHO, b"back") == b"back"

    async def test_concurrent_requests_each_get_their_reply(
        self, make_networks: MakeNetworks
    ) -> None:
        count = 40

        async def tagged(peer: PeerId, payload: bytes) -> bytes:
            n = int.from_bytes(payload[:4], "big")
            await anyio.sleep((count - n) * 0.002)  # later requests answer first
            return b"reply:" + payload

        async with make_networks(2) as (a, b):
            a.set_handler("/ioe/contract/tagged/1", tagged)
            b.set_handler("/ioe/contract/tagged/1", tagged)
            await connect(a, b)
            results: dict[tuple[str, int], bytes] = {}

            async def one(source: Network, target: Network, n: int) -> None:
                payload = n.to_bytes(4, "big") + source.peer_id.encode() * (n % 7)
                reply = await source.request(target.peer_id, "/ioe/contract/tagged/1", payload)
                results[(source.peer_id, n)] = reply
                assert reply == b"reply:" + payload

            with anyio.fail_after(DEADLINE_S):
                async with anyio.create_task_group() as tg:
                    for n in range(count):
                        tg.start_soon(one, a, b, n)
                        tg.start_soon(one, b, a, n)
            assert len(results) == 2 * count

    async def test_handler_refusal_carries_its_reason(self, make_networks: MakeNetworks) -> None:
        async def refuse(peer: PeerId, payload: bytes) -> bytes:
            raise RequestRefused("no capability grant for this call")

        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/refuse/1", refuse)
            await connect(a, b)
            with anyio.fail_after(DEADLINE_S), pytest.raises(RequestRefused) as caught:
                await a.request(b.peer_id, "/ioe/contract/refuse/1", b"x")
            assert "no capability grant for this call" in str(caught.value)
            await assert_round_trip(a, b)

    async def test_handler_crash_is_a_refusal(self, make_networks: MakeNetworks) -> None:
        async def crash(peer: PeerId, payload: bytes) -> bytes:
            raise RuntimeError("handler bug")

        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/crash/1", crash)
            await connect(a, b)
            for _ in range(3):
                with anyio.fail_after(DEADLINE_S), pytest.raises(RequestRefused):
                    await a.request(b.peer_id, "/ioe/contract/crash/1", b"x")
            await assert_round_trip(a, b)

    async def test_unknown_protocol_is_refused(self, make_networks: MakeNetworks) -> None:
        async with make_networks(2) as (a, b):
            await connect(a, b)
            with anyio.fail_after(DEADLINE_S), pytest.raises(RequestRefused):
                await a.request(b.peer_id, "/ioe/contract/nobody-home/1", b"x")
            await assert_round_trip(a, b)

    async def test_slow_handler_times_out_and_late_reply_is_ignored(
        self, make_networks: MakeNetworks
    ) -> None:
        release = anyio.Event()

        async def slow(peer: PeerId, payload: bytes) -> bytes:
            await release.wait()
            return b"late"

        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/slow/1", slow)
            b.set_handler(ECHO, echo)
            await connect(a, b)
            try:
                start = anyio.current_time()
                with anyio.fail_after(DEADLINE_S), pytest.raises(RequestTimeout):
                    await a.request(b.peer_id, "/ioe/contract/slow/1", b"x", timeout=0.3)
                assert anyio.current_time() - start >= 0.29

                async def pending_slow() -> None:
                    with pytest.raises(RequestTimeout):
                        await a.request(b.peer_id, "/ioe/contract/slow/1", b"y", timeout=0.5)

                with anyio.fail_after(DEADLINE_S):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(pending_slow)
                        await anyio.sleep(0.05)  # a slow request is in flight: others pass it
                        assert await a.request(b.peer_id, ECHO, b"fast") == b"fast"
            finally:
                release.set()
            await anyio.sleep(0.2)  # the late replies arrive and must be ignored
            with anyio.fail_after(DEADLINE_S):
                assert await a.request(b.peer_id, "/ioe/contract/slow/1", b"z") == b"late"
            await assert_round_trip(a, b)

    async def test_unknown_peer_is_unreachable(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as (a, b, stranger):
            await stranger.close()  # a valid peer id nobody has met
            with anyio.fail_after(DEADLINE_S), pytest.raises(PeerUnreachable):
                await a.request(stranger.peer_id, ECHO, b"x", timeout=DEADLINE_S + 5)
            await connect(a, b)
            await assert_round_trip(a, b)

    async def test_closed_peer_is_unreachable(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as (a, b, c), collecting(a.peer_events()) as a_events:
            await connect(a, b)
            await connect(a, c)
            await b.close()
            await eventually(
                lambda: b.peer_id in events_of(a_events, PeerEventKind.DISCONNECTED),
                "a hears b went away",
            )
            with anyio.fail_after(DEADLINE_S), pytest.raises(PeerUnreachable):
                await a.request(b.peer_id, ECHO, b"x", timeout=DEADLINE_S + 5)
            await assert_round_trip(a, c)

    async def test_oversize_payloads_fail_without_harm(self, make_networks: MakeNetworks) -> None:
        async def bloat(peer: PeerId, payload: bytes) -> bytes:
            return bytes(MAX_PAYLOAD + 1)

        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/bloat/1", bloat)
            b.set_handler(ECHO, echo)
            await connect(a, b)
            with anyio.fail_after(DEADLINE_S):
                with pytest.raises(LocalProtocolError):
                    await a.request(b.peer_id, ECHO, bytes(MAX_PAYLOAD + 1))
                with pytest.raises(RequestRefused):
                    await a.request(b.peer_id, "/ioe/contract/bloat/1", b"x", timeout=30)
                with pytest.raises(LocalProtocolError):
                    await a.publish("/ioe/contract/topic", bytes(MAX_PAYLOAD + 1))
            assert b.peer_id in a.connected_peers()
            assert a.peer_id in b.connected_peers()
            await assert_round_trip(a, b)

    # ------------------------------------------------------------------------- pub/sub

    async def test_pubsub_between_three_nodes(self, make_networks: MakeNetworks) -> None:
        topic, other = "/ioe/contract/topic/a", "/ioe/contract/topic/b"
        async with make_networks(3) as (a, b, c), AsyncExitStack() as stack:
            await connect(a, b)
            await connect(a, c)
            await connect(b, c)
            b_sub = await b.subscribe(topic)
            a_sub = await a.subscribe(topic)  # the publisher does not hear itself
            c_sub = await c.subscribe(other)  # c does not subscribe to `topic`
            at_b = await stack.enter_async_context(collecting(b_sub))
            at_a = await stack.enter_async_context(collecting(a_sub))
            at_c = await stack.enter_async_context(collecting(c_sub))

            sent = await _publish_until_heard(a, topic, b"on-a-", at_b)
            heard_other = await _publish_until_heard(b, other, b"on-b-", at_c)
            from_b = await _publish_until_heard(b, topic, b"on-b-", at_a)  # a subscribes too
            await anyio.sleep(0.2)  # time for any stray delivery to show

            for collected, expected_topic, sender, data in [
                (at_b, topic, a.peer_id, sent),
                (at_a, topic, b.peer_id, from_b),
                (at_c, other, b.peer_id, heard_other),
            ]:
                messages = collected.items
                assert all(isinstance(m, Message) for m in messages)
                assert {m.topic for m in messages} == {expected_topic}
                assert {m.sender for m in messages} == {sender}
                assert {m.data for m in messages} <= data
                assert len(messages) == len({m.data for m in messages}), "delivered twice"

            await b_sub.close()
            with anyio.fail_after(DEADLINE_S):
                await at_b.ended.wait()
            await a_sub.close()
            await c_sub.close()
            await assert_round_trip(a, b)

    # --------------------------------------------------------------------------- close

    async def test_disconnect_hangs_up_on_one_peer(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as (a, b, c), AsyncExitStack() as stack:
            at_a = await stack.enter_async_context(collecting(a.peer_events()))
            at_b = await stack.enter_async_context(collecting(b.peer_events()))
            await connect(a, b)
            await connect(a, c)
            await a.disconnect(b.peer_id)
            await eventually(lambda: b.peer_id not in a.connected_peers(), "a dropped b")
            await _sees_gone(b, at_b, a.peer_id)
            await eventually(
                lambda: b.peer_id in events_of(at_a, PeerEventKind.DISCONNECTED), "a's event"
            )
            assert c.peer_id in a.connected_peers()
            await a.disconnect(b.peer_id)  # not connected: nothing happens
            await connect(b, a)  # either side may dial again
            await assert_round_trip(a, b)

    async def test_close_disconnects_everyone(self, make_networks: MakeNetworks) -> None:
        async with make_networks(3) as (a, b, c), AsyncExitStack() as stack:
            at_b = await stack.enter_async_context(collecting(b.peer_events()))
            at_c = await stack.enter_async_context(collecting(c.peer_events()))
            own = await stack.enter_async_context(collecting(a.peer_events()))
            a_sub = await stack.enter_async_context(collecting(await a.subscribe("/ioe/c/t")))
            await connect(a, b)
            await connect(a, c)
            await a.close()
            await _sees_gone(b, at_b, a.peer_id)
            await _sees_gone(c, at_c, a.peer_id)
            with anyio.fail_after(DEADLINE_S):
                await own.ended.wait()
                await a_sub.ended.wait()
            await a.close()  # idempotent
            await connect(b, c)
            await assert_round_trip(b, c)

    async def test_still_works_after_everything_goes_wrong(
        self, make_networks: MakeNetworks
    ) -> None:
        async def refuse(peer: PeerId, payload: bytes) -> bytes:
            raise RequestRefused("no")

        async def crash(peer: PeerId, payload: bytes) -> bytes:
            raise ValueError("bug")

        wake = anyio.Event()

        async def sleepy(peer: PeerId, payload: bytes) -> bytes:
            await wake.wait()
            return b""

        expected: list[tuple[str, bytes, float, type[Exception]]] = [
            ("/ioe/contract/refuse/1", b"", DEADLINE_S, RequestRefused),
            ("/ioe/contract/crash/1", b"", DEADLINE_S, RequestRefused),
            ("/ioe/contract/missing/1", b"", DEADLINE_S, RequestRefused),
            ("/ioe/contract/sleepy/1", b"", 0.2, RequestTimeout),
            (ECHO, bytes(MAX_PAYLOAD + 1), DEADLINE_S, LocalProtocolError),
        ]
        async with make_networks(2) as (a, b):
            b.set_handler("/ioe/contract/refuse/1", refuse)
            b.set_handler("/ioe/contract/crash/1", crash)
            b.set_handler("/ioe/contract/sleepy/1", sleepy)
            b.set_handler(ECHO, echo)
            await connect(a, b)
            try:
                with anyio.fail_after(3 * DEADLINE_S):
                    for _ in range(2):
                        for protocol, payload, timeout, error in expected:
                            with pytest.raises(error):
                                await a.request(b.peer_id, protocol, payload, timeout=timeout)
                        async with anyio.create_task_group() as tg:
                            for n in range(10):
                                tg.start_soon(_expect_echo, a, b, n.to_bytes(2, "big"))
            finally:
                wake.set()
            await assert_round_trip(a, b)


async def _sees_gone(observer: Network, events: Collected[PeerEvent], gone: PeerId) -> None:
    await eventually(
        lambda: gone in events_of(events, PeerEventKind.DISCONNECTED),
        f"{observer.peer_id} hears {gone} went away",
    )
    await eventually(
        lambda: gone not in observer.connected_peers(),
        f"{observer.peer_id} no longer lists {gone}",
    )


async def _expect_echo(a: Network, b: Network, payload: bytes) -> None:
    assert await a.request(b.peer_id, ECHO, payload) == payload


async def _publish_until_heard(
    publisher: Network, topic: str, prefix: bytes, heard: Collected[Message]
) -> set[bytes]:
    """Publish numbered messages until one arrives; the set of everything published."""
    sent: set[bytes] = set()
    for n in range(int(DEADLINE_S / PUBLISH_EVERY_S)):
        data = prefix + str(n).encode()
        await publisher.publish(topic, data)
        sent.add(data)
        for _ in range(int(PUBLISH_EVERY_S / POLL_S)):
            if heard.items:
                return sent
            await anyio.sleep(POLL_S)
    assert heard.items, f"nothing published on {topic} arrived within {DEADLINE_S} s"
    return sent
