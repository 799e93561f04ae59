"""The network over libp2p (py-libp2p): TCP, Noise, yamux, GossipSub.

py-libp2p runs on trio while the rest of the node is asyncio, so libp2p lives in its own thread
running ``trio.run``. The two sides talk through queues only:

* asyncio → trio: commands are put on a trio memory channel with ``TrioToken.run_sync_soon``
  (thread-safe, non-blocking — no thread-pool call per request);
* trio → asyncio: results, inbound requests, messages and peer events are handed over with
  ``loop.call_soon_threadsafe``.

Defaults of py-libp2p that are unsafe or slow here are overridden: security is Noise only (its
default also offers plaintext, secio and TLS), the muxer is yamux, the 250 ms "happy eyeballs"
dial delay is removed, and GossipSub's heartbeat is 1 s (default 120 s) with an explicit
per-topic rate limit.

Requests to a peer are multiplexed on one long-lived stream per direction (see
:mod:`ioe.net.frames`): opening a libp2p stream costs a protocol negotiation each time.

Every dial goes through one gate, :class:`~ioe.net.dialling.DialBook`: a peer whose dials fail
is backed off (doubling, capped), given up after a while, and a peer the node has forgotten is
not dialled at all, until it shows up again. py-libp2p's own redialling is switched off for this
(its auto-connector dials every peer of the peer store to keep 100 connections; each dial is
retried three times), and its "Failed to open TCP stream" errors, which name no peer, are
rewritten by :class:`DialLogFilter`: the peer named, a warning the first time, INFO after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network import swarm as _swarm
from libp2p.network.config import RetryConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service.context import background_trio_service

from ioe.errors import LocalProtocolError
from ioe.net.dialling import BackoffPolicy, DialBook
from ioe.net.frames import MAX_FRAME, Frame, FrameDecoder, FrameKind
from ioe.net.interface import (
    MAX_PAYLOAD,
    DialStats,
    MalformedFrame,
    Message,
    Network,
    NetworkError,
    PeerEvent,
    PeerEventKind,
    PeerId,
    PeerUnreachable,
    RequestHandler,
    RequestRefused,
    RequestTimeout,
    Subscription,
)

log = logging.getLogger(__name__)

RPC_PROTOCOL = TProtocol("/ioe/rpc/1.0.0")
GOSSIPSUB_PROTOCOLS = [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")]
READ_CHUNK = 64 * 1024
STRANGER_MAX_FRAME = 256 * 1024
"""The largest frame a peer that is no member of any of this node's networks may send on a
stream it opened (enrollment, agent infos); members may send up to ``MAX_FRAME``."""
MAX_INBOUND_STREAMS_PER_PEER = 4
"""A peer keeps one RPC stream open; a few more are allowed for reconnects, no more."""
MAX_BUFFERED_PER_PEER = MAX_FRAME + 256 * 1024
MAX_BUFFERED_TOTAL = 64 * 1024 * 1024
"""Bytes of unfinished frames held for one peer, and for all peers: a peer that announces large
frames and never finishes them is cut off before the node's memory is (200 half-sent 4 MiB
frames once took a node from 116 MB to 945 MB)."""
SHUTDOWN_GRACE_S = 2.0
REANNOUNCE_AFTER_S = (0.5, 1.5, 3.0, 6.0)

# No head start for one transport over another when dialling: we dial one address family.
_swarm._HAPPY_EYEBALLS_DELAY = 0.0


@dataclass(frozen=True, slots=True)
class P2PConfig:
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    gossip_heartbeat_s: int = 1
    gossip_degree: int = 6
    max_messages_per_topic_per_s: float = 100.0
    connect_timeout_s: float = 10.0
    # GossipSub's eclipse protection wants peers on several distinct IPs; on one machine (tests,
    # a home gateway bridging local devices) every peer shares 127.0.0.1.
    eclipse_protection: bool = False
    dial_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    """When a peer whose dials fail is dialled again, and when it is given up."""


# ------------------------------------------------------------------------------ dial logging

DIAL_FAILURES = ("Failed to open TCP stream", "failed to upgrade security for peer")
"""How py-libp2p's records of a failed dial begin (the TCP connect, or the handshake with
whoever listens there now)."""
_LIBP2P_DIAL_LOGGERS = ("libp2p.transport.tcp.tcp", "libp2p.network.swarm")


@dataclass(frozen=True, slots=True)
class _Dialling:
    peer: PeerId
    known_failing: bool


_DIALLING: contextvars.ContextVar[_Dialling | None] = contextvars.ContextVar(
    "ioe_dialling", default=None
)
"""The peer being dialled, seen by libp2p's tasks of that dial (trio copies the context)."""


class DialLogFilter(logging.Filter):
    """py-libp2p logs each failed dial as an ERROR naming an address, not a peer. This names the
    peer and lowers the level: WARNING the first time a peer fails, INFO while it keeps failing
    (it is backed off, given up or forgotten: no news; shown with ``--verbose``). Records it
    lowers below what the root logger shows are dropped. Other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not isinstance(record.msg, str):
            return True
        if not record.msg.startswith(DIAL_FAILURES):
            return True
        dialling = _DIALLING.get()
        message = record.getMessage()
        if dialling is None:
            if not record.msg.startswith(DIAL_FAILURES[0]):
                return True  # a handshake failing on a connection someone else opened
            level = logging.INFO
        elif dialling.known_failing:
            level = logging.INFO
            message += f" (dialling {dialling.peer} again, which has not answered lately)"
        else:
            level = logging.WARNING
            message += f" (dialling {dialling.peer}; backing off)"
        record.msg, record.args = message, None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return logging.getLogger().isEnabledFor(level)


_FILTER = DialLogFilter()


def route_libp2p_logs() -> None:
    """Send py-libp2p's log records through this program's handlers (its timestamps), with the
    dial failures rewritten by :class:`DialLogFilter`. py-libp2p otherwise keeps them to itself
    with no handler (``LIBP2P_DEBUG`` unset), so Python prints its warnings bare on stderr.
    With ``LIBP2P_DEBUG`` set, py-libp2p's own logging set-up is left alone."""
    install_dial_log_filter()
    if os.environ.get("LIBP2P_DEBUG"):
        return
    libp2p = logging.getLogger("libp2p")
    libp2p.propagate = True
    libp2p.setLevel(logging.WARNING)


def install_dial_log_filter() -> None:
    """Rewrite py-libp2p's dial-failure records (idempotent)."""
    for name in _LIBP2P_DIAL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class _Stop:
    pass


_STOP = _Stop()


@dataclass
class _Conn:
    """One RPC stream to a peer (trio side)."""

    peer: PeerId
    stream: Any
    write_lock: trio.Lock = field(default_factory=trio.Lock)
    pending: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    closed: bool = False
    inbound: bool = False
    """Opened by the peer (its frames are limited as :meth:`P2PNetwork._frame_limit` says)."""
    buffered: int = 0
    """Bytes of an unfinished frame held for this stream."""

    async def send(self, frame: Frame) -> None:
        data = frame.to_bytes()
        async with self.write_lock:
            await self.stream.write(data)


class _P2PSubscription(Subscription):
    def __init__(self, network: P2PNetwork, topic: str) -> None:
        self._network = network
        self.topic = topic
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=10_000)
        self.cancel_scope: trio.CancelScope | None = None

    async def __anext__(self) -> Message:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def close(self) -> None:
        await self._network._close_subscription(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class P2PNetwork(Network):
    """A libp2p node. ``seed`` (32 bytes) is its Ed25519 identity: the same key as the agent it
    serves, where one agent runs the node."""

    def __init__(self, seed: bytes, config: P2PConfig | None = None) -> None:
        self._config = config or P2PConfig()
        self._key_pair = create_new_key_pair(bytes(seed))
        self._peer_id = PeerId(ID.from_pubkey(self._key_pair.public_key).to_base58())
        self._handlers: dict[str, RequestHandler] = {}
        self._answering: set[asyncio.Future[None]] = set()
        self._event_queues: list[asyncio.Queue[PeerEvent | None]] = []
        self._subscriptions: set[_P2PSubscription] = set()
        self._addrs: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._commands: trio.MemorySendChannel[Any] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._closed = False
        # trio-side state
        self._host: Any = None
        self._pubsub: Any = None
        self._nursery: trio.Nursery | None = None
        self._conns: dict[PeerId, _Conn] = {}
        self._inbound: dict[PeerId, int] = {}
        self._buffered_by_peer: dict[PeerId, int] = {}
        self._buffered_total = 0
        self._member_peers: frozenset[PeerId] | None = None
        """None until the node says who its members' peers are: every peer may send full
        frames (a bare network, as in tests, has no notion of members)."""
        self._dialing: dict[PeerId, trio.Event] = {}
        self._gate_dialling: dict[PeerId, trio.Event] = {}
        self._ids = itertools.count(1)
        self._connected: set[PeerId] = set()
        # the dial gate: written on the trio side (dials, connections) and the asyncio side
        # (forget, announce), read by both
        self._dial_book = DialBook(self._config.dial_backoff)
        self._dial_lock = threading.Lock()
        install_dial_log_filter()

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    def listen_addrs(self) -> list[str]:
        return list(self._addrs)

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._stopped = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, name="ioe-libp2p", daemon=True)
        self._thread.start()
        await self._ready

    async def close(self) -> None:
        if self._closed or self._thread is None:
            return
        self._closed = True
        self._send_command(_STOP)
        assert self._stopped is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stopped), 10)
        await asyncio.to_thread(self._thread.join, 5)
        for subscription in list(self._subscriptions):
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(None)
        for queue in self._event_queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def _thread_main(self) -> None:
        try:
            trio.run(self._trio_main)
        except BaseException as exc:  # the thread must report, never die silently
            log.exception("libp2p thread stopped with an error")
            self._to_asyncio(self._fail_start, exc)
        finally:
            self._to_asyncio(_resolve, self._stopped, None)

    def _fail_start(self, exc: BaseException) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(NetworkError(f"libp2p did not start: {exc}"))

    # ------------------------------------------------------------------------ the two bridges

    def _to_asyncio(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def _send_command(self, command: Any) -> None:
        if self._token is None or self._commands is None:
            raise NetworkError("the network is not running")
        try:
            self._token.run_sync_soon(self._commands.send_nowait, command)
        except trio.RunFinishedError as exc:
            raise NetworkError("the network is not running") from exc

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``fn(*args)`` on the trio side; its result (or mapped error) comes back here."""
        if self._closed:
            raise NetworkError("the network is closed")
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._send_command((fn, args, future))
        return await future

    # --------------------------------------------------------------------------- trio: main

    async def _trio_main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[Any](10_000)
        self._commands = send
        security = {
            NOISE_PROTOCOL_ID: NoiseTransport(
                self._key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        }
        listen = [multiaddr.Multiaddr(addr) for addr in self._config.listen]
        self._host = new_host(
            key_pair=self._key_pair,
            sec_opt=security,
            muxer_preference="YAMUX",
            listen_addrs=listen,
        )
        router = GossipSub(
            protocols=GOSSIPSUB_PROTOCOLS,
            degree=self._config.gossip_degree,
            degree_low=max(1, self._config.gossip_degree - 2),
            degree_high=self._config.gossip_degree + 4,
            heartbeat_interval=self._config.gossip_heartbeat_s,
            max_messages_per_topic_per_second=self._config.max_messages_per_topic_per_s,
            eclipse_protection_enabled=self._config.eclipse_protection,
        )
        self._pubsub = Pubsub(self._host, router)
        self._host.set_stream_handler(RPC_PROTOCOL, self._on_inbound_stream)
        swarm = self._host.get_network()
        swarm.register_notifee(_Notifee(self))
        self._guard_dials(swarm)
        with trio.CancelScope() as everything:
            async with self._host.run(listen), background_trio_service(self._pubsub):
                self._addrs = [str(addr) for addr in self._host.get_addrs()]
                self._to_asyncio(_resolve, self._ready, None)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    async for command in receive:
                        if command is _STOP:
                            break
                        nursery.start_soon(self._run_command, *command)
                    nursery.cancel_scope.cancel()
                for conn in list(self._conns.values()):
                    self._drop_conn(conn, "network closed")
                await self._hang_up()
                # libp2p's own shutdown can wait on handshakes still in flight; the connections
                # are closed by now, so do not let it hold up the caller.
                everything.deadline = trio.current_time() + SHUTDOWN_GRACE_S

    def _guard_dials(self, swarm: Any) -> None:
        """Every dial libp2p makes passes :meth:`_gated_dial`; libp2p's own redialling is off:
        its auto-connector (which dials every peer in the peer store every 10 to 30 s while
        the node has fewer than 100 connections), its retries of a failed address (our gate
        decides when to try again) and its 60 s "negative cache" (which also refused a peer
        that had come back)."""
        dial_peer = swarm.dial_peer

        async def gated(peer_id: ID) -> Any:
            return await self._gated_dial(swarm, dial_peer, peer_id)

        async def no_auto_connect() -> None:
            return None

        swarm.dial_peer = gated
        swarm.retry_config = RetryConfig(max_retries=0)
        with contextlib.suppress(AttributeError):
            swarm.auto_connector.maybe_connect = no_auto_connect

    async def _gated_dial(
        self, swarm: Any, dial_peer: Callable[[ID], Awaitable[Any]], peer_id: ID
    ) -> Any:
        peer = PeerId(peer_id.to_base58())
        while (in_flight := self._gate_dialling.get(peer)) is not None:
            await in_flight.wait()  # then judge again: it may have connected, or failed
        if any(not conn.is_closed for conn in swarm.get_connections(peer_id)):
            return await dial_peer(peer_id)  # no dial: libp2p reuses the connection
        self._gate_dialling[peer] = done = trio.Event()
        try:
            return await self._dial_through_gate(swarm, dial_peer, peer_id, peer)
        finally:
            del self._gate_dialling[peer]
            done.set()

    async def _dial_through_gate(
        self, swarm: Any, dial_peer: Callable[[ID], Awaitable[Any]], peer_id: ID, peer: PeerId
    ) -> Any:
        now = time.monotonic()
        with self._dial_lock:
            if not self._dial_book.may_dial(peer, now):
                raise PeerUnreachable(f"not dialling {peer}: {self._dial_book.why_not(peer, now)}")
            known_failing = self._dial_book.failing(peer)
            self._dial_book.dialling(peer, now)
        with contextlib.suppress(Exception):
            swarm._negative_peer_cache.evict(str(peer_id))
        token = _DIALLING.set(_Dialling(peer, known_failing))
        try:
            connections = await dial_peer(peer_id)
        except BaseException as exc:  # a failure, or the caller's timeout cancelling the dial
            reason = f"{type(exc).__name__}: {exc}"[:200]
            with self._dial_lock:
                wait = self._dial_book.failed(peer, time.monotonic(), reason)
            if wait == float("inf"):
                log.info("giving up dialling %s: it has not answered for a long time", peer)
            else:
                log.debug("dial of %s failed (%s); next try in %.1f s", peer, reason, wait)
            raise
        finally:
            _DIALLING.reset(token)
        with self._dial_lock:
            self._dial_book.connected(peer, time.monotonic())
        return connections

    def _peer_connected(self, peer: PeerId) -> None:
        """A connection came up, dialled by either side: the peer is reachable again."""
        with self._dial_lock:
            self._dial_book.connected(peer, time.monotonic())

    async def _hang_up(self) -> None:
        """Close every connection so peers learn at once that we are gone."""
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            for peer_id in list(self._host.get_connected_peers()):
                with trio.move_on_after(0.5), contextlib.suppress(Exception):
                    await self._host.disconnect(peer_id)

    async def _run_command(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> None:
        try:
            result = await fn(*args)
        except NetworkError as exc:
            self._to_asyncio(_fail, future, exc)
        except Exception as exc:  # a library error: map it at this boundary
            self._to_asyncio(_fail, future, _map_error(exc))
        else:
            self._to_asyncio(_resolve, future, result)

    # ---------------------------------------------------------------------- trio: connections

    async def _dial(self, addr: str) -> PeerId:
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise PeerUnreachable(f"not a dialable multiaddr with /p2p/: {addr!r} ({exc})") from exc
        peer = PeerId(info.peer_id.to_base58())
        if peer == self._peer_id:
            raise PeerUnreachable("cannot dial oneself")
        with self._dial_lock:  # asked for by address: dial now, whatever failed before
            self._dial_book.announced(peer, time.monotonic())
        try:
            with trio.fail_after(self._config.connect_timeout_s):
                await self._host.connect(info)
        except Exception as exc:  # every way a dial fails means the same to the caller
            raise PeerUnreachable(f"cannot reach {peer} at {addr}: {type(exc).__name__}") from exc
        return peer

    async def _conn_to(self, peer: PeerId) -> _Conn:
        conn = self._conns.get(peer)
        if conn is not None and not conn.closed:
            return conn
        if peer == self._peer_id:
            raise PeerUnreachable("cannot open a stream to oneself")
        waiting = self._dialing.get(peer)
        if waiting is not None:
            await waiting.wait()
            conn = self._conns.get(peer)
            if conn is None or conn.closed:
                raise PeerUnreachable(f"no connection to {peer}")
            return conn
        self._dialing[peer] = done = trio.Event()
        try:
            try:
                peer_id = ID.from_base58(peer)
                with trio.fail_after(self._config.connect_timeout_s):
                    stream = await self._host.new_stream(peer_id, [RPC_PROTOCOL])
            except PeerUnreachable:
                raise  # the dial gate's refusal says why
            except Exception as exc:
                raise PeerUnreachable(f"cannot reach {peer}: {type(exc).__name__}: {exc}") from exc
            conn = _Conn(peer, stream)
            self._conns[peer] = conn
            assert self._nursery is not None
            self._nursery.start_soon(self._read_loop, conn)
            return conn
        finally:
            del self._dialing[peer]
            done.set()

    async def _on_inbound_stream(self, stream: Any) -> None:
        peer = PeerId(stream.muxed_conn.peer_id.to_base58())
        if self._inbound.get(peer, 0) >= MAX_INBOUND_STREAMS_PER_PEER:
            log.warning("%s opened too many RPC streams; resetting the new one", peer)
            with contextlib.suppress(Exception):
                await stream.reset()
            return
        self._inbound[peer] = self._inbound.get(peer, 0) + 1
        conn = _Conn(peer, stream, inbound=True)
        self._conns.setdefault(peer, conn)
        try:
            await self._read_loop(conn)
        finally:
            left = self._inbound.get(peer, 1) - 1
            if left:
                self._inbound[peer] = left
            else:
                self._inbound.pop(peer, None)

    def set_member_peers(self, peers: frozenset[PeerId]) -> None:
        """The peers of the members of this node's networks (the node keeps it current): only
        they may send large frames on streams they open (:data:`STRANGER_MAX_FRAME`)."""
        self._member_peers = peers

    def note_member_peer(self, peer: PeerId) -> None:
        members = self._member_peers
        if members is not None and peer not in members:
            self._member_peers = members | {peer}

    def _frame_limit(self, conn: _Conn) -> int:
        members = self._member_peers
        if not conn.inbound or members is None or conn.peer in members:
            return MAX_FRAME
        return STRANGER_MAX_FRAME

    def _account(self, conn: _Conn, buffered: int) -> None:
        """Note that ``conn`` now holds ``buffered`` bytes of unfinished frames; raise
        :class:`MalformedFrame` when its peer or the node holds more than allowed."""
        delta = buffered - conn.buffered
        conn.buffered = buffered
        self._buffered_total += delta
        per_peer = self._buffered_by_peer.get(conn.peer, 0) + delta
        if per_peer:
            self._buffered_by_peer[conn.peer] = per_peer
        else:
            self._buffered_by_peer.pop(conn.peer, None)
        if per_peer > MAX_BUFFERED_PER_PEER:
            raise MalformedFrame(f"{per_peer} bytes of unfinished frames from one peer")
        if self._buffered_total > MAX_BUFFERED_TOTAL:
            raise MalformedFrame("the node holds too many unfinished frames")

    async def _read_loop(self, conn: _Conn) -> None:
        decoder = FrameDecoder(self._frame_limit(conn))
        reason = "stream closed"
        try:
            while True:
                data = await conn.stream.read(READ_CHUNK)
                if not data:
                    break
                decoder.max_frame = self._frame_limit(conn)
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    self._on_frame(conn, frame)
                self._account(conn, decoder.buffered())
        except MalformedFrame as exc:
            reason = f"malformed frame from {conn.peer}: {exc}"
            log.warning("%s; closing the stream", reason)
        except Exception as exc:
            reason = f"stream error: {type(exc).__name__}: {exc}"
            log.debug("RPC stream to %s ended: %s", conn.peer, reason)
        finally:
            with contextlib.suppress(MalformedFrame):
                self._account(conn, 0)  # its unfinished frame is dropped with it
            self._drop_conn(conn, reason)
            with contextlib.suppress(Exception):
                await conn.stream.reset()

    def _drop_conn(self, conn: _Conn, reason: str) -> None:
        conn.closed = True
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        for future in conn.pending.values():
            self._to_asyncio(_fail, future, PeerUnreachable(f"{conn.peer}: {reason}"))
        conn.pending.clear()

    def _on_frame(self, conn: _Conn, frame: Frame) -> None:
        if frame.kind is FrameKind.REQUEST:
            self._to_asyncio(self._dispatch_request, conn, frame)
            return
        future = conn.pending.pop(frame.request_id, None)
        if future is None:
            return  # the requester gave up (timeout): a late reply is not an error
        if frame.kind is FrameKind.REPLY:
            self._to_asyncio(_resolve, future, frame.payload)
        else:
            reason = frame.payload.decode("utf-8", "replace")[:500]
            self._to_asyncio(_fail, future, RequestRefused(reason))

    async def _send_request(
        self, peer: PeerId, protocol: str, payload: bytes, future: asyncio.Future[bytes]
    ) -> int:
        conn = await self._conn_to(peer)
        request_id = next(self._ids)
        conn.pending[request_id] = future
        try:
            await conn.send(Frame(FrameKind.REQUEST, request_id, protocol, payload))
        except Exception as exc:
            conn.pending.pop(request_id, None)
            self._drop_conn(conn, f"write failed: {exc}")
            raise PeerUnreachable(f"{peer}: write failed") from exc
        return request_id

    async def _forget_request(self, peer: PeerId, request_id: int) -> None:
        conn = self._conns.get(peer)
        if conn is not None:
            conn.pending.pop(request_id, None)

    async def _send_reply(self, conn: _Conn, frame: Frame) -> None:
        if conn.closed:
            return
        try:
            await conn.send(frame)
        except Exception as exc:
            self._drop_conn(conn, f"write failed: {exc}")

    # ------------------------------------------------------------------ asyncio: public API

    async def connect(self, addr: str) -> PeerId:
        peer: PeerId = await self._call(self._dial, addr)
        return peer

    def connected_peers(self) -> list[PeerId]:
        return sorted(self._connected)

    async def disconnect(self, peer: PeerId) -> None:
        if self._closed or self._thread is None:
            return
        await self._call(self._disconnect, peer)

    async def _disconnect(self, peer: PeerId) -> None:
        conn = self._conns.get(peer)
        if conn is not None:
            self._drop_conn(conn, "disconnected by us")
            with contextlib.suppress(Exception):
                await conn.stream.reset()
        try:
            peer_id = ID.from_base58(peer)
        except Exception:
            return  # not a libp2p peer id: nothing can be connected under it
        with trio.move_on_after(SHUTDOWN_GRACE_S), contextlib.suppress(Exception):
            await self._host.disconnect(peer_id)

    def add_peer_addrs(self, peer: PeerId, addrs: list[str]) -> None:
        parsed = []
        for addr in addrs:
            with contextlib.suppress(Exception):
                parsed.append(multiaddr.Multiaddr(addr.split("/p2p/")[0]))
        if parsed:
            self._on_trio(self._add_addrs, peer, parsed)

    def peer_announced(self, peer: PeerId, addrs: list[str]) -> None:
        with self._dial_lock:
            self._dial_book.announced(peer, time.monotonic())
        self.add_peer_addrs(peer, addrs)

    def forget_peer(self, peer: PeerId) -> None:
        if peer == self._peer_id:
            return
        with self._dial_lock:
            self._dial_book.forget(peer, time.monotonic())
        self._on_trio(self._clear_addrs, peer)
        log.info("forgot peer %s: not dialled until it shows up again", peer)

    def dial_stats(self) -> dict[PeerId, DialStats]:
        with self._dial_lock:
            return self._dial_book.stats(time.monotonic())

    def _on_trio(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` (quick, synchronous) on the trio side, in the order asked (peer
        store edits: forgetting a peer then hearing of it again must not swap)."""
        if self._token is None or self._closed:
            return
        with contextlib.suppress(trio.RunFinishedError, RuntimeError):
            self._token.run_sync_soon(_quietly, fn, *args)

    def _add_addrs(self, peer: PeerId, addrs: list[Any]) -> None:
        self._host.get_peerstore().add_addrs(ID.from_base58(peer), addrs, 0)

    def _clear_addrs(self, peer: PeerId) -> None:
        self._host.get_peerstore().clear_addrs(ID.from_base58(peer))

    def set_handler(self, protocol: str, handler: RequestHandler) -> None:
        self._handlers[protocol] = handler

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float = 10.0
    ) -> bytes:
        if len(payload) > MAX_PAYLOAD:
            raise LocalProtocolError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
        assert self._loop is not None
        reply: asyncio.Future[bytes] = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                request_id = await self._call(self._send_request, peer, protocol, payload, reply)
                try:
                    return await reply
                except TimeoutError:
                    self._send_command(
                        (self._forget_request, (peer, request_id), _discard_future(self._loop))
                    )
                    raise
        except TimeoutError:
            raise RequestTimeout(f"{peer} did not answer {protocol} in {timeout} s") from None
        finally:
            _settle(reply)

    def _dispatch_request(self, conn: _Conn, frame: Frame) -> None:
        task = asyncio.ensure_future(self._answer(conn, frame))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, conn: _Conn, frame: Frame) -> None:
        handler = self._handlers.get(frame.protocol)
        if handler is None:
            reply = Frame(FrameKind.ERROR, frame.request_id, frame.protocol, b"unknown protocol")
        else:
            try:
                payload = await handler(conn.peer, frame.payload)
                if len(payload) > MAX_PAYLOAD:
                    raise RequestRefused("reply too large")
                reply = Frame(FrameKind.REPLY, frame.request_id, frame.protocol, payload)
            except RequestRefused as exc:
                reply = _error_frame(frame, str(exc))
            except Exception as exc:
                log.exception("handler for %s failed", frame.protocol)
                reply = _error_frame(frame, f"handler failed: {type(exc).__name__}")
        if not self._closed:
            with contextlib.suppress(NetworkError):
                self._send_command((self._send_reply, (conn, reply), _discard_future(self._loop)))

    async def publish(self, topic: str, data: bytes) -> None:
        if len(data) > MAX_PAYLOAD:
            raise LocalProtocolError(f"message of {len(data)} bytes is over {MAX_PAYLOAD}")
        await self._call(self._publish, topic, data)

    async def _publish(self, topic: str, data: bytes) -> None:
        await self._pubsub.publish(topic, data)

    async def subscribe(self, topic: str) -> Subscription:
        subscription = _P2PSubscription(self, topic)
        self._subscriptions.add(subscription)
        await self._call(self._subscribe, subscription)
        return subscription

    async def _subscribe(self, subscription: _P2PSubscription) -> None:
        libp2p_subscription = await self._pubsub.subscribe(subscription.topic)
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, subscription, libp2p_subscription)
        self._nursery.start_soon(self._reannounce, subscription.topic)

    async def _reannounce(self, topic: str) -> None:
        """Announce a subscription again a few times. py-libp2p 0.8 can lose the first
        announcement to a peer whose pubsub stream is still opening: the peer then grafts us into
        its mesh but never sends us the topic's messages (seen about once in six three-node
        runs). Re-announcing is idempotent for peers that did get it."""
        for delay in REANNOUNCE_AFTER_S:
            await trio.sleep(delay)
            if not any(s.topic == topic for s in self._subscriptions):
                return
            with contextlib.suppress(Exception):
                packet, option = self._pubsub._build_announce_rpc(topic, subscribe=True)
                await self._pubsub.message_all_peers(packet.SerializeToString(), announce=option)

    async def _pump(self, subscription: _P2PSubscription, source: Any) -> None:
        with trio.CancelScope() as scope:
            subscription.cancel_scope = scope
            while True:
                message = await source.get()
                sender = PeerId(ID(message.from_id).to_base58())
                if sender == self._peer_id:
                    continue
                item = Message(subscription.topic, sender, bytes(message.data))
                self._to_asyncio(_offer, subscription.queue, item)

    async def _close_subscription(self, subscription: _P2PSubscription) -> None:
        self._subscriptions.discard(subscription)
        if not self._closed:
            await self._call(self._unsubscribe, subscription)

    async def _unsubscribe(self, subscription: _P2PSubscription) -> None:
        if subscription.cancel_scope is not None:
            subscription.cancel_scope.cancel()
        if not any(s.topic == subscription.topic for s in self._subscriptions):
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(subscription.topic)

    def peer_events(self) -> AsyncIterator[PeerEvent]:
        """Events from this call on: the queue is registered now, not at the first ``anext``."""
        queue: asyncio.Queue[PeerEvent | None] = asyncio.Queue(maxsize=10_000)
        self._event_queues.append(queue)
        if self._closed:
            queue.put_nowait(None)
        return _EventStream(queue)

    def _peer_event(self, kind: PeerEventKind, peer: PeerId) -> None:
        if kind is PeerEventKind.CONNECTED:
            if peer in self._connected:
                return
            self._connected.add(peer)
        else:
            if peer not in self._connected:
                return
            self._connected.discard(peer)
        for queue in self._event_queues:
            _offer(queue, PeerEvent(kind, peer))


class _EventStream:
    """Peer events; ends when the network closes."""

    def __init__(self, queue: asyncio.Queue[PeerEvent | None]) -> None:
        self._queue = queue

    def __aiter__(self) -> AsyncIterator[PeerEvent]:
        return self

    async def __anext__(self) -> PeerEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # stay ended
            raise StopAsyncIteration
        return event


class _Notifee:
    """libp2p connection notifications, forwarded as peer events (trio side)."""

    def __init__(self, network: P2PNetwork) -> None:
        self._network = network

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def connected(self, network: Any, conn: Any) -> None:
        peer = PeerId(conn.muxed_conn.peer_id.to_base58())
        self._network._peer_connected(peer)
        self._network._to_asyncio(self._network._peer_event, PeerEventKind.CONNECTED, peer)

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer_id = conn.muxed_conn.peer_id
        if any(other is not conn for other in network.get_connections(peer_id)):
            return  # another connection to the same peer remains
        peer = PeerId(peer_id.to_base58())
        conn_obj = self._network._conns.get(peer)
        if conn_obj is not None:
            self._network._drop_conn(conn_obj, "connection closed")
        self._network._to_asyncio(self._network._peer_event, PeerEventKind.DISCONNECTED, peer)

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


def _quietly(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # a callback of trio's must not raise
        log.debug("network command failed: %s", exc)


def _error_frame(request: Frame, reason: str) -> Frame:
    return Frame(FrameKind.ERROR, request.request_id, request.protocol, reason.encode()[:1000])


def _resolve(future: asyncio.Future[Any] | None, value: Any) -> None:
    if future is not None and not future.done():
        future.set_result(value)


def _settle(future: asyncio.Future[Any]) -> None:
    """A reply nobody will await any more (the send failed, the caller gave up): cancel it, or
    take its failure (a connection dropped fails every reply it was waiting for), so asyncio
    does not report an exception that was never retrieved."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def _fail(future: asyncio.Future[Any] | None, exc: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(exc)


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        log.warning("a slow consumer dropped a network event")


def _discard_future(loop: asyncio.AbstractEventLoop | None) -> asyncio.Future[Any]:
    """A future nobody awaits, for fire-and-forget commands (errors are only logged)."""
    assert loop is not None
    future: asyncio.Future[Any] = loop.create_future()
    future.add_done_callback(_log_failure)
    return future


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("network command failed: %s", future.exception())


def _map_error(exc: Exception) -> NetworkError:
    name = type(exc).__name__
    if isinstance(exc, trio.TooSlowError):
        return RequestTimeout("timed out connecting")
    if "Dial" in name or "Swarm" in name or "Stream" in name or "Connection" in name:
        return PeerUnreachable(f"{name}: {exc}")
    return NetworkError(f"libp2p: {name}: {exc}")
