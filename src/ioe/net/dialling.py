"""When this node dials a peer, and when it stops: per-peer backoff and forgetting.

Every layer above the network asks for peers by id (a request to a member, a liveness probe, a
Kademlia lookup, a publish to an authority) and the network dials on demand. Left alone, a peer
that stopped for good would be dialled by each of them, forever. So the network keeps one
:class:`DialBook` and asks it before every dial:

* a peer whose dials fail is **backed off**: after ``n`` failures in a row the next dial waits
  ``first_s × 2^(n-1)`` seconds, at most ``cap_s``; a request meanwhile fails at once, without
  a dial;
* a peer that has failed every dial for ``give_up_after_s`` is **given up**;
* a peer the node has no more use for (every agent it ran left, or its agent infos all
  expired, or a device enrolled away from its provisional id) is **forgotten**.

A given-up or forgotten peer is not dialled again until it shows up: it connects to this node,
it announces itself (a newly signed agent info through gossip; an explicit ``connect`` such as
mDNS's or the bootstrap's), or it is forgotten no more. Addresses heard second hand (a Kademlia
reply) change nothing: they are what a gone peer leaves behind.

Pure: every method takes the current time ``now`` (seconds, any monotonic clock), no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from ioe.net.interface import DialStats, PeerId

MAX_ERROR_CHARS = 200


class PeerState(StrEnum):
    REACHABLE = "reachable"
    """No dial failed since the last connection (or none was made)."""
    BACKING_OFF = "backing off"
    """Dials failed: the next one waits."""
    GIVEN_UP = "given up"
    """Every dial failed for ``give_up_after_s``: none until the peer shows up again."""
    FORGOTTEN = "forgotten"
    """This node has no more use for the peer: no dial until it shows up again."""


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    first_s: float = 1.0
    """Wait after the first failed dial; doubled after each further one."""
    cap_s: float = 120.0
    """The longest wait between two dials of one peer."""
    give_up_after_s: float = 600.0
    """A peer failing every dial this long is given up."""

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.cap_s:
            raise ValueError("the first wait is positive and at most the cap")
        if self.give_up_after_s <= 0:
            raise ValueError("giving up takes a positive time")

    def delay(self, failures_in_a_row: int) -> float:
        """The wait before the next dial after ``failures_in_a_row`` failed dials."""
        if failures_in_a_row <= 0:
            return 0.0
        return min(self.cap_s, self.first_s * 2.0 ** min(failures_in_a_row - 1, 64))


@dataclass(slots=True)
class _Peer:
    touched: float
    dials: int = 0
    failures: int = 0
    in_a_row: int = 0
    skipped: int = 0
    failing_since: float | None = None
    next_at: float = 0.0
    given_up: bool = False
    forgotten: bool = False
    last_error: str = ""


class DialBook:
    """Per-peer dial counts, backoff and forgetting (see the module's docstring). Keeps at most
    ``max_peers`` peers: beyond that the one untouched longest goes, reachable peers first."""

    def __init__(self, policy: BackoffPolicy | None = None, *, max_peers: int = 4096) -> None:
        if max_peers < 1:
            raise ValueError("the book keeps at least one peer")
        self.policy = policy or BackoffPolicy()
        self.max_peers = max_peers
        self._peers: dict[PeerId, _Peer] = {}

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    def _entry(self, peer: PeerId, now: float) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            if len(self._peers) >= self.max_peers:
                self._evict()
            state = self._peers[peer] = _Peer(touched=now)
        state.touched = max(state.touched, now)
        return state

    def _evict(self) -> None:
        def rank(item: tuple[PeerId, _Peer]) -> tuple[bool, float]:
            quiet = item[1].in_a_row == 0 and not item[1].forgotten and not item[1].given_up
            return (not quiet, item[1].touched)

        oldest, _ = min(self._peers.items(), key=rank)
        del self._peers[oldest]

    # ------------------------------------------------------------------------- questions

    def state(self, peer: PeerId, now: float) -> PeerState:
        entry = self._peers.get(peer)
        if entry is None:
            return PeerState.REACHABLE
        if entry.forgotten:
            return PeerState.FORGOTTEN
        if entry.given_up:
            return PeerState.GIVEN_UP
        if entry.in_a_row > 0:
            return PeerState.BACKING_OFF
        return PeerState.REACHABLE

    def failing(self, peer: PeerId) -> bool:
        """Whether the peer is known not to answer: its latest dial failed, or it is forgotten
        (a further failure is no news)."""
        entry = self._peers.get(peer)
        return entry is not None and (entry.in_a_row > 0 or entry.forgotten or entry.given_up)

    def may_dial(self, peer: PeerId, now: float) -> bool:
        """Whether a dial of ``peer`` may be made now. A dial refused is counted (skipped)."""
        entry = self._peers.get(peer)
        if entry is None:
            return True
        if entry.forgotten or entry.given_up or now < entry.next_at:
            entry.skipped += 1
            return False
        return True

    def why_not(self, peer: PeerId, now: float) -> str:
        """Why ``peer`` is not dialled now, in words (empty when it may be)."""
        entry = self._peers.get(peer)
        if entry is None:
            return ""
        if entry.forgotten:
            return "forgotten (it left); not dialled until it shows up again"
        if entry.given_up:
            return (
                f"given up after {entry.in_a_row} failed dials; not dialled until it shows up again"
            )
        if now < entry.next_at:
            return (
                f"{entry.in_a_row} failed dial(s) in a row; next dial in "
                f"{entry.next_at - now:.1f} s"
            )
        return ""

    # --------------------------------------------------------------------------- events

    def dialling(self, peer: PeerId, now: float) -> None:
        """A dial of ``peer`` starts."""
        self._entry(peer, now).dials += 1

    def failed(self, peer: PeerId, now: float, error: str = "") -> float:
        """A dial of ``peer`` failed: the wait before the next one (``inf``: given up)."""
        entry = self._entry(peer, now)
        entry.failures += 1
        entry.in_a_row += 1
        entry.last_error = error[:MAX_ERROR_CHARS]
        if entry.failing_since is None:
            entry.failing_since = now
        if now - entry.failing_since >= self.policy.give_up_after_s:
            entry.given_up = True
            entry.next_at = math.inf
            return math.inf
        wait = self.policy.delay(entry.in_a_row)
        entry.next_at = now + wait
        return wait

    def connected(self, peer: PeerId, now: float) -> None:
        """A connection with ``peer`` is up (dialled by either side): it is reachable."""
        entry = self._peers.get(peer)
        if entry is None:
            return
        self._lift(entry, now)
        entry.in_a_row = 0
        entry.last_error = ""

    def announced(self, peer: PeerId, now: float) -> None:
        """``peer`` showed up (a new signed agent info, an explicit dial): it may be dialled at
        once, and is given ``give_up_after_s`` again. Its failures in a row still count: if the
        dial fails, the next wait goes on doubling from where it was (a bootstrap address that
        stays down is dialled less and less often, and logged as news once)."""
        entry = self._peers.get(peer)
        if entry is not None:
            self._lift(entry, now)

    def _lift(self, entry: _Peer, now: float) -> None:
        entry.touched = max(entry.touched, now)
        entry.failing_since = None
        entry.next_at = 0.0
        entry.given_up = False
        entry.forgotten = False

    def forget(self, peer: PeerId, now: float) -> None:
        """This node has no more use for ``peer``: no dial until it shows up again."""
        entry = self._entry(peer, now)
        entry.forgotten = True
        entry.next_at = math.inf

    # ----------------------------------------------------------------------------- stats

    def stats(self, now: float) -> dict[PeerId, DialStats]:
        out = {}
        for peer, entry in self._peers.items():
            if entry.forgotten or entry.given_up:
                retry: float | None = None
            else:
                retry = max(0.0, entry.next_at - now)
            out[peer] = DialStats(
                dials=entry.dials,
                failures=entry.failures,
                failing=entry.in_a_row,
                skipped=entry.skipped,
                state=self.state(peer, now).value,
                retry_in_s=retry,
                last_error=entry.last_error,
            )
        return out
