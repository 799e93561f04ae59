"""Liveness: is a member's node still there, as this node sees it?

A node that closes says so (a signed departure, :meth:`DnaNetwork.depart`); a node that crashes,
loses power or is unplugged says nothing, and its signed agent info stays valid until it expires
(20 minutes). So each node also watches some member nodes itself: it probes each watched peer
that it has not heard from lately with a cheap ``ping`` request over the usual request path
(which dials again if the connection was lost), and reports the peer's agents **absent** once it
has heard nothing from the peer for ``timeout_s`` and its latest probe failed. Anything heard
from the peer again (a probe answered, a request it made, a new connection, a re-announced agent
info) makes them present again.

This is the node's own view, not a fact about the network: nothing is signed or passed on, and
a peer that only one node cannot reach is absent for that node only. It never forges the other
agent's word (a departure), and it never removes the agent from the DNA's membership; it only
drives the node's presence alerts.

:class:`LivenessTracker` is the pure state machine (time in seconds is an argument; no I/O).
:class:`LivenessWatch` is its small asyncio adapter: one named task that probes at most
``max_probes`` peers at a time.

Bound: with ``probe_interval_s = timeout_s / 3``, a probe timeout of at most ``timeout_s / 3``
and a tick of ``timeout_s / 6``, a watched peer that vanishes at ``t`` is reported absent by
``t + 1.5 × timeout_s`` (as long as probes are not held back by ``max_probes``), and a peer that
answers probes is never reported absent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from ioe.net.interface import Network, NetworkError, PeerId, RequestRefused

log = logging.getLogger(__name__)

PING = b"\xf5"  # canonical CBOR ``true``: the whole of a ping and of its answer


@dataclass(slots=True)
class _Peer:
    last_heard: float
    last_probe: float | None = None
    probing: bool = False
    failed: bool = False  # the latest probe failed, and nothing was heard since
    absent: bool = False


class LivenessTracker:
    """Which watched peers answer. Pure: every method takes the current time ``now`` (seconds,
    from any monotonic clock) and does no I/O."""

    def __init__(self, timeout_s: float, probe_interval_s: float | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("the liveness timeout must be positive")
        self.timeout_s = timeout_s
        self.probe_interval_s = probe_interval_s if probe_interval_s else timeout_s / 3
        self._peers: dict[PeerId, _Peer] = {}

    def watched(self) -> set[PeerId]:
        return set(self._peers)

    def watch(self, peers: Collection[PeerId], now: float) -> None:
        """Watch exactly ``peers``: a new one starts as just heard (it gets a full timeout to
        answer); one no longer listed is forgotten, absent or not."""
        for peer in list(self._peers):
            if peer not in peers:
                del self._peers[peer]
        for peer in peers:
            self._peers.setdefault(peer, _Peer(last_heard=now))

    def heard(self, peer: PeerId, now: float) -> bool:
        """Something came from ``peer``. True if it was absent (it is back)."""
        state = self._peers.get(peer)
        if state is None:
            return False
        back = state.absent
        state.last_heard = max(state.last_heard, now)
        state.failed = False
        state.absent = False
        return back

    def due(self, now: float, limit: int) -> list[PeerId]:
        """Peers to probe now (at most ``limit`` minus those in flight), longest silent first:
        each at most once per probe interval, and not while one of its probes is in flight."""
        in_flight = sum(1 for s in self._peers.values() if s.probing)
        room = max(0, limit - in_flight)
        ready = []
        for peer, state in self._peers.items():
            latest = state.last_heard
            if state.last_probe is not None:
                latest = max(latest, state.last_probe)
            if not state.probing and now - latest >= self.probe_interval_s:
                ready.append((latest, peer))
        chosen = [peer for _, peer in sorted(ready)[:room]]
        for peer in chosen:
            self._peers[peer].probing = True
            self._peers[peer].last_probe = now
        return chosen

    def probe_done(self, peer: PeerId, answered: bool, now: float) -> bool:
        """A probe ended. True if the peer is back (it answered and was absent)."""
        state = self._peers.get(peer)
        if state is None:
            return False
        state.probing = False
        if answered:
            return self.heard(peer, now)
        state.failed = True
        return False

    def expire(self, now: float) -> list[PeerId]:
        """Peers that become absent now: silent for the timeout, latest probe failed, none in
        flight."""
        gone = []
        for peer, state in self._peers.items():
            if (
                not state.absent
                and state.failed
                and not state.probing
                and now - state.last_heard >= self.timeout_s
            ):
                state.absent = True
                gone.append(peer)
        return gone

    def is_absent(self, peer: PeerId) -> bool:
        state = self._peers.get(peer)
        return state is not None and state.absent

    def absent(self) -> set[PeerId]:
        return {peer for peer, state in self._peers.items() if state.absent}


class LivenessWatch:
    """Runs a :class:`LivenessTracker` over the network: probes, timeouts and change reports.

    ``peers_to_watch`` names the peers to watch (re-read every tick); ``on_change`` is called
    after any peer becomes absent or present again. ``clock_us`` stamps when a peer was last
    heard (for "last seen" displays)."""

    def __init__(
        self,
        network: Network,
        protocol: str,
        *,
        timeout_s: float,
        max_probes: int,
        peers_to_watch: Callable[[], Collection[PeerId]],
        on_change: Callable[[], None],
        clock_us: Callable[[], int],
    ) -> None:
        self.net = network
        self.protocol = protocol
        self.tracker = LivenessTracker(timeout_s)
        self.max_probes = max(1, max_probes)
        self.peers_to_watch = peers_to_watch
        self.on_change = on_change
        self.clock_us = clock_us
        self.tick_s = timeout_s / 6
        self.probe_timeout_s = timeout_s / 3
        self.last_seen_us: dict[PeerId, int] = {}
        self.absent_since_us: dict[PeerId, int] = {}
        self.probes_sent = 0
        self._probes: set[asyncio.Task[None]] = set()

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def heard(self, peer: PeerId) -> None:
        """Anything from ``peer`` (an answer, a request, a new connection)."""
        self.last_seen_us[peer] = self.clock_us()
        if self.tracker.heard(peer, self._now()):
            self.absent_since_us.pop(peer, None)
            log.info("peer %s answers again", peer)
            self.on_change()

    def announced(self, peer: PeerId, signed_at_us: int) -> None:
        """A new agent info from ``peer`` arrived (perhaps through a third node): if it was
        signed after the peer went silent, the peer is back."""
        since = self.absent_since_us.get(peer)
        if since is not None and signed_at_us > since:
            self.heard(peer)

    def is_absent(self, peer: PeerId) -> bool:
        return self.tracker.is_absent(peer)

    def _expire(self) -> None:
        gone = self.tracker.expire(self._now())
        for peer in gone:
            self.absent_since_us[peer] = self.clock_us()
            log.info("peer %s has not answered for %.1f s: absent", peer, self.tracker.timeout_s)
        if gone:
            self.on_change()

    async def run(self, request_timeout_s: float) -> None:
        """The watch loop (runs until cancelled)."""
        timeout = min(request_timeout_s, self.probe_timeout_s)
        try:
            while True:
                self.tick(timeout)
                await asyncio.sleep(self.tick_s)
        finally:
            for task in list(self._probes):
                task.cancel()
            if self._probes:
                await asyncio.wait(self._probes, timeout=1.0)

    def tick(self, probe_timeout_s: float) -> None:
        """One round: update the watched set, start due probes, report expiries."""
        now = self._now()
        self.tracker.watch(set(self.peers_to_watch()) - {self.net.peer_id}, now)
        watched = self.tracker.watched()
        for table in (self.last_seen_us, self.absent_since_us):
            for peer in [p for p in table if p not in watched]:
                del table[peer]
        for peer in self.tracker.due(now, self.max_probes):
            self._start(self._probe(peer, probe_timeout_s))
        self._expire()

    def _start(self, job: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(job)
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, peer: PeerId, timeout_s: float) -> None:
        self.probes_sent += 1
        try:
            await self.net.request(peer, self.protocol, PING, timeout=timeout_s)
            answered = True
        except RequestRefused:  # it refused, so it is there
            answered = True
        except NetworkError:
            answered = False
        if answered:
            self.last_seen_us[peer] = self.clock_us()
        if self.tracker.probe_done(peer, answered, self._now()):
            self.absent_since_us.pop(peer, None)
            self.on_change()
        elif not answered:  # the timeout may already have passed: report without a tick
            self._expire()
