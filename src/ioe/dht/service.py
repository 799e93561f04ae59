"""One DNA's network on one node (Holochain semantics over :mod:`ioe.net`).

Membership
    Each local agent signs an :class:`~ioe.engine.dht.AgentInfo` (peer id, addresses, membrane
    proof, expiry). Nodes swap the infos they know when they connect and when they gossip; an info
    whose signature or membrane proof the DNA refuses is dropped, and a peer with no accepted info
    is refused every DHT request ("not a member").

Publishing
    Every public record a local agent commits becomes its DHT ops, queued in SQLite. The publisher
    sends each op to the ``r`` members nearest its basis (its authorities) until ``r`` valid
    receipts are in, with exponential backoff; the queue survives restarts.

Holding
    An authority validates an op with the DNA's rules (fetching missing dependencies from the
    network first), stores it with its verdict and answers with a signed receipt.

Gets
    Records, links and agent activity are read locally when held or cached, otherwise from their
    authorities, with a bounded timeout; fetched ops are checked and cached.

Gossip
    Every few seconds a node compares the ops it holds with a random member's and each sends the
    other what it lacks — this repairs whatever publishing missed (restarts, partitions).

Presence and liveness
    Joins and departures come from agents' own signed infos; a member node that vanishes
    without a word is reported absent by this node's own liveness probes
    (:mod:`ioe.dht.liveness`), within 1.5 × ``liveness_timeout_s``.

Forgetting
    A peer none of whose agents is a member any more (they departed, their infos expired, they
    were blocked) is forgotten: out of this DNA's Kademlia table and provider records, and,
    unless another DNA network of this node still counts it, forgotten by the network, which
    then never dials it until it shows up again (:mod:`ioe.net.dialling`). A newly signed info
    of it, arriving through gossip, is such a showing up.

Warrants and blocking
    An authority that judges an op invalid, or holds two agent-activity ops of one author at the
    same sequence number (a fork), signs a :class:`~ioe.engine.warrants.Warrant` and sends it to
    every member (``/ioe/<dna>/warrant/1``); gossip carries warrants to late joiners. Every
    receiver re-checks it and blocks the warranted agent — or the signer of a false warrant: its
    requests are refused, its ops dropped, its peer disconnected. See docs/warrants.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from ioe.dht.liveness import PING, LivenessWatch
from ioe.dht.revocation_gossip import RevocationGossip
from ioe.dht.revocations import RevocationRegistry
from ioe.encoding import Value, decode, encode
from ioe.engine.cell import Cell
from ioe.engine.dht import (
    DEFAULT_REPLICATION,
    AgentInfo,
    DhtOp,
    ValidationReceipt,
    authorities,
    publishable_ops,
    validate_op,
)
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Unresolved, Valid
from ioe.engine.ops import OpType
from ioe.engine.ports import ChainQuery, Link
from ioe.engine.records import CreateLink, DeleteLink, Entry, Record, SignedAction
from ioe.engine.validation import SourceHost
from ioe.engine.warrants import (
    MAX_WARRANT_BYTES,
    Refuted,
    Upheld,
    Warrant,
    WarrantKind,
    WarrantVerdict,
    check_warrant,
    fork_point,
)
from ioe.errors import EncodingError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DhtOpHash,
    EntryHash,
    HoloHash,
    from_typed_bytes,
    to_typed_bytes,
)
from ioe.net.interface import (
    MAX_PAYLOAD,
    Network,
    NetworkError,
    PeerEventKind,
    PeerId,
    RequestRefused,
)
from ioe.net.kademlia import Kademlia
from ioe.store.dht import BlockedAgent, OpStatus, SqliteDhtStore
from ioe.store.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

Clock = Callable[[], int]

MAX_WARRANTS_PER_AGENT = 8
WARRANTS_PER_PEER_PER_MINUTE = 64
"""Warrants kept about one agent: one true warrant is enough to block it; a few more let it
spread from several authorities, and false ones cannot pile up."""
MAX_WARRANT_FUTURE_US = 60_000_000
WARRANT_FETCH_ROUNDS = 8
DEPART_TIMEOUT_S = 1.5
"""How long a closing node spends telling its peers it is leaving."""
MAX_FORGOTTEN_PEERS = 1024
"""Peers a DNA network remembers having forgotten (so that it does not forget them again)."""

_RUNNING: weakref.WeakKeyDictionary[Network, set[DnaNetwork]] = weakref.WeakKeyDictionary()
"""The DNA networks running on each network: a peer is forgotten by the network only when none
of them counts it a member."""


@dataclass(frozen=True, slots=True)
class DhtConfig:
    replication: int = DEFAULT_REPLICATION
    publish_interval_s: float = 0.25
    gossip_interval_s: float = 2.0
    agent_info_ttl_s: float = 20 * 60.0
    agent_info_refresh_s: float = 5 * 60.0
    request_timeout_s: float = 5.0
    max_backoff_s: float = 30.0
    gossip_fanout: int = 2
    max_ops_per_request: int = 256
    liveness_timeout_s: float = 30.0
    """A watched member's node silent this long (and not answering a probe) is reported
    absent: within 1.5 × this after it vanishes (see :mod:`ioe.dht.liveness`)."""
    liveness_neighbours: int = 32
    """Members nearest the local agents whose nodes are watched (besides :meth:`watch`)."""
    liveness_max_probes: int = 8


@dataclass
class _LocalAgent:
    cell: Cell
    membrane_proof: bytes | None


@dataclass
class DhtStats:
    published: int = 0
    held: int = 0
    refused_peers: int = 0
    rejected_ops: int = 0
    gossip_rounds: int = 0
    fetched: int = 0
    warrants_signed: int = 0  # by a local authority agent
    warrants_upheld: int = 0  # true warrants received and kept (the warranted agent is blocked)
    warrants_false: int = 0  # false warrants received (their signer is blocked)
    warrants_refused: int = 0  # garbled, oversized or unattributable: nobody blocked
    blocked_drops: int = 0  # ops or requests of blocked agents turned away
    errors: list[str] = field(default_factory=list)


class DnaNetwork:
    """Runs one DNA's DHT workflows for the local cells of that DNA."""

    def __init__(
        self,
        dna: DnaDef,
        db: SqliteDatabase,
        network: Network,
        *,
        clock: Clock,
        config: DhtConfig | None = None,
    ) -> None:
        self.dna = dna
        self.db = db
        self.net = network
        self.clock = clock
        self.config = config or DhtConfig()
        self.store = SqliteDhtStore(db, dna.hash)
        self.host = SourceHost(dna, self.store)
        self.stats = DhtStats()
        self.on_presence: Callable[[AgentPubKey, bool], None] | None = None
        self.on_blocked: Callable[[AgentPubKey], None] | None = None
        """Told when another agent is first blocked for a warrant checked here (reputation)."""
        """Told when another agent joins (True) or leaves (False) this network, as its own
        signed infos say, or when its node stops or starts answering again (liveness): a
        node's presence alerts."""
        self._reported: set[AgentPubKey] = set()  # agents last reported present
        self._watched: set[AgentPubKey] = set()
        self._local: dict[AgentPubKey, _LocalAgent] = {}
        self.excluded: set[AgentPubKey] = set()
        """Agents this node no longer counts as members though their membrane proof once passed
        (an app network's members whose community membership was revoked since): their infos
        are refused and they are left out of :meth:`members`, so their requests are refused."""
        self.closed = False
        """Set by :meth:`close`: the network's protocols refuse every request from then on
        (an app network this node left keeps no handler serving)."""
        self._down_until: dict[PeerId, float] = {}
        self._failures: dict[PeerId, int] = {}
        self._member_peers_seen: set[PeerId] = set()
        self._forgotten: dict[PeerId, None] = {}  # peers forgotten here, oldest first
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random()
        prefix = f"/ioe/{dna.hash.to_text()}"
        self.protocol_agents = f"{prefix}/agents/1"
        self.protocol_publish = f"{prefix}/publish/1"
        self.protocol_get = f"{prefix}/get/1"
        self.protocol_gossip = f"{prefix}/gossip/1"
        self.protocol_warrant = f"{prefix}/warrant/1"
        self.protocol_ping = f"{prefix}/ping/1"
        self.liveness = LivenessWatch(
            network,
            self.protocol_ping,
            timeout_s=self.config.liveness_timeout_s,
            max_probes=self.config.liveness_max_probes,
            peers_to_watch=self._liveness_peers,
            on_change=self._sync_presence,
            clock_us=clock,
        )
        self._blocked: dict[AgentPubKey, BlockedAgent] = self.store.blocked()
        self.revocations = RevocationRegistry(db, dna)
        """Known revocations: their keys' later ops and infos are refused (``revocations``)."""
        self.revocation_gossip = RevocationGossip(self, self._spawn)
        """Passes each revocation or transfer learned here on to every member."""
        self._deferred: list[Callable[[], None]] | None = None
        self._warrant_window: dict[PeerId, tuple[float, int]] = {}
        self._blocked_peers: set[PeerId] = set()
        self._refresh_blocked_peers()
        # This DNA's own Kademlia DHT (``/ioe/<dna>/kad/1.0.0``): finds the DNA's members among
        # nodes this one is not connected to yet.
        self.routing = Kademlia(
            network, dna.hash.to_text(), request_timeout_s=self.config.request_timeout_s
        )

    # ----------------------------------------------------------------------------- lifecycle

    def add_cell(self, cell: Cell, membrane_proof: bytes | None = None) -> None:
        if cell.dna.hash != self.dna.hash:
            raise ValueError("cell of another DNA")
        self._local[cell.agent] = _LocalAgent(cell, membrane_proof)

    async def start(self) -> None:
        await self.routing.start()
        self.net.set_handler(self.protocol_agents, self._on_agents)
        self.net.set_handler(self.protocol_publish, self._on_publish)
        self.net.set_handler(self.protocol_get, self._on_get)
        self.net.set_handler(self.protocol_gossip, self._on_gossip)
        self.net.set_handler(self.protocol_warrant, self._on_warrant)
        self.net.set_handler(self.protocol_ping, self._on_ping)
        self.net.set_handler(self.revocation_gossip.protocol, self.revocation_gossip.handle)
        _RUNNING.setdefault(self.net, set()).add(self)
        self.announce()
        self._reported = self._present_now()  # known from an earlier run: no alerts for them
        self._member_peers_seen = self._member_peers() - {self.net.peer_id}
        events = self.net.peer_events()
        for name, job in (
            ("publisher", self._publisher()),
            ("gossip", self._gossip_loop()),
            ("announcer", self._announcer()),
            ("peer-events", self._watch_peers(events)),
            ("discovery", self._discover_members()),
            ("liveness", self.liveness.run(self.config.request_timeout_s)),
        ):
            self._tasks.append(asyncio.create_task(job, name=f"dht-{name}"))
        for peer in self.net.connected_peers():
            if self.blocked_peer(peer):
                self._spawn(self._hang_up([peer]))
            else:
                self._spawn(self.exchange_agent_infos(peer))

    async def close(self) -> None:
        self.closed = True
        _RUNNING.get(self.net, set()).discard(self)
        with contextlib.suppress(Exception):
            await self.routing.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                log.warning("DHT task %s did not stop", task.get_name())
        self._tasks.clear()

    def _spawn(self, job: Any) -> None:
        task = asyncio.create_task(job)
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def notify_commit(self) -> None:
        """A local chain grew: publish soon."""
        self._wake.set()

    async def wait_published(
        self, action_hashes: Sequence[ActionHash], *, timeout_s: float, poll_s: float = 0.05
    ) -> bool:
        """Wait (at most ``timeout_s``) until every op of these local records is held by its
        authorities: what to do before telling a peer to fetch them. False on time-out."""
        wanted: list[DhtOpHash] = []
        for action_hash in action_hashes:
            record = self.db.get_record(action_hash)
            if record is None:
                raise ValueError(f"{action_hash.short()} is not a record of this node")
            wanted.extend(op.hash for op in publishable_ops(record))
        self.notify_commit()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.store.all_published(wanted):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll_s)
        return True

    # ---------------------------------------------------------------------------- membership

    def announce(self) -> None:
        """(Re)sign the local agents' infos with the node's current addresses."""
        now = self.clock()
        for agent in self._local.values():
            info = AgentInfo.sign(
                agent.cell.keys,
                dna_hash=self.dna.hash,
                peer_id=self.net.peer_id,
                addrs=self.net.listen_addrs(),
                now_us=now,
                ttl_us=int(self.config.agent_info_ttl_s * 1e6),
                membrane_proof=agent.membrane_proof,
            )
            problem = info.check(self.dna, now)
            if problem is not None:  # e.g. no valid membrane proof: this agent is not a member
                log.warning("local agent %s cannot join: %s", agent.cell.agent.short(), problem)
                continue
            self.store.put_agent_info(info)

    def members(self) -> dict[AgentPubKey, AgentInfo]:
        """Every agent with an unexpired info (local agents included). Infos are checked
        (signature, membrane) once, before they are stored, not again on every look-up: this
        runs for every request a peer makes."""
        return {
            info.agent: info
            for info in self.store.agent_infos(self.clock())
            if info.agent not in self._blocked
            and info.agent not in self.excluded
            and not info.departed
            and (info.agent in self._local or not self.revocations.revoked(info.agent))
        }

    def live_members(self) -> dict[AgentPubKey, AgentInfo]:
        """Members whose node is not known to be down (local agents always count)."""
        now = asyncio.get_running_loop().time()
        return {
            agent: info
            for agent, info in self.members().items()
            if info.peer_id == self.net.peer_id
            or self._down_until.get(PeerId(info.peer_id), 0.0) <= now
        }

    def _note_failure(self, peer: PeerId) -> None:
        """A peer did not answer: leave it out of authority choices for a while (doubling)."""
        count = self._failures.get(peer, 0) + 1
        self._failures[peer] = count
        backoff = min(self.config.max_backoff_s * 2, 1.0 * 2 ** min(count, 8))
        self._down_until[peer] = asyncio.get_running_loop().time() + backoff

    def _note_success(self, peer: PeerId) -> None:
        self._failures.pop(peer, None)
        self._down_until.pop(peer, None)
        self.liveness.heard(peer)

    def _member_peers(self) -> set[PeerId]:
        return {PeerId(info.peer_id) for info in self.members().values()}

    def _require_member(self, peer: PeerId) -> None:
        if self.closed:
            raise RequestRefused("this node no longer runs this DNA's network")
        self._refuse_blocked(peer)
        if peer not in self._member_peers():
            self.stats.refused_peers += 1
            raise RequestRefused("not a member of this DNA's network")

    def _accept_infos(self, raw: Value) -> list[AgentInfo]:
        if type(raw) is not list or len(raw) > 4096:
            raise RequestRefused("agent infos must be a list")
        now = self.clock()
        accepted = []
        for item in raw:
            if type(item) is not bytes:
                continue
            try:
                info = AgentInfo.from_bytes(item)
            except EncodingError:
                continue
            if info.agent in self._blocked or info.agent in self.excluded:
                continue
            problem = info.check(self.dna, now) or self.revocations.info_refusal(info)
            if problem is not None:
                log.info("refused agent info of %s: %s", info.agent.short(), problem)
                continue
            if info.agent in self._local and info.peer_id != self.net.peer_id:
                continue  # nobody else speaks for our own agents
            stored = self.store.put_agent_info(info)
            if not info.departed and info.peer_id != self.net.peer_id:
                self.net.note_member_peer(PeerId(info.peer_id))  # large frames from it now
            if stored and info.peer_id != self.net.peer_id and not info.departed:
                # newly signed by the agent: its node is there (or was, a moment ago)
                self.net.peer_announced(PeerId(info.peer_id), list(info.addrs))
                self.liveness.announced(PeerId(info.peer_id), info.signed_at_us)
            accepted.append(info)
        self._sync_presence()
        return accepted

    def _known_infos_payload(self) -> list[bytes]:
        """Every unexpired info, departures included, so that they spread too."""
        return [
            info.to_bytes()
            for info in self.store.agent_infos(self.clock())
            if info.agent not in self._blocked
        ]

    async def depart(self, timeout_s: float = DEPART_TIMEOUT_S) -> None:
        """Say that the local agents are leaving: sign infos with no addresses and hand them
        to the member nodes this node can reach (bounded by ``timeout_s``); they pass them on.
        A node that starts again announces itself anew, which supersedes the departure."""
        peers = {PeerId(i.peer_id) for i in self.members().values()} - {PeerId(self.net.peer_id)}
        now = self.clock()
        for agent in self._local.values():
            info = AgentInfo.sign(
                agent.cell.keys,
                dna_hash=self.dna.hash,
                peer_id=self.net.peer_id,
                addrs=(),
                now_us=now,
                ttl_us=int(self.config.agent_info_ttl_s * 1e6),
                membrane_proof=agent.membrane_proof,
            )
            self.store.put_agent_info(info)
        if not peers or not self._local:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(self.exchange_agent_infos(p) for p in peers))

    async def exchange_agent_infos(self, peer: PeerId) -> None:
        """Swap agent infos with ``peer`` (how a node joins, and how membership spreads)."""
        if self.blocked_peer(peer):
            return
        try:
            reply = await self.net.request(
                peer,
                self.protocol_agents,
                encode(self._known_infos_payload()),
                timeout=self.config.request_timeout_s,
            )
            self._accept_infos(decode(reply))
        except (NetworkError, EncodingError) as exc:
            log.debug("agent info exchange with %s failed: %s", peer, exc)

    async def _on_agents(self, peer: PeerId, payload: bytes) -> bytes:
        if self.closed:
            raise RequestRefused("this node no longer runs this DNA's network")
        self._refuse_blocked(peer)
        offered = self._accept_infos(_decode(payload))
        if not any(info.peer_id == peer for info in offered) and peer not in self._member_peers():
            self.stats.refused_peers += 1
            raise RequestRefused("not a member: no accepted agent info for this peer")
        return encode(self._known_infos_payload())

    async def _watch_peers(self, events: Any) -> None:
        async for event in events:
            if event.kind is PeerEventKind.CONNECTED and self.blocked_peer(event.peer):
                self._spawn(self._hang_up([event.peer]))
            elif event.kind is PeerEventKind.CONNECTED:
                self._note_success(event.peer)
                self._spawn(self.exchange_agent_infos(event.peer))
            else:
                self._note_failure(event.peer)

    async def _discover_members(self) -> None:
        """Announce this node as a provider of the DNA on its Kademlia DHT and swap agent infos
        with the other providers found there (those not already members)."""
        key = bytes(self.dna.hash)
        while True:
            with contextlib.suppress(NetworkError):
                await self.routing.provide(key)
            with contextlib.suppress(NetworkError):
                for peer in await self.routing.find_providers(key, 20):
                    if (
                        peer != self.net.peer_id
                        and peer not in self._member_peers()
                        and peer not in self._forgotten  # it left: it comes back by itself
                        and not self.blocked_peer(peer)
                    ):
                        self._spawn(self.exchange_agent_infos(peer))
            await asyncio.sleep(self.config.gossip_interval_s * 5)

    async def _announcer(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent_info_refresh_s)
            self.announce()
            for peer in self._member_peers() - {self.net.peer_id}:
                self._spawn(self.exchange_agent_infos(peer))

    # ------------------------------------------------------------------ presence, liveness

    def watch(self, agents: Collection[AgentPubKey]) -> None:
        """Also watch the nodes of these agents (e.g. an owner's own devices), however far
        they are from the local agents. Replaces the previous list."""
        self._watched = set(agents)

    def present(self, agent: AgentPubKey) -> bool:
        """Whether ``agent`` counts as present here: a member (by its signed infos) whose node
        is not known to be silent (liveness). Local agents are always present."""
        return agent in self._local or agent in self._reported

    def last_seen_us(self, agent: AgentPubKey) -> int | None:
        """When this node last heard from ``agent``'s node (watched nodes only), by its clock."""
        info = self.members().get(agent)
        if info is None:
            return None
        return self.liveness.last_seen_us.get(PeerId(info.peer_id))

    def _present_now(self) -> set[AgentPubKey]:
        return {
            agent
            for agent, info in self.members().items()
            if info.peer_id != self.net.peer_id
            and not self.liveness.is_absent(PeerId(info.peer_id))
        }

    def _sync_presence(self) -> None:
        """Tell ``on_presence`` whoever joined or left since the last report (signed infos,
        departures, expiry, blocking and liveness all come down to this one difference)."""
        now = self._present_now()
        joined, left = now - self._reported, self._reported - now
        self._reported = now
        self._forget_gone_peers()
        if self.on_presence is None:
            return
        for agent in sorted(left):
            self.on_presence(agent, False)
        for agent in sorted(joined):
            self.on_presence(agent, True)

    def _forget_gone_peers(self) -> None:
        """Forget the peers that were members' nodes and are no more (every agent of theirs
        departed, expired or was blocked), and those known only by departures."""
        own = self.net.peer_id
        now_peers = self._member_peers() - {own}
        departed = {
            PeerId(info.peer_id) for info in self.store.agent_infos(self.clock()) if info.departed
        }
        gone = (self._member_peers_seen - now_peers) | (departed - now_peers - {own})
        gone -= self._forgotten.keys()
        self._member_peers_seen = now_peers
        for peer in now_peers & self._forgotten.keys():
            del self._forgotten[peer]  # back
        for peer in sorted(gone):
            self._forgotten[peer] = None
            self._peer_gone(peer)
        while len(self._forgotten) > MAX_FORGOTTEN_PEERS:
            del self._forgotten[next(iter(self._forgotten))]

    def _peer_gone(self, peer: PeerId) -> None:
        self.routing.forget(peer)
        self._failures.pop(peer, None)
        self._down_until.pop(peer, None)
        siblings = [d for d in _RUNNING.get(self.net, ()) if d is not self and not d.closed]
        if any(peer in d._member_peers() for d in siblings):
            log.debug(
                "peer %s left %s but is a member of another network here", peer, self.dna.name
            )
            return
        self.net.forget_peer(peer)

    def _liveness_peers(self) -> set[PeerId]:
        """The nodes watched: those of explicitly watched agents, and of the members nearest
        the local agents (``liveness_neighbours``; all of them in small networks)."""
        members = {a: i for a, i in self.members().items() if i.peer_id != self.net.peer_id}
        chosen = {members[a] for a in self._watched if a in members}
        chosen |= {i for i in members.values() if self.liveness.is_absent(PeerId(i.peer_id))}
        for local in self._local:
            for agent in authorities(local, members, self.config.liveness_neighbours):
                chosen.add(members[agent])
        self._sync_presence()  # expiries and blocks are noticed here too, once per tick
        return {PeerId(info.peer_id) for info in chosen}

    async def _on_ping(self, peer: PeerId, payload: bytes) -> bytes:
        """A liveness probe: a member asks whether this node is there (so it is, too)."""
        self._require_member(peer)
        self.liveness.heard(peer)
        return PING

    def authorities_of(self, basis: HoloHash) -> list[AgentInfo]:
        """The ``r`` live members nearest ``basis``."""
        members = self.live_members()
        chosen = authorities(basis, members, self.config.replication)
        return [members[agent] for agent in chosen]

    # ----------------------------------------------------------------------------- publishing

    def _queue_new_records(self) -> int:
        """Queue the ops of records committed since the last time (per local chain)."""
        queued = 0
        now = self.clock()
        for agent in self._local.values():
            key = f"published_seq:{self.dna.hash.to_text()}:{agent.cell.agent.to_text()}"
            done = self.db.get_setting(key)
            start = int(done) + 1 if isinstance(done, int) else 0
            records = agent.cell.store.query(ChainQuery(from_seq=start))
            if not records:
                continue
            ops = [op for record in records for op in publishable_ops(record)]
            queued += self.store.enqueue(ops, now)
            self.db.put_setting(key, records[-1].action.seq)
        return queued

    async def _publisher(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the event, and close() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.publish_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                self._queue_new_records()
                await self.publish_due()
            except Exception as exc:  # the loop must survive anything one round does
                log.exception("publish round failed")
                self.stats.errors.append(f"publish: {exc}")

    async def publish_due(self) -> None:
        """One publishing round over the ops whose next attempt is due."""
        now = self.clock()
        due = self.store.due(now, limit=self.config.max_ops_per_request * 4)
        if not due:
            return
        members = self.live_members()
        wanted = min(self.config.replication, len(members))
        by_peer: dict[PeerId, list[tuple[DhtOp, list[AgentPubKey]]]] = {}
        local: list[tuple[DhtOp, list[AgentPubKey]]] = []
        with self.db.transaction():  # the round's bookkeeping in one commit, not one per op
            for item in due:
                if item.op.signed_action.action.author in self._blocked:
                    self.store.mark_published(item.op_hash)  # nobody would take it
                    continue
                have = self.store.receipt_validators(item.op_hash)
                targets = [
                    members[a]
                    for a in authorities(item.op.basis(), members, wanted)
                    if a not in have
                ]
                if len(have) >= wanted > 0:
                    if self.store.mark_published(item.op_hash):
                        self.stats.published += 1
                    continue
                for info in targets:
                    if info.agent in self._local:
                        local.append((item.op, [info.agent]))
                    else:
                        by_peer.setdefault(PeerId(info.peer_id), []).append((item.op, [info.agent]))
                backoff = min(self.config.max_backoff_s, 0.5 * 2 ** min(item.attempts, 10))
                self.store.reschedule(item.op_hash, item.attempts + 1, now + int(backoff * 1e6))
        if local:
            receipts = await self.hold_many(local)
            with self.db.transaction():
                for receipt in receipts:
                    self.store.add_receipt(receipt)
                self._settle({op.hash for op, _ in local}, wanted)
        sends = [self._send_ops(peer, items, wanted) for peer, items in by_peer.items()]
        await asyncio.gather(*sends)
        if sends or local:  # ops short of receipts try other authorities soon
            self._wake.set()

    def _settle(self, op_hashes: set[DhtOpHash], wanted: int) -> None:
        """Mark done, at once, the ops that now hold ``wanted`` receipts.

        Not left to the op's next attempt: that may be a backoff away, and one silent peer
        holding up a round must not hold up the ops the others have already taken."""
        for op_hash in op_hashes:
            held = len(self.store.receipt_validators(op_hash))
            if wanted > 0 and held >= wanted and self.store.mark_published(op_hash):
                self.stats.published += 1

    async def _send_ops(
        self, peer: PeerId, items: list[tuple[DhtOp, list[AgentPubKey]]], wanted: int = 0
    ) -> None:
        for start in range(0, len(items), self.config.max_ops_per_request):
            chunk = items[start : start + self.config.max_ops_per_request]
            payload = encode(
                {
                    "ops": [op.to_bytes() for op, _ in chunk],
                    "to": [[bytes(a) for a in agents] for _, agents in chunk],
                }
            )
            if len(payload) > MAX_PAYLOAD:
                payload = encode({"ops": [chunk[0][0].to_bytes()], "to": [[bytes(chunk[0][1][0])]]})
            try:
                reply = await self.net.request(
                    peer, self.protocol_publish, payload, timeout=self.config.request_timeout_s * 2
                )
                self._take_receipts(decode(reply), {op.hash for op, _ in chunk}, wanted)
                self._note_success(peer)
            except (NetworkError, EncodingError) as exc:
                self._note_failure(peer)
                log.debug("publishing to %s failed: %s", peer, exc)

    def _take_receipts(self, raw: Value, expected: set[DhtOpHash], wanted: int = 0) -> None:
        if type(raw) is not list:
            return
        members = self.members()
        with self.db.transaction():
            self._take_receipt_items(raw, expected, members)
            self._settle(expected, wanted)

    def _take_receipt_items(
        self, raw: list[Value], expected: set[DhtOpHash], members: dict[AgentPubKey, AgentInfo]
    ) -> None:
        for item in raw:
            try:
                receipt = ValidationReceipt.from_value(item)
            except EncodingError:
                continue
            if (
                receipt.op in expected
                and receipt.validator in members
                and receipt.signature_valid()
            ):
                self.store.add_receipt(receipt)

    async def _on_publish(self, peer: PeerId, payload: bytes) -> bytes:
        self._require_member(peer)
        body = _decode(payload)
        if type(body) is not dict or type(body.get("ops")) is not list:
            raise RequestRefused("publish takes {ops, to}")
        ops_raw, to_raw = body["ops"], body.get("to")
        if len(ops_raw) > self.config.max_ops_per_request:
            raise RequestRefused("too many ops in one request")
        items: list[tuple[DhtOp, Sequence[AgentPubKey]]] = []
        for index, raw in enumerate(ops_raw):
            if type(raw) is not bytes:
                continue
            try:
                op = DhtOp.from_bytes(raw)
            except EncodingError as exc:
                self.stats.rejected_ops += 1
                log.info("rejected a malformed op from %s: %s", peer, exc)
                continue
            items.append((op, self._targets(to_raw, index, op)))
        return encode([receipt.to_value() for receipt in await self.hold_many(items)])

    def _targets(self, to_raw: Value, index: int, op: DhtOp) -> list[AgentPubKey]:
        """The local agents an op was sent to that really are among its authorities.

        Views of who is live differ: the sender may know a nearer member is down that this
        node still counts (or the other way round). So a named agent holds the op when it is
        among the nearest ``2 × r`` live members as this node sees them; otherwise the sender
        would wait for a receipt that never comes."""
        named: list[AgentPubKey] = []
        if type(to_raw) is list and index < len(to_raw) and type(to_raw[index]) is list:
            named = [AgentPubKey(a) for a in to_raw[index] if type(a) is bytes and len(a) == 32]
        members = self.live_members()
        near = authorities(op.basis(), members, self.config.replication * 2)
        mine = set(self._local) & set(near[: self.config.replication])
        return [agent for agent in named if agent in self._local and agent in near] or sorted(mine)

    async def hold(self, op: DhtOp, agents: Sequence[AgentPubKey]) -> list[ValidationReceipt]:
        """Validate and store ``op`` as an authority; receipts signed by ``agents`` (local).

        A newly judged invalid op, or a new agent-activity op that forks its author's chain, is
        warranted (signed by one of ``agents``) and the warrant spread."""
        held = self._hold_ready(op, agents, final=False)
        if isinstance(held, Unresolved):
            await self._fetch_dependencies(held.deps)
            held = self._hold_ready(op, agents, final=True)
        assert not isinstance(held, Unresolved)
        return held

    async def hold_many(
        self, items: Sequence[tuple[DhtOp, Sequence[AgentPubKey]]]
    ) -> list[ValidationReceipt]:
        """:meth:`hold` for many ops: those whose dependencies are here are stored in one
        transaction (one disk sync, not one per op); the others fetch theirs first."""
        receipts: list[ValidationReceipt] = []
        later = []
        self._deferred = []
        try:
            with self.db.transaction():
                for op, agents in items:
                    held = self._hold_ready(op, agents, final=False)
                    if isinstance(held, Unresolved):
                        later.append((op, agents))
                    else:
                        receipts.extend(held)
            effects = self._deferred
        finally:
            self._deferred = None
        for effect in effects:
            effect()
        for op, agents in later:
            receipts.extend(await self.hold(op, agents))
        return receipts

    def _hold_ready(
        self, op: DhtOp, agents: Sequence[AgentPubKey], *, final: bool
    ) -> list[ValidationReceipt] | Unresolved:
        """Hold ``op`` with what is here. Missing dependencies: ``Unresolved`` (nothing stored)
        unless ``final``, when the op is kept as pending."""
        if self.is_blocked(op.signed_action.action.author):
            self.stats.blocked_drops += 1
            return []
        if not op.signed_action.signature_valid():
            # Not the author's op at all: someone else's forgery must not poison the verdict on
            # the genuine op, which has the same op hash. Refuse it and keep nothing.
            self.stats.rejected_ops += 1
            log.info("refused an op with a forged signature (%s)", op.hash.short())
            return []
        revoked = self.revocations.refusal(op.signed_action)
        if revoked is not None:  # not warranted: validation cannot see revocations
            self.stats.rejected_ops += 1
            log.info("refused op %s: %s", op.hash.short(), revoked)
            return []
        status = self.store.op_status(op.hash)
        if status not in (OpStatus.VALID, OpStatus.INVALID):
            outcome = validate_op(op, self.dna, self.host)
            if isinstance(outcome, Unresolved):
                if not final:
                    return outcome
                self.store.put_op(op, OpStatus.PENDING, self.clock())
                return []
            status = OpStatus.VALID if isinstance(outcome, Valid) else OpStatus.INVALID
            if isinstance(outcome, Invalid):
                self.stats.rejected_ops += 1
                log.info("op %s is invalid: %s", op.hash.short(), outcome.reason)
            if self.store.put_op(op, status, self.clock()):
                self.stats.held += 1
                if isinstance(outcome, Invalid):
                    self._warrant_invalid_op(op, outcome.reason, agents)
                elif op.op_type is OpType.REGISTER_AGENT_ACTIVITY:
                    self._detect_fork(op, agents)
            if status is OpStatus.VALID:
                self.revocations.observe(op, self.host)
        now = self.clock()
        return [
            ValidationReceipt.sign(
                op.hash, self._local[a].cell.keys, valid=status is OpStatus.VALID, when_us=now
            )
            for a in agents
            if a in self._local
        ]

    async def _fetch_dependencies(self, deps: Sequence[HoloHash]) -> None:
        await self.fetch_missing(deps)

    async def fetch_missing(self, deps: Sequence[object]) -> int:
        """Fetch what a validation found missing (at most 16 of ``deps``); how many are here
        now. An entry hash is fetched as an entry, an unknown action hash as a record, and a
        known action hash was missing as the top of its author's chain (a chain walk), so the
        author's activity is fetched."""
        arrived = 0
        for dep in list(deps)[:16]:
            if isinstance(dep, EntryHash):
                arrived += await self.get_entry(dep) is not None
            elif isinstance(dep, ActionHash):
                known = self.store.get_action(dep)
                if known is None:
                    arrived += await self.get_record(dep) is not None
                    continue
                author = known.action.author
                if self.store.get_agent_activity(author, dep) is None:
                    await self.get_agent_activity(author)
                    arrived += self.store.get_agent_activity(author, dep) is not None
            elif isinstance(dep, AgentPubKey):
                arrived += bool(await self.get_agent_activity(dep))
        return arrived

    # -------------------------------------------------------------------------------- gets

    async def _ask_authorities(
        self, basis: HoloHash, kind: str, *, widest: int | None = None
    ) -> list[DhtOp]:
        """Ops of ``kind`` at ``basis`` from its authorities (the first useful answer per
        authority; all answers merged); with ``widest``, from that many members nearest it."""
        if widest is None:
            nearest = self.authorities_of(basis)
        else:
            members = self.live_members()
            nearest = [members[a] for a in authorities(basis, members, widest)]
        infos = [i for i in nearest if i.peer_id != self.net.peer_id]
        payload = encode({"kind": kind, "basis": to_typed_bytes(basis)})

        async def ask(info: AgentInfo) -> list[DhtOp]:
            peer = PeerId(info.peer_id)
            try:
                reply = await self.net.request(
                    peer, self.protocol_get, payload, timeout=self.config.request_timeout_s
                )
                raw = decode(reply)
            except (NetworkError, EncodingError):
                self._note_failure(peer)
                return []
            self._note_success(peer)
            found = []
            for item in raw if type(raw) is list else []:
                try:
                    op = DhtOp.from_bytes(item)
                except (EncodingError, TypeError):
                    continue
                if (
                    op.basis() == basis
                    and not self.is_blocked(op.signed_action.action.author)
                    and self.revocations.refusal(op.signed_action) is None
                    and op.signed_action.signature_valid()
                ):
                    found.append(op)
            return found

        answers = await asyncio.gather(*(ask(info) for info in infos))
        merged: dict[DhtOpHash, DhtOp] = {}
        for ops in answers:
            for op in ops:
                merged.setdefault(op.hash, op)
        return list(merged.values())

    async def ask_widely(self, basis: HoloHash, kind: str, members: int = 32) -> list[DhtOp]:
        """Every op of ``kind`` (record, entry, links, activity) at ``basis`` held by the
        ``members`` live members nearest it (not only its ``r`` authorities: gossip may not
        have handed them everything yet), signatures checked, nothing validated or kept: for
        a caller that judges all answers itself (a chain restore must see a fork, not one side
        of it, and the whole chain, not what one authority has so far)."""
        return await self._ask_authorities(basis, kind, widest=members)

    async def get_record(self, action_hash: ActionHash) -> Record | None:
        local = self.store.get_record(action_hash)
        complete = local is not None and (
            local.entry is not None or local.action.entry_hash is None or local.is_private()
        )
        if local is not None and complete:  # (an action known without its entry is fetched)
            voided = self.revocations.refusal(local.signed_action) is not None
            return None if self.is_blocked(local.action.author) or voided else local
        for op in await self._ask_authorities(action_hash, "record"):
            if op.op_type is OpType.STORE_RECORD and op.signed_action.hash == action_hash:
                if isinstance(validate_op(op, self.dna, self.host), Invalid):
                    continue
                record = Record(op.signed_action, op.entry)
                with self.db.transaction():
                    self.store.put_op(op, OpStatus.CACHED, self.clock())
                    for also in publishable_ops(record):  # its entry, found by entry hash
                        if also.op_type is OpType.STORE_ENTRY:
                            self.store.put_op(also, OpStatus.CACHED, self.clock())
                self.stats.fetched += 1
                return record
        return None

    async def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        """An entry by its hash, from its authorities when it is not known here."""
        local = self.store.get_entry(entry_hash)
        if local is not None:
            return local
        for op in await self._ask_authorities(entry_hash, "entry"):
            if op.op_type is OpType.STORE_ENTRY and op.entry is not None:
                if isinstance(validate_op(op, self.dna, self.host), Invalid):
                    continue
                self.store.put_op(op, OpStatus.CACHED, self.clock())
                self.stats.fetched += 1
                return op.entry
        return None

    async def get_links(self, base: HoloHash, link_type: str | None = None) -> list[Link]:
        types = [OpType.REGISTER_ADD_LINK, OpType.REGISTER_REMOVE_LINK]
        ops = {op.hash: op for op in self._unblocked(self.store.ops_at(base, types))}
        for op in await self._ask_authorities(base, "links"):
            if op.op_type in types and op.hash not in ops:
                ops[op.hash] = op
                self.store.put_op(op, OpStatus.CACHED, self.clock())
        wanted = self.dna.link_type_for(link_type) if link_type is not None else None
        removed = {
            op.signed_action.action.link_add
            for op in ops.values()
            if isinstance(op.signed_action.action, DeleteLink)
        }
        links = []
        for op in ops.values():
            action = op.signed_action.action
            if not isinstance(action, CreateLink) or op.signed_action.hash in removed:
                continue
            if wanted is not None and (action.zome_index, action.link_type) != wanted:
                continue
            links.append(
                Link(
                    op.signed_action.hash,
                    action.author,
                    action.timestamp,
                    action.base,
                    action.target,
                    action.zome_index,
                    action.link_type,
                    action.tag,
                )
            )
        return sorted(links, key=lambda link: (link.timestamp, bytes(link.create_action)))

    async def get_agent_activity(self, agent: AgentPubKey) -> list[SignedAction]:
        if self.is_blocked(agent):
            return []
        activity = self._unblocked(self.store.ops_at(agent, [OpType.REGISTER_AGENT_ACTIVITY]))
        ops = {op.hash: op for op in activity}
        fetched = [
            op for op in await self._ask_authorities(agent, "activity") if op.hash not in ops
        ]
        with self.db.transaction():  # kept (cached) so validation can walk the chain later
            for op in fetched:
                ops[op.hash] = op
                if not isinstance(validate_op(op, self.dna, self.host), Invalid):
                    self.store.put_op(op, OpStatus.CACHED, self.clock())
        by_seq: dict[int, SignedAction] = {}
        for op in ops.values():
            by_seq.setdefault(op.signed_action.action.seq, op.signed_action)
        return [by_seq[seq] for seq in sorted(by_seq)]

    _GET_KINDS: dict[str, tuple[OpType, ...]] = {  # noqa: RUF012 - a constant table
        "record": (OpType.STORE_RECORD,),
        "entry": (OpType.STORE_ENTRY,),
        "links": (OpType.REGISTER_ADD_LINK, OpType.REGISTER_REMOVE_LINK),
        "activity": (OpType.REGISTER_AGENT_ACTIVITY,),
    }

    async def _on_get(self, peer: PeerId, payload: bytes) -> bytes:
        self._require_member(peer)
        body = _decode(payload)
        if type(body) is not dict:
            raise RequestRefused("get takes {kind, basis}")
        kinds = self._GET_KINDS.get(body.get("kind"))  # type: ignore[arg-type]
        basis_raw = body.get("basis")
        if kinds is None or type(basis_raw) is not bytes:
            raise RequestRefused("unknown get")
        try:
            basis = from_typed_bytes(basis_raw)
        except EncodingError as exc:
            raise RequestRefused(f"bad basis: {exc}") from exc
        ops = self._unblocked(self.store.ops_at(basis, kinds, include_cached=False))
        if not ops and kinds == (OpType.STORE_RECORD,) and isinstance(basis, ActionHash):
            record = self.db.get_record(basis)  # an author answers for its own records too
            if record is not None and not record.is_private():
                ops = [op for op in publishable_ops(record) if op.op_type is OpType.STORE_RECORD]
        return encode([op.to_bytes() for op in ops[: self.config.max_ops_per_request]])

    # ------------------------------------------------------------------------------- gossip

    async def _gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.gossip_interval_s * (0.75 + self._rng.random() / 2))
            try:
                await self.gossip_round()
            except Exception as exc:
                log.exception("gossip round failed")
                self.stats.errors.append(f"gossip: {exc}")

    async def gossip_round(self) -> None:
        known = self._member_peers()
        # Connected peers we have no agent info from yet: the first exchange may have been lost.
        for peer in set(self.net.connected_peers()) - known - self._blocked_peers:
            self._spawn(self.exchange_agent_infos(peer))
        now = asyncio.get_running_loop().time()
        peers = sorted(  # not those known to be down: their gossip would only be a failed dial
            p
            for p in known - {self.net.peer_id}
            if not self.liveness.is_absent(p) and self._down_until.get(p, 0.0) <= now
        )
        if not peers:
            return
        chosen = self._rng.sample(peers, min(self.config.gossip_fanout, len(peers)))
        await asyncio.gather(*(self._gossip_with(peer) for peer in chosen))
        await asyncio.gather(*(self.revocation_gossip.exchange(peer) for peer in chosen))
        # Ops waiting for dependencies get another chance each round.
        for op in self.store.pending_ops(limit=64):
            targets = [
                a for a in (i.agent for i in self.authorities_of(op.basis())) if a in self._local
            ]
            await self.hold(op, targets)
        self.stats.gossip_rounds += 1

    def _held_summary(self) -> list[Value]:
        return [[bytes(h), to_typed_bytes(basis)] for h, basis in self.store.held_index()]

    async def _gossip_with(self, peer: PeerId) -> None:
        payload = encode(
            {
                "infos": self._known_infos_payload(),
                "have": self._held_summary(),
                "warrants": [bytes(h) for h in self.store.warrant_hashes()],
            }
        )
        try:
            reply = decode(
                await self.net.request(
                    peer, self.protocol_gossip, payload, timeout=self.config.request_timeout_s * 2
                )
            )
        except (NetworkError, EncodingError) as exc:
            log.debug("gossip with %s failed: %s", peer, exc)
            return
        if type(reply) is not dict:
            return
        if type(reply.get("infos")) is list:
            self._accept_infos(reply["infos"])
        await self._hold_gossiped(reply.get("ops"))
        await self._take_gossiped_warrants(reply.get("warrants"))
        wanted = reply.get("want")
        if type(wanted) is list and wanted:
            ops = [self.store.get_op(DhtOpHash(h)) for h in wanted[:1024] if type(h) is bytes]
            sendable = self._unblocked(ops)
            members = self.members()
            items = [
                (
                    op,
                    [
                        a
                        for a in authorities(op.basis(), members, self.config.replication)
                        if members[a].peer_id == peer
                    ],
                )
                for op in sendable
            ]
            await self._send_ops(peer, [item for item in items if item[1]])

    async def _on_gossip(self, peer: PeerId, payload: bytes) -> bytes:
        self._refuse_blocked(peer)
        body = _decode(payload)
        if type(body) is not dict:
            raise RequestRefused("gossip takes {infos, have}")
        if type(body.get("infos")) is list:
            self._accept_infos(body["infos"])
        self._require_member(peer)
        have_raw = body.get("have")
        their: dict[DhtOpHash, HoloHash] = {}
        for item in have_raw if type(have_raw) is list else []:
            if type(item) is list and len(item) == 2 and type(item[0]) is bytes:
                with contextlib.suppress(EncodingError, TypeError):
                    their[DhtOpHash(item[0])] = from_typed_bytes(item[1])
        members = self.members()
        their_agents = {a for a, info in members.items() if info.peer_id == peer}
        want = []
        for op_hash, basis in their.items():
            if self.store.op_status(op_hash) in (OpStatus.VALID, OpStatus.INVALID):
                continue
            if set(authorities(basis, members, self.config.replication)) & set(self._local):
                want.append(bytes(op_hash))
        give: list[bytes] = []
        for op_hash, basis in self.store.held_index():
            if op_hash in their or len(give) >= self.config.max_ops_per_request:
                continue
            if set(authorities(basis, members, self.config.replication)) & their_agents:
                op = self.store.get_op(op_hash)
                if op is not None and not self.is_blocked(op.signed_action.action.author):
                    give.append(op.to_bytes())
        reply = {
            "infos": self._known_infos_payload(),
            "want": want,
            "ops": give,
            "warrants": self._warrants_missing_at(body.get("warrants"), len(encode(give))),
        }
        return encode(reply)

    async def _hold_gossiped(self, raw: Value) -> None:
        if type(raw) is not list:
            return
        for item in raw[: self.config.max_ops_per_request]:
            if type(item) is not bytes:
                continue
            try:
                op = DhtOp.from_bytes(item)
            except EncodingError:
                self.stats.rejected_ops += 1
                continue
            mine = [i.agent for i in self.authorities_of(op.basis()) if i.agent in self._local]
            if mine:
                await self.hold(op, mine)

    # ------------------------------------------------------------------- warrants, blocking

    def is_blocked(self, agent: AgentPubKey) -> bool:
        """Whether ``agent`` is blocked in this DNA (a true warrant about it, or it signed a false
        one). Local agents are never blocked here."""
        return agent in self._blocked

    def blocked_peer(self, peer: PeerId) -> bool:
        """Whether ``peer`` is the node of a blocked agent (by the agent infos it announced)."""
        return peer in self._blocked_peers

    def blocked_agents(self) -> list[BlockedAgent]:
        return sorted(self._blocked.values(), key=lambda b: (b.since_us, bytes(b.agent)))

    def _refuse_blocked(self, peer: PeerId) -> None:
        if self.blocked_peer(peer):
            self.stats.blocked_drops += 1
            self.stats.refused_peers += 1
            raise RequestRefused("blocked: this node refuses the peer of a warranted agent")

    def _refresh_blocked_peers(self) -> None:
        peers = {
            PeerId(info.peer_id)
            for info in self.store.agent_infos(0)
            if info.agent in self._blocked and info.peer_id != self.net.peer_id
        }
        self._blocked_peers = peers

    def _unblocked(self, ops: Sequence[DhtOp | None]) -> list[DhtOp]:
        """``ops`` without those of blocked agents or voided by a known revocation."""
        return self.revocations.filter(
            [
                op
                for op in ops
                if op is not None and op.signed_action.action.author not in self._blocked
            ]
        )

    async def _hang_up(self, peers: Sequence[PeerId]) -> None:
        for peer in peers:
            try:
                await self.net.disconnect(peer)
            except NetworkError as exc:
                log.debug("could not disconnect %s: %s", peer, exc)

    def _signer(self, agents: Sequence[AgentPubKey]) -> _LocalAgent | None:
        for agent in [*agents, *sorted(self._local)]:
            if agent in self._local:
                return self._local[agent]
        return None

    def _warrant_invalid_op(self, op: DhtOp, reason: str, agents: Sequence[AgentPubKey]) -> None:
        self._issue(WarrantKind.INVALID_OP, op.signed_action.action.author, (op,), reason, agents)

    def _detect_fork(self, op: DhtOp, agents: Sequence[AgentPubKey]) -> None:
        """``op`` (agent activity) was just stored: another action of its author at the same
        sequence number is a fork. Warrant the pair where the branches split (the two actions
        with one previous action), which every node can check without the rest of the chain."""
        signed = op.signed_action
        action = signed.action
        for other in self.store.activity_at_seq(action.author, action.seq):
            theirs = other.signed_action
            if theirs.hash == signed.hash or not theirs.signature_valid():
                continue
            found = fork_point(theirs, signed, self.host)
            pair = found if isinstance(found, tuple) else (theirs, signed)
            evidence = tuple(DhtOp(OpType.REGISTER_AGENT_ACTIVITY, s) for s in pair)
            reason = f"two actions at sequence number {pair[0].action.seq}"
            self._issue(WarrantKind.FORK, action.author, evidence, reason, agents)
            return

    def _issue(
        self,
        kind: WarrantKind,
        author: AgentPubKey,
        evidence: tuple[DhtOp, ...],
        reason: str,
        agents: Sequence[AgentPubKey],
        *,
        retried: bool = False,
    ) -> None:
        """Sign a warrant with a local authority agent, if it checks out here, and spread it."""
        signer = self._signer(agents)
        if signer is None or self.store.warrants_about(author) >= MAX_WARRANTS_PER_AGENT:
            return
        warrant = Warrant.sign(
            signer.cell.keys,
            kind=kind,
            dna_hash=self.dna.hash,
            author=author,
            evidence=evidence,
            reason=reason,
            now_us=self.clock(),
        )
        verdict = check_warrant(warrant, self.dna, self.host)
        if isinstance(verdict, Unresolved) and not retried:
            # Not enough of the author's chain here to show the op is on this DNA: fetch its
            # activity from its authorities, then judge again.
            async def retry() -> None:
                await self.get_agent_activity(author)
                self._issue(kind, author, evidence, reason, agents, retried=True)

            self._spawn(retry())
            return
        if not isinstance(verdict, Upheld):  # never sign what others could not confirm
            log.info("not warranting %s: %s", author.short(), verdict)
            return
        self.stats.warrants_signed += 1
        log.warning("warranting %s: %s", author.short(), verdict.reason)
        self._accept(warrant, verdict)

    async def receive_warrant(self, warrant: Warrant) -> WarrantVerdict | None:
        """Check a warrant from the network and act on it: block the warranted agent (true) or
        the signer (false). None: already known, or not worth checking (its signer is blocked,
        or enough warrants about its author are kept). :class:`RequestRefused` if it cannot be
        attributed to anyone (bad signature, another DNA, signed in the future)."""
        if self.store.has_warrant(warrant.hash):
            return None
        if warrant.signer not in self.members() and warrant.signer not in self._local:
            # Anyone can mint keys: a warrant counts only from a member of this network.
            self.stats.warrants_refused += 1
            log.info("dropped a warrant signed by a non-member (%s)", warrant.signer.short())
            return None
        if warrant.signer in self._blocked or (
            warrant.author in self._blocked
            or self.store.warrants_about(warrant.author) >= MAX_WARRANTS_PER_AGENT
        ):
            return None
        if warrant.timestamp_us > self.clock() + MAX_WARRANT_FUTURE_US:
            self.stats.warrants_refused += 1
            raise RequestRefused("the warrant is signed in the future")
        try:
            verdict = check_warrant(warrant, self.dna, self.host)
            asked: set[HoloHash] = set()
            for _ in range(WARRANT_FETCH_ROUNDS):
                if not isinstance(verdict, Unresolved):
                    break
                missing = [dep for dep in verdict.deps if dep not in asked]
                if not missing:
                    break
                asked.update(missing)
                await self._fetch_dependencies(missing)
                if warrant.author in missing or any(isinstance(d, ActionHash) for d in missing):
                    await self.get_agent_activity(warrant.author)  # the chain the op is on
                verdict = check_warrant(warrant, self.dna, self.host)
        except EncodingError as exc:
            self.stats.warrants_refused += 1
            raise RequestRefused(f"unattributable warrant: {exc}") from exc
        if isinstance(verdict, Unresolved):
            log.info("warrant %s about %s unresolved", warrant.hash.short(), warrant.author.short())
            return verdict
        self._accept(warrant, verdict)
        return verdict

    def _accept(self, warrant: Warrant, verdict: Upheld | Refuted) -> None:
        upheld = isinstance(verdict, Upheld)
        if not self.store.put_warrant(warrant, upheld=upheld, now_us=self.clock()):
            return
        kind = "fork" if warrant.kind is WarrantKind.FORK else "invalid op"
        if upheld:
            self.stats.warrants_upheld += 1
            self._block(warrant.author, f"{kind}: {verdict.reason}", warrant)
        else:
            self.stats.warrants_false += 1
            self._block(warrant.signer, f"false {kind} warrant: {verdict.reason}", warrant)
            return  # a false warrant is not passed on: each node it reached judged it itself
        self._after_commit(lambda: self._spawn(self._spread(warrant)))

    def _block(self, agent: AgentPubKey, reason: str, warrant: Warrant) -> None:
        if agent in self._local:
            log.error("a local agent (%s) is warranted: %s", agent.short(), reason)
            return
        now = self.clock()
        self.store.block(
            agent, reason=reason, warrant=warrant.hash, blamed_by=warrant.signer, now_us=now
        )

        def apply() -> None:
            if agent not in self._blocked:
                self._blocked[agent] = BlockedAgent(
                    self.dna.hash, agent, reason, warrant.hash, warrant.signer, now
                )
                log.warning("blocked %s: %s", agent.short(), reason)
                if self.on_blocked is not None:
                    self.on_blocked(agent)
            before = set(self._blocked_peers)
            self._refresh_blocked_peers()
            self._spawn(self._hang_up(sorted(self._blocked_peers - before)))

        self._after_commit(apply)

    def _after_commit(self, effect: Callable[[], None]) -> None:
        """Run ``effect`` now, or, inside a batch (:meth:`hold_many`), once the batch's
        transaction has committed: a batch that rolls back leaves no block or spread behind."""
        if self._deferred is None:
            effect()
        else:
            self._deferred.append(effect)

    async def _spread(self, warrant: Warrant) -> None:
        """Send a warrant to its author's agent-activity authorities first, then to every other
        member's node (networks here are small; a larger one would send to the authorities and
        leave the rest to gossip)."""
        payload = warrant.to_bytes()
        first = [PeerId(info.peer_id) for info in self.authorities_of(warrant.author)]
        rest = sorted(self._member_peers())
        peers = [
            p
            for p in dict.fromkeys([*first, *rest])
            if p != self.net.peer_id and not self.blocked_peer(p)
        ]

        async def send(peer: PeerId) -> None:
            try:
                await self.net.request(
                    peer, self.protocol_warrant, payload, timeout=self.config.request_timeout_s
                )
            except NetworkError as exc:
                log.debug("warrant to %s: %s", peer, exc)

        await asyncio.gather(*(send(peer) for peer in peers))

    async def _on_warrant(self, peer: PeerId, payload: bytes) -> bytes:
        self._require_member(peer)
        if not self._warrant_budget(peer):
            self.stats.warrants_refused += 1
            raise RequestRefused("too many warrants from this peer; try later")
        if len(payload) > MAX_WARRANT_BYTES:
            self.stats.warrants_refused += 1
            raise RequestRefused(f"a warrant is at most {MAX_WARRANT_BYTES} bytes")
        try:
            warrant = Warrant.from_bytes(payload)
        except EncodingError as exc:
            self.stats.warrants_refused += 1
            raise RequestRefused(f"malformed warrant: {exc}") from exc
        verdict = await self.receive_warrant(warrant)
        if isinstance(verdict, Upheld):
            answer = "upheld"
        elif isinstance(verdict, Refuted):
            answer = "false"
        elif isinstance(verdict, Unresolved):
            answer = "unresolved"
        else:
            answer = "known"
        return encode({"verdict": answer})

    def _warrant_budget(self, peer: PeerId) -> bool:
        """At most ``WARRANTS_PER_PEER_PER_MINUTE`` warrants from one peer each minute."""
        now = asyncio.get_running_loop().time()
        start, count = self._warrant_window.get(peer, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= WARRANTS_PER_PEER_PER_MINUTE:
            return False
        self._warrant_window[peer] = (start, count + 1)
        return True

    def _warrants_missing_at(self, theirs: Value, budget_used: int) -> list[bytes]:
        """Warrants this node keeps that a gossip partner did not list (bounded)."""
        known = {bytes(h) for h in theirs if type(h) is bytes} if type(theirs) is list else set()
        out: list[bytes] = []
        size = budget_used
        for warrant_hash in self.store.warrant_hashes():
            if bytes(warrant_hash) in known or len(out) >= 16:
                continue
            data = self.store.get_warrant(warrant_hash)
            if data is None or size + len(data) > MAX_PAYLOAD // 2:
                continue
            out.append(data)
            size += len(data)
        return out

    async def _take_gossiped_warrants(self, raw: Value) -> None:
        if type(raw) is not list:
            return
        for item in raw[:16]:
            if type(item) is not bytes:
                continue
            try:
                warrant = Warrant.from_bytes(item)
                if not self.store.has_warrant(warrant.hash):
                    await self.receive_warrant(warrant)
            except (EncodingError, RequestRefused) as exc:
                self.stats.warrants_refused += 1
                log.info("refused a gossiped warrant: %s", exc)


def _decode(payload: bytes) -> Value:
    try:
        return decode(payload, max_size=MAX_PAYLOAD)
    except EncodingError as exc:
        raise RequestRefused(f"malformed request: {exc}") from exc
