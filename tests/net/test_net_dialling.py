"""Dialling: per-peer backoff, giving up and forgetting (the pure :class:`DialBook`, with time
passed in), the rewriting of py-libp2p's dial-failure log records, and the gate on real libp2p
networks on loopback (a stopped peer is dialled a bounded number of times, a forgotten one not
at all, and both are dialled again once they show up)."""

from __future__ import annotations

import asyncio
import logging
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.net.dialling import BackoffPolicy, DialBook, PeerState
from ioe.net.interface import PeerId, PeerUnreachable
from ioe.net.p2p import (
    _DIALLING,
    DialLogFilter,
    P2PConfig,
    P2PNetwork,
    _Dialling,
    route_libp2p_logs,
)

P = PeerId("12D3KooWpeer")
Q = PeerId("12D3KooWother")
POLICY = BackoffPolicy(first_s=1.0, cap_s=120.0, give_up_after_s=600.0)


def dials_of_a_dead_peer(book: DialBook, peer: PeerId, every_s: float, until_s: float) -> int:
    """A caller that wants ``peer`` every ``every_s`` seconds from 0 to ``until_s``; every dial
    fails. How many dials were made. Bounded: at most ``until_s / every_s + 1`` rounds."""
    made = 0
    for step in range(int(until_s / every_s) + 1):
        now = step * every_s
        if book.may_dial(peer, now):
            book.dialling(peer, now)
            book.failed(peer, now, "refused")
            made += 1
    return made


# ------------------------------------------------------------------------------- the book


def test_the_wait_doubles_from_the_first_up_to_the_cap() -> None:
    assert [POLICY.delay(n) for n in range(10)] == [0, 1, 2, 4, 8, 16, 32, 64, 120, 120]
    assert POLICY.delay(10_000) == 120.0
    with pytest.raises(ValueError):
        BackoffPolicy(first_s=5.0, cap_s=1.0)
    with pytest.raises(ValueError):
        BackoffPolicy(give_up_after_s=0)


def test_a_failing_peer_is_dialled_only_when_its_wait_is_over() -> None:
    book = DialBook(POLICY)
    assert book.may_dial(P, 0.0) and book.state(P, 0.0) is PeerState.REACHABLE
    book.dialling(P, 0.0)
    assert book.failed(P, 0.0, "refused") == 1.0
    assert book.state(P, 0.5) is PeerState.BACKING_OFF and book.failing(P)
    assert not book.may_dial(P, 0.5)
    assert "next dial in 0.5 s" in book.why_not(P, 0.5)
    assert book.may_dial(P, 1.0)
    book.dialling(P, 1.0)
    assert book.failed(P, 1.0) == 2.0
    assert not book.may_dial(P, 2.9) and book.may_dial(P, 3.0)
    stats = book.stats(2.0)[P]
    assert (stats.dials, stats.failures, stats.failing, stats.skipped) == (2, 2, 2, 2)
    assert stats.state == "backing off" and stats.retry_in_s == 1.0
    assert stats.last_error == ""
    assert book.stats(0.0)[P].to_json()["dial_failures"] == 2
    # a connection (either side dialled) makes it reachable at once
    book.connected(P, 2.0)
    assert book.may_dial(P, 2.0) and not book.failing(P)
    assert book.state(P, 2.0) is PeerState.REACHABLE
    assert book.stats(2.0)[P].failures == 2  # the counts stay


def test_a_dead_peer_is_dialled_a_few_times_a_minute_then_given_up() -> None:
    book = DialBook(POLICY)
    # asked for twice a second, a minute long: at 0, 1, 3, 7, 15 and 31 s, not 121 times
    assert dials_of_a_dead_peer(book, P, 0.5, 60.0) == 6
    # then every 2 minutes; given up after 10 minutes; an hour on, nothing more
    total = dials_of_a_dead_peer(DialBook(POLICY), Q, 0.5, 3600.0)
    assert total == 6 + 6  # 63, 127, 247, 367, 487 and 607 s (given up)
    book = DialBook(POLICY)
    dials_of_a_dead_peer(book, Q, 0.5, 3600.0)
    assert book.state(Q, 3600.0) is PeerState.GIVEN_UP
    assert book.stats(3600.0)[Q].retry_in_s is None
    assert "given up" in book.why_not(Q, 3600.0)
    # it announces itself again (a newly signed info): dialled at once, counts kept...
    book.announced(Q, 3601.0)
    assert book.may_dial(Q, 3601.0) and book.stats(3601.0)[Q].retry_in_s == 0.0
    assert book.stats(3601.0)[Q].dials == total
    # ...and should that dial fail too, the wait goes on from the cap, not from 1 s again
    book.dialling(Q, 3601.0)
    assert book.failed(Q, 3601.0) == POLICY.cap_s
    assert book.state(Q, 3601.0) is PeerState.BACKING_OFF  # given 10 more minutes
    book.connected(Q, 3700.0)
    assert book.state(Q, 3700.0) is PeerState.REACHABLE and book.stats(3700.0)[Q].failing == 0


@settings(max_examples=200, deadline=None)
@given(
    asks=st.lists(st.floats(min_value=0.0, max_value=300.0), min_size=1, max_size=400),
    first=st.floats(min_value=0.1, max_value=10.0),
)
def test_dials_of_a_dead_peer_are_bounded_whatever_asks_for_them(
    asks: list[float], first: float
) -> None:
    """However often and irregularly a dead peer is asked for, dials in ``[0, T]`` number at
    most ``2 + log2(T / first)`` (the waits double) while under the cap."""
    policy = BackoffPolicy(first_s=first, cap_s=1e9, give_up_after_s=1e9)
    book = DialBook(policy)
    made = []
    for now in sorted(asks):
        if book.may_dial(P, now):
            book.dialling(P, now)
            book.failed(P, now)
            made.append(now)
    if made:
        span = made[-1] - made[0]
        assert len(made) <= 2 + math.log2(max(span, first) / first)


def test_a_forgotten_peer_is_not_dialled_until_it_shows_up() -> None:
    book = DialBook(POLICY)
    book.forget(P, 0.0)
    assert book.state(P, 0.0) is PeerState.FORGOTTEN and book.failing(P)
    for now in range(0, 3600, 10):
        assert not book.may_dial(P, float(now))
    assert book.stats(3600.0)[P].skipped == 360 and book.stats(3600.0)[P].dials == 0
    assert "forgotten" in book.why_not(P, 1.0)
    book.connected(P, 3600.0)  # it connected to us
    assert book.may_dial(P, 3600.0)
    book.forget(P, 3700.0)
    book.announced(P, 3800.0)  # a newly signed info of it
    assert book.may_dial(P, 3800.0)


def test_the_book_is_bounded_and_keeps_the_forgotten_longest() -> None:
    book = DialBook(POLICY, max_peers=3)
    book.forget(P, 0.0)
    for index in range(10):
        book.dialling(PeerId(f"peer-{index}"), float(index + 1))
    assert len(book) == 3
    assert P in book  # quiet, reachable peers went first
    assert PeerId("peer-9") in book
    with pytest.raises(ValueError):
        DialBook(max_peers=0)


# -------------------------------------------------------------------------- the log lines


def _dial_record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(
        "libp2p.transport.tcp.tcp", level, __file__, 1, message, ("boom",), None
    )


def test_dial_failures_name_the_peer_and_are_no_error() -> None:
    flt = DialLogFilter()
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        record = _dial_record("Failed to open TCP stream: %s")
        token = _DIALLING.set(_Dialling(P, known_failing=False))
        try:
            assert flt.filter(record)
        finally:
            _DIALLING.reset(token)
        assert record.levelno == logging.WARNING and record.levelname == "WARNING"
        assert record.getMessage().startswith("Failed to open TCP stream: boom")
        assert P in record.getMessage()

        record = _dial_record("Failed to open TCP stream: %s")
        token = _DIALLING.set(_Dialling(P, known_failing=True))
        try:
            assert flt.filter(record)  # shown with --verbose (INFO)...
            root.setLevel(logging.WARNING)
            assert not flt.filter(_dial_record("Failed to open TCP stream: %s"))  # ...not without
        finally:
            _DIALLING.reset(token)
        assert record.levelno == logging.INFO

        other = _dial_record("fail to upgrade mux for peer %s")  # a real error stays one
        assert flt.filter(other) and other.levelno == logging.ERROR
        assert other.getMessage() == "fail to upgrade mux for peer boom"
        inbound = _dial_record("failed to upgrade security for peer at %s")  # not our dial
        assert flt.filter(inbound) and inbound.levelno == logging.ERROR
    finally:
        root.setLevel(before)


def test_libp2p_records_reach_our_handlers_with_a_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIBP2P_DEBUG", raising=False)
    libp2p = logging.getLogger("libp2p")
    saved = (libp2p.propagate, libp2p.level)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        route_libp2p_logs()
        logging.getLogger("libp2p.network.swarm").error("a real error %s", "here")
        logging.getLogger("libp2p.transport.tcp.tcp").error(
            "Failed to open TCP stream: %s", "refused"
        )  # no dial of ours in progress: INFO, not shown at WARNING
    finally:
        root.removeHandler(handler)
        libp2p.propagate, libp2p.level = saved
    assert len(lines) == 1
    assert lines[0].endswith("ERROR libp2p.network.swarm: a real error here")
    assert lines[0][:4].isdigit() and lines[0][4] == "-"  # 2025-01-31 12:00:00,123 ...


# ---------------------------------------------------------------- the gate, over libp2p

FAST_BACKOFF = P2PConfig(dial_backoff=BackoffPolicy(first_s=0.5, cap_s=2.0, give_up_after_s=60))
ECHO = "/ioe/test/echo/1"


async def _echo(peer: PeerId, payload: bytes) -> bytes:
    return payload


@pytest.mark.anyio
async def test_a_stopped_peer_is_dialled_a_bounded_number_of_times() -> None:
    seed = os.urandom(32)
    async with P2PNetwork(os.urandom(32), FAST_BACKOFF) as a:
        b = P2PNetwork(seed)
        await b.start()
        b.set_handler(ECHO, _echo)
        b_addr = b.listen_addrs()[0]
        await a.connect(b_addr)
        assert await a.request(b.peer_id, ECHO, b"hi") == b"hi"
        await b.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        refused_at_once = 0
        for _ in range(300):  # asked for every 10 ms for 3 s
            if loop.time() >= deadline:
                break
            try:
                await a.request(b.peer_id, ECHO, b"hi", timeout=1.0)
            except PeerUnreachable as exc:
                refused_at_once += "not dialling" in str(exc)
            await asyncio.sleep(0.01)
        stats = a.dial_stats()[b.peer_id]
        # waits 0.5, 1, 2, 2 s: at most 4 dials in 3 s (one more for the stray timing)
        assert 1 <= stats.dials <= 5 and stats.failures >= stats.dials - 1  # one in flight
        assert stats.state == "backing off" and refused_at_once >= 50
        assert stats.skipped >= refused_at_once

        # forgotten: not dialled at all, however often asked
        a.forget_peer(b.peer_id)
        await asyncio.sleep(0.1)
        before = a.dial_stats()[b.peer_id].dials
        for _ in range(20):
            with pytest.raises(PeerUnreachable, match="forgotten"):
                await a.request(b.peer_id, ECHO, b"hi", timeout=1.0)
        assert a.dial_stats()[b.peer_id].dials == before
        assert a.dial_stats()[b.peer_id].state == "forgotten"

        # it comes back (same key, another port) and announces itself: dialled at once
        async with P2PNetwork(seed) as back:
            back.set_handler(ECHO, _echo)
            a.peer_announced(back.peer_id, back.listen_addrs())
            assert await a.request(back.peer_id, ECHO, b"back", timeout=5.0) == b"back"
            assert a.dial_stats()[back.peer_id].state == "reachable"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
