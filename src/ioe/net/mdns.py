"""Local-network discovery over multicast DNS (python-zeroconf, asyncio).

A node advertises two DNS-SD services under one random instance label (32–63 characters of
``[a-z0-9]``, as go-libp2p does, so the peer id is not in the name):

* ``<label>._p2p._udp.local.`` — libp2p's mDNS format: one TXT string ``dnsaddr=<multiaddr>`` per
  address, each ending in ``/p2p/<peer id>``. Any libp2p implementation that speaks the spec (go,
  rust, js, py) finds us and we find it.
* ``<label>._ioe._udp.local.`` — the IoE service record: what kind of node this is, whether it is
  enrolled, which DNAs it serves, and its addresses again (see :func:`build_ioe_txt` for the
  format).

Both are browsed; whatever is found is parsed as hostile input (sizes bounded first, malformed
records dropped with a debug log) and merged per peer id into a :class:`DiscoveredPeer` handed to
``on_peer`` whenever a peer is new or its addresses or record changed. Discovery is only a hint:
the libp2p handshake, not the TXT record, proves a peer id when it is dialled.

The TXT builders and parsers are pure functions (bytes in, values out) so they can be fuzzed
without sockets. :func:`dial_discovered` makes the usual ``on_peer``: remember the addresses on a
:class:`~ioe.net.interface.Network` and connect.

Loopback for tests: ``interfaces=["127.0.0.1"]`` binds zeroconf to ``lo`` only. On Linux this works
with no system change even though ``lo`` lacks the MULTICAST flag (see ``docs/discovery.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import secrets
import socket
import string
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from multiaddr import Multiaddr
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from ioe.errors import EncodingError, RemoteProtocolError
from ioe.hashing import DnaHash
from ioe.net.interface import Network, NetworkError, PeerId
from ioe.vocabulary import Enrollment, NodeType

log = logging.getLogger(__name__)

P2P_SERVICE_TYPE = "_p2p._udp.local."
IOE_SERVICE_TYPE = "_ioe._udp.local."
IOE_TXT_VERSION = "1"

MAX_TXT_ENTRY = 254
"""Longest TXT string we write or accept (the length byte allows 255; we stay below it)."""
MAX_TXT_BYTES = 4096
"""Largest whole TXT record accepted. Ours stay far below it; a bigger one is refused unparsed."""
MAX_TXT_ENTRIES = 64
MAX_ADDRS = 12
MAX_DNAS = 16
DNAS_PER_ENTRY = 4
"""Four 53-character DNA hashes and three commas fit one TXT string with room for the key."""
MAX_ADDR_LEN = MAX_TXT_ENTRY - len("dnsaddr=")
MAX_PEER_ID_LEN = 128
MAX_SERVICES = 256
"""Services tracked at once; more (a flood on the LAN) are ignored until some go away."""
DEFAULT_PORT = 4001
"""SRV port when no address names one (libp2p reads only the TXT record)."""

_LABEL_ALPHABET = string.ascii_lowercase + string.digits
_KEY_CHARS = frozenset(range(0x20, 0x7F)) - {ord("=")}
_IP_MULTICAST_ALL = 49  # <linux/in.h>; Python does not export it
_UNSUITABLE_PROTOCOLS = frozenset(
    {"p2p-circuit", "ws", "wss", "tls", "webtransport", "webrtc", "webrtc-direct"}
)


class MalformedAdvert(RemoteProtocolError):
    """A TXT record found on the network is not a valid advert (it is ignored)."""


class DiscoveryError(NetworkError):
    """Local discovery could not start (no usable interface, socket errors)."""


@dataclass(frozen=True, slots=True)
class IoeServiceRecord:
    """The IoE facts a node advertises besides its addresses."""

    node_type: NodeType
    enrollment: Enrollment
    dnas: tuple[DnaHash, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.node_type, NodeType):
            raise ValueError(f"node_type must be a NodeType, got {self.node_type!r}")
        if not isinstance(self.enrollment, Enrollment):
            raise ValueError(f"enrollment must be an Enrollment, got {self.enrollment!r}")
        if not all(isinstance(dna, DnaHash) for dna in self.dnas):
            raise ValueError("dnas must be DnaHash values")
        if len(self.dnas) > MAX_DNAS:
            raise ValueError(f"at most {MAX_DNAS} DNAs can be advertised, got {len(self.dnas)}")
        if len(set(self.dnas)) != len(self.dnas):
            raise ValueError("dnas contains duplicates")


@dataclass(frozen=True, slots=True)
class DiscoveredPeer:
    """A peer seen on the local network: dialable addresses (each ending in ``/p2p/<peer_id>``)
    and its IoE record if it advertises one."""

    peer_id: PeerId
    addrs: tuple[str, ...]
    record: IoeServiceRecord | None = None


OnPeer = Callable[[DiscoveredPeer], Awaitable[None] | None]


# ---------------------------------------------------------------------------------------------
# Pure helpers: addresses, TXT encoding and decoding


def canonical_peer_id(text: str) -> PeerId:
    """The canonical text form of a libp2p peer id (raises ``ValueError`` if it is not one)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PEER_ID_LEN or not text.isascii():
        raise ValueError(f"not a peer id: {str(text)[:60]!r}")
    items = _multiaddr_items(f"/p2p/{text}")
    if items is None or len(items) != 1:
        raise ValueError(f"not a peer id: {text[:60]!r}")
    return PeerId(items[0][1] or "")


def canonical_addr(addr: str, peer_id: str) -> str:
    """``addr`` in canonical multiaddr text, ending in ``/p2p/<peer_id>`` (appended if absent).

    Raises ``ValueError`` if it is not a multiaddr, names another peer, or is too long for a TXT
    string.
    """
    peer = canonical_peer_id(peer_id)
    if not isinstance(addr, str) or not addr.isascii() or len(addr) > 2 * MAX_ADDR_LEN:
        raise ValueError(f"not a multiaddr: {str(addr)[:60]!r}")
    items = _multiaddr_items(addr)
    if not items:
        raise ValueError(f"not a multiaddr: {addr[:60]!r}")
    if items[-1][0] == "p2p":
        if items[-1][1] != peer:
            raise ValueError(f"{addr[:80]!r} names another peer than {peer}")
        text = _multiaddr_text(addr)
    else:
        text = _multiaddr_text(f"{addr.rstrip('/')}/p2p/{peer}")
    if len(text.encode()) > MAX_ADDR_LEN:
        raise ValueError(f"multiaddr longer than {MAX_ADDR_LEN} bytes: {text[:60]!r}…")
    return text


def suitable_for_mdns(addr: str) -> bool:
    """Whether ``addr`` is worth advertising on the LAN: no relay circuits, no browser transports,
    DNS names only if they are ``.local`` (the filter go-libp2p applies)."""
    items = _multiaddr_items(addr)
    if not items:
        return False
    for name, value in items:
        if name in _UNSUITABLE_PROTOCOLS:
            return False
        if name in ("dns", "dns4", "dns6", "dnsaddr") and not (value or "").endswith(".local"):
            return False
    return True


def build_p2p_txt(peer_id: str, addrs: Sequence[str]) -> bytes:
    """The TXT rdata of libp2p's mDNS service: one ``dnsaddr=<addr>/p2p/<peer_id>`` per address."""
    peer = canonical_peer_id(peer_id)
    addrs = _canonical_addrs(addrs, peer)
    return encode_txt([f"dnsaddr={addr}".encode() for addr in addrs])


def parse_p2p_txt(raw: bytes) -> DiscoveredPeer:
    """Read a libp2p mDNS TXT record (ours, go-libp2p's, or py-libp2p's ``dnsaddrN`` variant).

    The peer is the one named by the first valid address; addresses naming another peer and
    strings that are not addresses are skipped. Raises :class:`MalformedAdvert` if no valid
    address remains.
    """
    peer: PeerId | None = None
    addrs: list[str] = []
    for key, value in decode_txt(raw):
        if not (key == "dnsaddr" or (key.startswith("dnsaddr") and key[7:].isdigit())):
            continue
        if value is None or len(addrs) >= MAX_ADDRS:
            continue
        text = _ascii(value)
        items = _multiaddr_items(text) if text is not None else None
        if not items or items[-1][0] != "p2p" or not items[-1][1]:
            continue
        if peer is None:
            peer = PeerId(items[-1][1])
        if items[-1][1] != peer:
            continue
        canonical = _multiaddr_text(text or "")
        if canonical not in addrs and len(canonical.encode()) <= MAX_ADDR_LEN:
            addrs.append(canonical)
    if peer is None or not addrs:
        raise MalformedAdvert("no valid dnsaddr in the TXT record")
    return DiscoveredPeer(peer, tuple(addrs), None)


def build_ioe_txt(peer_id: str, addrs: Sequence[str], record: IoeServiceRecord) -> bytes:
    """The TXT rdata of the IoE service record, version 1. Keys (RFC 6763: short, case-insensitive,
    each string under 255 bytes)::

        v=1                     format version
        peer=<peer id>
        type=<node type>        consumption | generator | storage | monitor | owner
        enr=<enrollment>        unenrolled | enrolled
        dna0=<h>,<h>,<h>,<h>    DNA hash text forms, four per string: dna0, dna1, …
        addr0=<multiaddr>       one per string: addr0, addr1, … (each ends in /p2p/<peer id>)
    """
    peer = canonical_peer_id(peer_id)
    addrs = _canonical_addrs(addrs, peer)
    entries = [
        f"v={IOE_TXT_VERSION}".encode(),
        f"peer={peer}".encode(),
        f"type={record.node_type.value}".encode(),
        f"enr={record.enrollment.value}".encode(),
    ]
    for i in range(0, len(record.dnas), DNAS_PER_ENTRY):
        chunk = ",".join(dna.to_text() for dna in record.dnas[i : i + DNAS_PER_ENTRY])
        entries.append(f"dna{i // DNAS_PER_ENTRY}={chunk}".encode())
    entries.extend(f"addr{i}={addr}".encode() for i, addr in enumerate(addrs))
    return encode_txt(entries)


def parse_ioe_txt(raw: bytes) -> DiscoveredPeer:
    """Read an IoE service record. Raises :class:`MalformedAdvert` unless it is version 1 with a
    valid peer id, node type and enrollment; bad DNA hashes and addresses (or ones naming another
    peer) make the record malformed too, since a half-read DNA list would misstate the peer."""
    fields: dict[str, bytes | None] = {}
    for key, value in decode_txt(raw):
        fields.setdefault(key, value)  # RFC 6763 §6.4: the first occurrence of a key wins
    if _field_text(fields, "v") != IOE_TXT_VERSION:
        raise MalformedAdvert("not a version 1 IoE record")
    try:
        peer = canonical_peer_id(_field_text(fields, "peer") or "")
        node_type = NodeType(_field_text(fields, "type") or "")
        enrollment = Enrollment(_field_text(fields, "enr") or "")
    except ValueError as exc:
        raise MalformedAdvert(f"bad IoE record: {exc}") from None
    dnas: list[DnaHash] = []
    for i in range(MAX_DNAS // DNAS_PER_ENTRY + 1):
        chunk = _field_text(fields, f"dna{i}")
        if chunk is None:
            break
        for text in chunk.split(","):
            try:
                dnas.append(DnaHash.from_text(text))
            except EncodingError as exc:
                raise MalformedAdvert(f"bad DNA hash in dna{i}: {exc}") from None
    addrs: list[str] = []
    for i in range(MAX_ADDRS + 1):
        addr_text = _field_text(fields, f"addr{i}")
        if addr_text is None:
            break
        try:
            addr = canonical_addr(addr_text, peer)
        except ValueError as exc:
            raise MalformedAdvert(f"bad addr{i}: {exc}") from None
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise MalformedAdvert("no address in the IoE record")
    if len(addrs) > MAX_ADDRS:
        raise MalformedAdvert(f"more than {MAX_ADDRS} addresses")
    try:
        record = IoeServiceRecord(node_type, enrollment, tuple(dnas))
    except ValueError as exc:
        raise MalformedAdvert(f"bad IoE record: {exc}") from None
    return DiscoveredPeer(peer, tuple(addrs), record)


def encode_txt(entries: Iterable[bytes]) -> bytes:
    """DNS TXT rdata from its strings (each prefixed by its length byte)."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_TXT_ENTRY:
            raise ValueError(f"TXT string of {len(entry)} bytes is over {MAX_TXT_ENTRY}")
        out.append(len(entry))
        out += entry
    if len(out) > MAX_TXT_BYTES:
        raise ValueError(f"TXT record of {len(out)} bytes is over {MAX_TXT_BYTES}")
    return bytes(out)


def decode_txt(raw: bytes) -> list[tuple[str, bytes | None]]:
    """Split TXT rdata into ``(key, value)`` pairs, keys lower-cased (RFC 6763 §6.4).

    A string without ``=`` is a boolean attribute (value ``None``). Strings with an empty key or
    a key outside printable ASCII are skipped. Raises :class:`MalformedAdvert` if the rdata is
    oversized, has too many strings, or a length byte runs past the end.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedAdvert("TXT rdata is not bytes")
    raw = bytes(raw)
    if len(raw) > MAX_TXT_BYTES:
        raise MalformedAdvert(f"TXT record of {len(raw)} bytes is over {MAX_TXT_BYTES}")
    pairs: list[tuple[str, bytes | None]] = []
    offset = 0
    count = 0
    while offset < len(raw):
        length = raw[offset]
        end = offset + 1 + length
        if end > len(raw):
            raise MalformedAdvert("TXT string runs past the end of the record")
        entry = raw[offset + 1 : end]
        offset = end
        count += 1
        if count > MAX_TXT_ENTRIES:
            raise MalformedAdvert(f"more than {MAX_TXT_ENTRIES} TXT strings")
        key_bytes, eq, value = entry.partition(b"=")
        if not key_bytes or any(byte not in _KEY_CHARS for byte in key_bytes):
            continue
        pairs.append((key_bytes.decode("ascii").lower(), value if eq else None))
    return pairs


def random_instance_label() -> str:
    """A random DNS-SD instance label of 32–63 characters of ``[a-z0-9]`` (libp2p's choice)."""
    length = 32 + secrets.randbelow(32)
    return "".join(secrets.choice(_LABEL_ALPHABET) for _ in range(length))


def _canonical_addrs(addrs: Sequence[str], peer: PeerId) -> list[str]:
    if isinstance(addrs, str):
        raise ValueError("addrs must be a sequence of multiaddrs, not one string")
    out: list[str] = []
    for addr in addrs:
        text = canonical_addr(addr, peer)
        if text not in out:
            out.append(text)
    if not out:
        raise ValueError("at least one address is needed")
    if len(out) > MAX_ADDRS:
        raise ValueError(f"at most {MAX_ADDRS} addresses can be advertised, got {len(out)}")
    return out


def _multiaddr_items(text: str) -> list[tuple[str, str | None]] | None:
    """The (protocol, value) pairs of a multiaddr, or ``None`` if ``text`` is not one."""
    if not text.startswith("/") or len(text) > 2 * MAX_ADDR_LEN or not text.isascii():
        return None
    try:
        return [(proto.name, value) for proto, value in Multiaddr(text).items()]
    except Exception:  # the parser is a dependency; any failure means "not a multiaddr"
        return None


def _multiaddr_text(text: str) -> str:
    return str(Multiaddr(text))


def _ascii(value: bytes) -> str | None:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _field_text(fields: dict[str, bytes | None], key: str) -> str | None:
    """The text of ``key``: ``None`` if absent; malformed if present but not printable ASCII."""
    if key not in fields:
        return None
    value = fields[key]
    text = None if value is None else _ascii(value)
    if text is None:
        raise MalformedAdvert(f"{key} is not printable ASCII text")
    return text


def _ips_of(addrs: Sequence[str]) -> list[str]:
    ips: list[str] = []
    for addr in addrs:
        for name, value in _multiaddr_items(addr) or ():
            if name in ("ip4", "ip6") and value and value not in ips:
                ips.append(value)
    return ips


def _port_of(addrs: Sequence[str]) -> int:
    for addr in addrs:
        for name, value in _multiaddr_items(addr) or ():
            if name in ("tcp", "udp") and value and value.isdigit() and 0 < int(value) < 65536:
                return int(value)
    return DEFAULT_PORT


# ---------------------------------------------------------------------------------------------
# The asyncio service


@dataclass(slots=True)
class _Advert:
    """What one (service type, instance name) told us, and when (for picking the newest)."""

    peer: DiscoveredPeer
    seq: int


@dataclass(slots=True)
class _Resolving:
    task: asyncio.Task[None]
    again: bool = False


@dataclass(slots=True)
class _State:
    adverts: dict[tuple[str, str], _Advert] = field(default_factory=dict)
    resolving: dict[tuple[str, str], _Resolving] = field(default_factory=dict)
    reported: dict[PeerId, DiscoveredPeer] = field(default_factory=dict)
    pending: dict[PeerId, asyncio.TimerHandle] = field(default_factory=dict)
    seq: int = 0


class MdnsDiscovery:
    """Advertise this node on the local network and report the peers found there.

    ``interfaces`` are IP addresses of the interfaces to use (``None``: all of them). Tests pass
    ``["127.0.0.1"]``. ``on_peer`` is called (and awaited, if it returns an awaitable, in its own
    task) for every peer other than this one that is new or whose addresses or record changed;
    its exceptions are logged, never raised here. :func:`dial_discovered` makes one that dials.

    A peer's two services arrive separately, so a report waits ``settle`` seconds for the rest of
    a change before it goes out. Goodbyes and expiries are not reported: the peer just leaves
    :meth:`peers`, and is reported as new if it comes back.
    """

    def __init__(
        self,
        peer_id: str,
        addrs: list[str],
        record: IoeServiceRecord,
        *,
        interfaces: list[str] | None = None,
        on_peer: OnPeer,
        resolve_timeout: float = 3.0,
        settle: float = 0.2,
    ) -> None:
        self._peer_id = canonical_peer_id(peer_id)
        if interfaces is not None:
            if isinstance(interfaces, str) or not interfaces:
                raise ValueError("interfaces must be a non-empty list of IP addresses, or None")
            for iface in interfaces:
                ipaddress.ip_address(iface)  # ValueError for anything else
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._on_peer = on_peer
        self._resolve_timeout = resolve_timeout
        self._settle = settle
        self._label = random_instance_label()
        self._addrs, self._record = self._checked(addrs, record)
        self._names = {
            f"{self._label}.{P2P_SERVICE_TYPE}",
            f"{self._label}.{IOE_SERVICE_TYPE}",
        }
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._infos: list[AsyncServiceInfo] = []
        self._state = _State()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    @property
    def instance_label(self) -> str:
        """The random first label of both advertised service instance names."""
        return self._label

    def peers(self) -> list[DiscoveredPeer]:
        """The peers currently advertised on the network (not this node), merged per peer id."""
        peers = (self._merged(peer_id) for peer_id in {a.peer.peer_id for a in self._adverts()})
        return [peer for peer in peers if peer is not None]

    async def start(self) -> None:
        """Open the sockets, start browsing, then register (probe and announce) both services."""
        if self._zc is not None or self._closed:
            raise DiscoveryError("MdnsDiscovery can be started once")
        interfaces = None if self._interfaces is None else _local_addresses(self._interfaces)
        if interfaces == []:
            raise DiscoveryError(f"none of {self._interfaces} is an address of this host")
        try:
            if interfaces is None:
                self._zc = AsyncZeroconf()
            else:
                self._zc = AsyncZeroconf(interfaces=interfaces)
            await self._zc.zeroconf.async_wait_for_start()
        except Exception as exc:  # OSError, zeroconf's own errors: map them at the boundary
            await self._close_zeroconf()
            raise DiscoveryError(f"cannot start mDNS: {exc!r}") from exc
        if not self._zc.zeroconf.engine.senders:
            await self._close_zeroconf()
            raise DiscoveryError(f"no usable multicast interface among {self._interfaces}")
        if self._interfaces is not None and all(
            ipaddress.ip_address(iface).is_loopback for iface in self._interfaces
        ):
            _confine_to_joined_groups(self._zc.zeroconf)
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf,
            [P2P_SERVICE_TYPE, IOE_SERVICE_TYPE],
            handlers=[self._on_service_state_change],
        )
        self._infos = self._service_infos()
        zc = self._zc
        try:  # both probes run at once; then wait for the announcements to go out
            broadcasts = await asyncio.gather(*(zc.async_register_service(i) for i in self._infos))
            await asyncio.gather(*broadcasts)
        except Exception as exc:
            await self.close()
            raise DiscoveryError(f"cannot register the mDNS services: {exc!r}") from exc
        log.debug("advertising %s as %s on %s", self._peer_id, self._label, self._interfaces)

    async def update(
        self, *, addrs: list[str] | None = None, record: IoeServiceRecord | None = None
    ) -> None:
        """Change what is advertised and re-announce it (others see an update)."""
        new_addrs, new_record = self._checked(
            addrs if addrs is not None else list(self._addrs),
            record if record is not None else self._record,
        )
        if (new_addrs, new_record) == (self._addrs, self._record):
            return
        self._addrs, self._record = new_addrs, new_record
        if self._zc is None or self._closed:
            return
        self._infos = self._service_infos()
        zc = self._zc
        broadcasts = await asyncio.gather(*(zc.async_update_service(i) for i in self._infos))
        await asyncio.gather(*broadcasts)

    async def close(self) -> None:
        """Stop browsing, say goodbye (TTL 0) for both services and close the sockets."""
        if self._closed:
            return
        self._closed = True
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        for timer in self._state.pending.values():
            timer.cancel()
        self._state.pending.clear()
        tasks = [r.task for r in self._state.resolving.values()] + list(self._callbacks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._state.resolving.clear()
        self._callbacks.clear()
        await self._close_zeroconf()

    async def _close_zeroconf(self) -> None:
        if self._zc is not None:
            zc, self._zc = self._zc, None
            await zc.async_close()  # unregisters (goodbye packets) before closing the sockets

    def _checked(
        self, addrs: list[str], record: IoeServiceRecord
    ) -> tuple[tuple[str, ...], IoeServiceRecord]:
        if not isinstance(record, IoeServiceRecord):
            raise ValueError(f"record must be an IoeServiceRecord, got {type(record).__name__}")
        if isinstance(addrs, str):
            raise ValueError("addrs must be a list of multiaddrs, not one string")
        for addr in addrs:
            canonical_addr(addr, self._peer_id)  # ValueError for junk or another peer's address
        suitable = [addr for addr in addrs if suitable_for_mdns(addr)]
        canonical = tuple(_canonical_addrs(suitable, self._peer_id))
        build_ioe_txt(self._peer_id, canonical, record)  # raises now, not on the network
        if not _ips_of(canonical) and not self._interfaces:
            raise ValueError("no IP address among addrs to put in the A/AAAA records")
        return canonical, record

    def _service_infos(self) -> list[AsyncServiceInfo]:
        ips = _ips_of(self._addrs) or list(self._interfaces or ())
        port = _port_of(self._addrs)
        server = f"{self._label}.local."
        texts = {
            P2P_SERVICE_TYPE: build_p2p_txt(self._peer_id, self._addrs),
            IOE_SERVICE_TYPE: build_ioe_txt(self._peer_id, self._addrs, self._record),
        }
        return [
            AsyncServiceInfo(
                type_,
                f"{self._label}.{type_}",
                port=port,
                properties=text,
                server=server,
                parsed_addresses=ips,
            )
            for type_, text in texts.items()
        ]

    # -- browsing ---------------------------------------------------------------------------

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if self._closed or name in self._names:
            return
        key = (service_type, name)
        state = self._state
        if state_change is ServiceStateChange.Removed:
            resolving = state.resolving.pop(key, None)
            if resolving is not None:
                resolving.task.cancel()
            advert = state.adverts.pop(key, None)
            if advert is not None:
                self._forget_if_gone(advert.peer.peer_id)
            return
        resolving = state.resolving.get(key)
        if resolving is not None:
            resolving.again = True
            return
        if key not in state.adverts and len(state.adverts) + len(state.resolving) >= MAX_SERVICES:
            log.debug("ignoring %r: already tracking %d services", name[:80], MAX_SERVICES)
            return
        task = asyncio.get_running_loop().create_task(
            self._resolve(zeroconf, key), name=f"mdns-resolve {name[:40]}"
        )
        state.resolving[key] = _Resolving(task)

    async def _resolve(self, zeroconf: Zeroconf, key: tuple[str, str]) -> None:
        service_type, name = key
        try:
            while True:
                info = AsyncServiceInfo(service_type, name)
                found = await info.async_request(zeroconf, self._resolve_timeout * 1000)
                resolving = self._state.resolving.get(key)
                if resolving is None or resolving.task is not asyncio.current_task():
                    return  # removed (or superseded) while we waited
                if found and info.text is not None:
                    self._accept(key, info.text)
                else:
                    log.debug("could not resolve %r", name[:80])
                if not resolving.again:
                    break
                resolving.again = False
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug, or zeroconf choking on something: never kill discovery
            log.exception("resolving %r failed", name[:80])
        finally:
            resolving = self._state.resolving.get(key)
            if resolving is not None and resolving.task is asyncio.current_task():
                del self._state.resolving[key]

    def _accept(self, key: tuple[str, str], text: bytes) -> None:
        service_type, name = key
        parse = parse_p2p_txt if service_type == P2P_SERVICE_TYPE else parse_ioe_txt
        try:
            peer = parse(text)
        except MalformedAdvert as exc:
            log.debug("ignoring malformed advert %r: %s", name[:80], exc)
            previous = self._state.adverts.pop(key, None)
            if previous is not None:
                self._forget_if_gone(previous.peer.peer_id)
            return
        if peer.peer_id == self._peer_id:
            return  # ourselves (an older instance of this node, or a replay)
        self._state.seq += 1
        previous = self._state.adverts.get(key)
        self._state.adverts[key] = _Advert(peer, self._state.seq)
        if previous is not None and previous.peer.peer_id != peer.peer_id:
            self._forget_if_gone(previous.peer.peer_id)
        self._schedule_report(peer.peer_id)

    def _adverts(self) -> Iterable[_Advert]:
        return self._state.adverts.values()

    def _merged(self, peer_id: PeerId) -> DiscoveredPeer | None:
        """Everything currently advertised for ``peer_id`` as one peer (``None``: nothing)."""
        adverts = sorted(
            (a for a in self._adverts() if a.peer.peer_id == peer_id),
            key=lambda a: (a.peer.record is not None, a.seq),
        )
        if not adverts:
            return None
        addrs: dict[str, None] = {}  # ordered set: newest IoE record's first, then libp2p's
        for advert in reversed(adverts):
            addrs.update(dict.fromkeys(advert.peer.addrs))
        return DiscoveredPeer(peer_id, tuple(addrs)[:MAX_ADDRS], adverts[-1].peer.record)

    def _forget_if_gone(self, peer_id: PeerId) -> None:
        """After a removal: once nothing of the peer is left, a return counts as new."""
        if self._merged(peer_id) is None:
            self._state.reported.pop(peer_id, None)
            timer = self._state.pending.pop(peer_id, None)
            if timer is not None:
                timer.cancel()

    def _schedule_report(self, peer_id: PeerId) -> None:
        timer = self._state.pending.pop(peer_id, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._state.pending[peer_id] = loop.call_later(self._settle, self._report, peer_id)

    def _report(self, peer_id: PeerId) -> None:
        self._state.pending.pop(peer_id, None)
        merged = self._merged(peer_id)
        if self._closed or merged is None or self._state.reported.get(peer_id) == merged:
            return
        self._state.reported[peer_id] = merged
        self._notify(merged)

    def _notify(self, peer: DiscoveredPeer) -> None:
        task = asyncio.get_running_loop().create_task(
            self._call_on_peer(peer), name=f"mdns-on-peer {peer.peer_id}"
        )
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _call_on_peer(self, peer: DiscoveredPeer) -> None:
        try:
            result = self._on_peer(peer)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_peer failed for %s", peer.peer_id)


def _local_addresses(interfaces: list[str]) -> list[str]:
    """The interface addresses that belong to this host (binding a throwaway socket tells; nothing
    is sent). zeroconf raises on the others and leaks its listen socket when it does."""
    usable = []
    for iface in interfaces:
        family = socket.AF_INET6 if ipaddress.ip_address(iface).version == 6 else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((iface, 0))
        except OSError as exc:
            log.warning("not using %s for mDNS: %s", iface, exc)
        else:
            usable.append(iface)
    return usable


def _confine_to_joined_groups(zc: Zeroconf) -> None:
    """Make zeroconf's IPv4 sockets receive only multicast for groups they joined themselves.

    Linux delivers a multicast datagram to every socket bound to its port if *any* socket on the
    host joined the group on the arriving interface (``IP_MULTICAST_ALL``, on by default). The
    shared listen socket is bound to ``0.0.0.0:5353``, so a loopback-only instance would otherwise
    also hear (and answer by unicast) mDNS from real interfaces that another program joined.
    """
    if not sys.platform.startswith("linux"):
        return
    for reader in zc.engine.readers:
        sock: Any = reader.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_INET:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)


def dial_discovered(network: Network) -> Callable[[DiscoveredPeer], Awaitable[None]]:
    """An ``on_peer`` that remembers a peer's addresses on ``network`` and connects to it (first
    address that works) unless already connected. Failures are logged at debug level."""

    async def on_peer(peer: DiscoveredPeer) -> None:
        network.add_peer_addrs(peer.peer_id, list(peer.addrs))
        if peer.peer_id in network.connected_peers():
            return
        for addr in peer.addrs:
            try:
                await network.connect(addr)
            except NetworkError as exc:
                log.debug("could not dial discovered %s at %s: %s", peer.peer_id, addr, exc)
            else:
                return

    return on_peer


__all__ = [
    "IOE_SERVICE_TYPE",
    "MAX_ADDRS",
    "MAX_DNAS",
    "MAX_TXT_BYTES",
    "MAX_TXT_ENTRY",
    "P2P_SERVICE_TYPE",
    "DiscoveredPeer",
    "DiscoveryError",
    "Enrollment",
    "IoeServiceRecord",
    "MalformedAdvert",
    "MdnsDiscovery",
    "NodeType",
    "OnPeer",
    "build_ioe_txt",
    "build_p2p_txt",
    "canonical_addr",
    "canonical_peer_id",
    "decode_txt",
    "dial_discovered",
    "encode_txt",
    "parse_ioe_txt",
    "parse_p2p_txt",
    "random_instance_label",
    "suitable_for_mdns",
]
