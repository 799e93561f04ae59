"""The in-memory network: the network contract, then its injectable faults."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

from ioe.errors import LocalProtocolError
from ioe.net.interface import (
    Message,
    NetworkError,
    PeerEvent,
    PeerEventKind,
    PeerId,
    PeerUnreachable,
    RequestRefused,
    RequestTimeout,
)
from ioe.net.memory import LinkFaults, MemoryHub, MemoryNetwork, jitter
from ioe.testing.network_contract import (
    ECHO,
    Collected,
    MakeNetworks,
    NetworkContract,
    assert_round_trip,
    collecting,
    echo,
    eventually,
)


def memory_networks(new_hub: Callable[[], MemoryHub]) -> MakeNetworks:
    @asynccontextmanager
    async def make(n: int) -> AsyncIterator[list[MemoryNetwork]]:
        hub = new_hub()
        async with AsyncExitStack() as stack:
            yield [await stack.enter_async_context(MemoryNetwork(hub)) for _ in range(n)]

    return make


class TestMemoryNetwork(NetworkContract):
    @pytest.fixture
    def make_networks(self) -> MakeNetworks:
        return memory_networks(MemoryHub)


class TestMemoryNetworkOnAJitteryWire(NetworkContract):
    @pytest.fixture
    def make_networks(self) -> MakeNetworks:
        return memory_networks(lambda: MemoryHub(delay=jitter(0.0, 0.004), seed=11))


# ------------------------------------------------------------------------------ fault injection

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def mesh(
    hub: MemoryHub, n: int, *, connected: bool = True
) -> AsyncIterator[list[MemoryNetwork]]:
    """``n`` running nodes on ``hub``, each answering ECHO, connected to each other."""
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(MemoryNetwork(hub)) for _ in range(n)]
        for node in nodes:
            node.set_handler(ECHO, echo)
        if connected:
            for i, a in enumerate(nodes):
                for b in nodes[i + 1 :]:
                    await a.connect(b.listen_addrs()[0])
        yield nodes


def connected_events(collected: Collected[PeerEvent], kind: PeerEventKind) -> set[PeerId]:
    return {event.peer for event in collected.items if event.kind is kind}


async def test_delay_slows_requests_but_they_succeed() -> None:
    hub = MemoryHub()
    async with mesh(hub, 3, connected=False) as (a, b, c):
        hub.set_link(a, b, delay=0.05)
        start = anyio.current_time()
        await a.connect(b.listen_addrs()[0])
        assert anyio.current_time() - start >= 0.1  # a dial is a round trip
        for _ in range(3):
            start = anyio.current_time()
            assert await a.request(b.peer_id, ECHO, b"slow") == b"slow"
            assert anyio.current_time() - start >= 0.1
        assert hub.faults(a, c) == LinkFaults()  # other links keep the default
        hub.clear_link(a, b)
        assert hub.faults(b, a) == hub.default_faults


async def test_jitter_keeps_the_order_of_a_link() -> None:
    hub = MemoryHub(delay=jitter(0.0, 0.02), seed=5)
    async with mesh(hub, 2) as (a, b):
        subscription = await b.subscribe("t")
        async with collecting(subscription) as heard:
            for n in range(30):
                await a.publish("t", bytes([n]))
                if n % 3 == 0:
                    await anyio.sleep(0.002)
            await eventually(lambda: len(heard.items) == 30, "every message")
        assert [m.data for m in heard.items] == [bytes([n]) for n in range(30)]


async def _requests_with_retries(seed: int) -> tuple[list[int], MemoryHub]:
    """20 requests over a lossy link, each retried until answered: the attempts each took."""
    hub = MemoryHub(loss=0.3, seed=seed)
    attempts: list[int] = []
    async with mesh(hub, 2) as (a, b):
        for n in range(20):
            for attempt in range(1, 21):
                try:
                    reply = await a.request(b.peer_id, ECHO, bytes([n]), timeout=0.02)
                except RequestTimeout:
                    continue
                assert reply == bytes([n])
                attempts.append(attempt)
                break
    return attempts, hub


async def test_loss_makes_requests_time_out_and_retries_succeed() -> None:
    attempts, hub = await _requests_with_retries(seed=3)
    assert len(attempts) == 20  # every request got through in the end
    assert any(n > 1 for n in attempts)  # and some needed more than one try
    assert hub.stats.lost > 0
    assert hub.stats.sent == hub.stats.lost + hub.stats.delivered


async def test_the_same_seed_gives_the_same_run() -> None:
    first, _ = await _requests_with_retries(seed=8)
    second, _ = await _requests_with_retries(seed=8)
    assert first == second


async def test_total_loss_drops_requests_and_messages() -> None:
    hub = MemoryHub()
    async with mesh(hub, 2) as (a, b):
        hub.set_link(a, b, loss=1.0)
        with pytest.raises(RequestTimeout):
            await a.request(b.peer_id, ECHO, b"x", timeout=0.05)
        subscription = await b.subscribe("t")
        async with collecting(subscription) as heard:
            await a.publish("t", b"lost")
            await anyio.sleep(0.05)
            assert heard.items == []
        assert b.peer_id in a.connected_peers()  # loss does not break the connection
        hub.set_link(a, b, loss=0.0)
        await assert_round_trip(a, b)


async def test_partition_and_heal() -> None:
    hub = MemoryHub()
    async with mesh(hub, 4) as (a, b, c, d), AsyncExitStack() as stack:
        events = await stack.enter_async_context(collecting(a.peer_events()))
        c_events = await stack.enter_async_context(collecting(c.peer_events()))
        heard_b = await stack.enter_async_context(collecting(await b.subscribe("t")))
        heard_c = await stack.enter_async_context(collecting(await c.subscribe("t")))

        hub.partition([[a, b], [c.peer_id, d.peer_id]])
        assert a.connected_peers() == [b.peer_id]
        assert sorted(c.connected_peers()) == [d.peer_id]
        assert connected_events(events, PeerEventKind.DISCONNECTED) == set()  # not yet read
        await eventually(
            lambda: connected_events(events, PeerEventKind.DISCONNECTED) == {c.peer_id, d.peer_id},
            "a hears c and d go",
        )
        for target in (c, d):
            with anyio.fail_after(0.5), pytest.raises(PeerUnreachable):
                await a.request(target.peer_id, ECHO, b"x", timeout=5)
            with pytest.raises(PeerUnreachable):
                await a.connect(target.listen_addrs()[0])
        assert await a.request(b.peer_id, ECHO, b"same side") == b"same side"
        await a.publish("t", b"during")
        await eventually(lambda: len(heard_b.items) == 1, "b hears a")
        await anyio.sleep(0.02)
        assert heard_c.items == []

        hub.heal()
        assert sorted(a.connected_peers()) == sorted([b.peer_id, c.peer_id, d.peer_id])
        await eventually(
            lambda: connected_events(events, PeerEventKind.CONNECTED) >= {c.peer_id, d.peer_id},
            "a hears c and d come back",
        )
        await eventually(
            lambda: a.peer_id in connected_events(c_events, PeerEventKind.CONNECTED),
            "c hears a come back",
        )
        assert await a.request(c.peer_id, ECHO, b"after") == b"after"
        await a.publish("t", b"after")
        await eventually(lambda: [m.data for m in heard_c.items] == [b"after"], "c hears a")


async def test_partition_breaks_requests_in_flight() -> None:
    hub = MemoryHub()
    release = anyio.Event()

    async def slow(peer: PeerId, payload: bytes) -> bytes:
        await release.wait()
        return b"too late"

    async with mesh(hub, 2) as (a, b):
        b.set_handler("slow", slow)

        async def cut_soon() -> None:
            await anyio.sleep(0.02)
            hub.partition([[a], [b]])

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cut_soon)
                with anyio.fail_after(1), pytest.raises(PeerUnreachable):
                    await a.request(b.peer_id, "slow", b"x", timeout=5)
        finally:
            release.set()
        hub.heal()
        assert await a.request(b.peer_id, ECHO, b"ok") == b"ok"


async def test_unnamed_nodes_form_one_group() -> None:
    hub = MemoryHub()
    async with mesh(hub, 3) as (a, b, c):
        hub.partition([[a]])
        assert a.connected_peers() == []
        assert b.connected_peers() == [c.peer_id]
        hub.partition([[a, b]])  # a new partition replaces the old one
        assert a.connected_peers() == [b.peer_id]
        assert c.connected_peers() == []
        hub.heal()
        assert len(c.connected_peers()) == 2
        with pytest.raises(ValueError, match="two groups"):
            hub.partition([[a], [a, b]])


async def test_a_node_closed_during_a_partition_does_not_come_back() -> None:
    hub = MemoryHub()
    async with mesh(hub, 3) as (a, b, c):
        hub.partition([[a], [b, c]])
        await c.close()
        hub.heal()
        assert a.connected_peers() == [b.peer_id]
        with pytest.raises(PeerUnreachable):
            await a.request(c.peer_id, ECHO, b"x")


async def test_pubsub_is_relayed_by_subscribers_only() -> None:
    hub = MemoryHub()
    async with mesh(hub, 3, connected=False) as (a, b, c), AsyncExitStack() as stack:
        await a.connect(b.listen_addrs()[0])  # a line: a - b - c
        await b.connect(c.listen_addrs()[0])
        heard_c = await stack.enter_async_context(collecting(await c.subscribe("t")))
        await a.publish("t", b"b is not in the mesh")
        await anyio.sleep(0.02)
        assert heard_c.items == []

        b_sub = await b.subscribe("t")
        heard_b = await stack.enter_async_context(collecting(b_sub))
        await a.publish("t", b"relayed")
        await eventually(lambda: len(heard_c.items) == 1, "c hears a through b")
        assert heard_c.items == [Message("t", a.peer_id, b"relayed")]
        assert heard_b.items == [Message("t", a.peer_id, b"relayed")]
        await c.connect(a.listen_addrs()[0])  # a triangle: two paths, still delivered once
        await a.publish("t", b"once")
        await anyio.sleep(0.02)
        assert [m.data for m in heard_c.items] == [b"relayed", b"once"]


async def test_handler_failures_are_logged_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def crash(peer: PeerId, payload: bytes) -> bytes:
        raise KeyError("oops")

    async def wrong_type(peer: PeerId, payload: bytes) -> bytes:
        return "not bytes"  # type: ignore[return-value]

    async with mesh(MemoryHub(), 2) as (a, b):
        b.set_handler("crash", crash)
        b.set_handler("wrong", wrong_type)
        with caplog.at_level(logging.ERROR, logger="ioe.net.memory"):
            with pytest.raises(RequestRefused, match="KeyError"):
                await a.request(b.peer_id, "crash", b"")
            with pytest.raises(RequestRefused, match="not bytes"):
                await a.request(b.peer_id, "wrong", b"")
        assert "handler for crash failed" in caplog.text
        assert "returned str" in caplog.text


async def test_identity_is_kept_across_a_restart() -> None:
    hub = MemoryHub()
    async with mesh(hub, 1) as (a,):
        first = MemoryNetwork(hub, peer_id="agent-key-1")
        async with first:
            address = first.listen_addrs()
            assert address == [f"/memory/{first.number}/p2p/agent-key-1"]
            await a.connect(address[0])
        with pytest.raises(PeerUnreachable):
            await a.request(PeerId("agent-key-1"), ECHO, b"x")
        async with MemoryNetwork(hub, peer_id="agent-key-1") as again:
            again.set_handler(ECHO, echo)
            assert again.listen_addrs() == address
            assert await a.request(again.peer_id, ECHO, b"x") == b"x"  # redialled on demand


async def test_one_identity_runs_once_per_hub() -> None:
    hub = MemoryHub()
    async with MemoryNetwork(hub, peer_id="twin"):
        with pytest.raises(NetworkError, match="already running"):
            await MemoryNetwork(hub, peer_id="twin").start()
    async with MemoryNetwork(hub, peer_id="twin") as later:  # free again once closed
        assert later.peer_id == "twin"


async def test_lifecycle_errors() -> None:
    hub = MemoryHub()
    net = MemoryNetwork(hub)
    assert net.listen_addrs() == []
    with pytest.raises(NetworkError):
        await net.request(PeerId("mem-9"), ECHO, b"")
    await net.start()
    await net.start()  # idempotent
    with pytest.raises(PeerUnreachable, match="itself"):
        await net.request(net.peer_id, ECHO, b"")
    with pytest.raises(LocalProtocolError):
        await net.request(PeerId("mem-9"), "", b"")
    with pytest.raises(LocalProtocolError):
        await net.subscribe("")
    await net.close()
    assert net.listen_addrs() == []
    with pytest.raises(NetworkError):
        await net.publish("t", b"")
    with pytest.raises(NetworkError):
        await net.start()
    events = net.peer_events()
    with anyio.fail_after(1):
        assert [e async for e in events] == []


async def test_hub_disconnect_then_redial_on_demand() -> None:
    hub = MemoryHub()
    async with mesh(hub, 2) as (a, b), collecting(b.peer_events()) as at_b:
        hub.disconnect(a, b)
        assert a.connected_peers() == []
        await eventually(
            lambda: a.peer_id in connected_events(at_b, PeerEventKind.DISCONNECTED), "b hears it"
        )
        assert await a.request(b.peer_id, ECHO, b"x") == b"x"
        assert a.connected_peers() == [b.peer_id]


async def test_peer_event_stream_can_be_closed_early() -> None:
    async with mesh(MemoryHub(), 2, connected=False) as (a, b):
        stream = a.peer_events()
        await a.connect(b.listen_addrs()[0])
        await stream.aclose()
        with anyio.fail_after(1):
            assert [e async for e in stream] == [PeerEvent(PeerEventKind.CONNECTED, b.peer_id)]


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        LinkFaults(loss=1.5)
    with pytest.raises(ValueError):
        LinkFaults(delay=-0.1)
    with pytest.raises(ValueError):
        jitter(0.2, 0.1)
    assert LinkFaults(delay=lambda rng: -1.0).sample_delay(MemoryHub().rng) == 0.0
