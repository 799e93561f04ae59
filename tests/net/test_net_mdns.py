"""Local discovery (ioe.net.mdns): the TXT formats as pure functions, fuzzed; then real mDNS.

The network tests run real multicast DNS on the loopback interface only: every zeroconf instance
is bound to ``127.0.0.1`` (``IP_MULTICAST_IF`` 127.0.0.1, group joined on ``lo``), so nothing is
sent on a real interface. Linux needs no system change for this (``lo`` lacks the MULTICAST flag
here and it still works; see docs/discovery.md). Other programs on the host may be doing mDNS on
``lo`` at the same time, so the tests look only at the peer ids they made up themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from ioe.hashing import DnaHash
from ioe.net.interface import PeerId, PeerUnreachable
from ioe.net.mdns import (
    IOE_SERVICE_TYPE,
    MAX_ADDR_LEN,
    MAX_ADDRS,
    MAX_DNAS,
    MAX_TXT_BYTES,
    MAX_TXT_ENTRY,
    P2P_SERVICE_TYPE,
    DiscoveredPeer,
    DiscoveryError,
    IoeServiceRecord,
    MalformedAdvert,
    MdnsDiscovery,
    build_ioe_txt,
    build_p2p_txt,
    canonical_addr,
    canonical_peer_id,
    decode_txt,
    dial_discovered,
    encode_txt,
    parse_ioe_txt,
    parse_p2p_txt,
    random_instance_label,
    suitable_for_mdns,
)
from ioe.vocabulary import Enrollment, NodeType

LOOPBACK = ["127.0.0.1"]
DEADLINE = 15.0  # seconds for anything to cross loopback mDNS (it takes about 1.5 s)

# -------------------------------------------------------------------------------------------------
# helpers

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _B58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def peer_id_from(key: bytes) -> str:
    """A libp2p Ed25519 peer id (``12D3KooW…``): identity multihash of the protobuf public key."""
    assert len(key) == 32
    return b58encode(b"\x00\x24" + b"\x08\x01\x12\x20" + key)


def new_peer_id() -> str:
    return peer_id_from(os.urandom(32))


def dna(n: int) -> DnaHash:
    return DnaHash.of(f"dna {n}".encode())


def raw_txt(*entries: bytes) -> bytes:
    return b"".join(bytes([len(e)]) + e for e in entries)


PEER = peer_id_from(hashlib.sha256(b"peer").digest())
OTHER = peer_id_from(hashlib.sha256(b"other").digest())
ADDR = f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"
RECORD = IoeServiceRecord(NodeType.STORAGE, Enrollment.ENROLLED, (dna(1), dna(2)))


# -------------------------------------------------------------------------------------------------
# strategies

peer_ids = st.binary(min_size=32, max_size=32).map(peer_id_from)


@st.composite
def multiaddrs(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        ip = f"/ip4/{draw(st.ip_addresses(v=4))}"
    else:
        ip = f"/ip6/{draw(st.ip_addresses(v=6))}"
    port = draw(st.integers(1, 65535))
    transport = draw(st.sampled_from([f"/tcp/{port}", f"/udp/{port}/quic-v1"]))
    return ip + transport


records = st.builds(
    IoeServiceRecord,
    st.sampled_from(NodeType),
    st.sampled_from(Enrollment),
    st.lists(st.binary(min_size=32, max_size=32).map(DnaHash), max_size=MAX_DNAS, unique=True).map(
        tuple
    ),
)

_keys = st.one_of(
    st.sampled_from(
        [
            *("dnsaddr", "DNSADDR", "dnsaddr2", "v", "peer", "type", "enr", "dna0", "dna1"),
            *("addr0", "addr1", "addr12", "x", "", "=", "dnsaddr ", "ädr"),
        ]
    ).map(lambda k: k.encode()),
    st.binary(max_size=12),
)
_values = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=80).map(lambda t: t.encode()),
    st.sampled_from(
        [
            *(ADDR, f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER}", "/ip4/999.1.1.1/tcp/1", PEER, "1"),
            *("storage", "toaster", "enrolled", dna(1).to_text(), f"{dna(1)},{dna(1)}", ""),
        ]
    ).map(lambda t: t.encode()),
    st.just(b"\xff\xfe\x80"),
)
hostile_entries = st.lists(
    st.tuples(_keys, st.booleans(), _values).map(
        lambda kev: (kev[0] + (b"=" if kev[1] else b"") + kev[2])[:255]
    ),
    max_size=80,
)


# -------------------------------------------------------------------------------------------------
# the pure functions


@given(peer=peer_ids, addrs=st.lists(multiaddrs(), min_size=1, max_size=MAX_ADDRS, unique=True))
@settings(deadline=None)
def test_p2p_txt_round_trips_in_libp2p_format(peer: str, addrs: list[str]) -> None:
    raw = build_p2p_txt(peer, addrs)
    expected = []
    for addr in addrs:
        canonical = canonical_addr(addr, peer)
        if canonical not in expected:
            expected.append(canonical)
    assert parse_p2p_txt(raw) == DiscoveredPeer(PeerId(peer), tuple(expected), None)
    pairs = decode_txt(raw)
    assert [key for key, _ in pairs] == ["dnsaddr"] * len(expected)  # the spec: repeated dnsaddr=
    for _, value in pairs:
        assert value is not None and value.decode().endswith(f"/p2p/{peer}")


@given(
    peer=peer_ids,
    addrs=st.lists(multiaddrs(), min_size=1, max_size=MAX_ADDRS, unique=True),
    record=records,
)
@settings(deadline=None)
def test_ioe_txt_round_trips(peer: str, addrs: list[str], record: IoeServiceRecord) -> None:
    raw = build_ioe_txt(peer, addrs, record)
    found = parse_ioe_txt(raw)
    assert found.peer_id == peer
    assert found.record == record
    assert found.addrs == tuple(dict.fromkeys(canonical_addr(a, peer) for a in addrs))
    assert len(raw) <= MAX_TXT_BYTES


@given(peer=peer_ids, addrs=st.lists(multiaddrs(), min_size=1, max_size=MAX_ADDRS), rec=records)
@settings(deadline=None)
def test_every_txt_string_is_under_255_bytes(peer: str, addrs: list[str], rec: Any) -> None:
    for raw in (build_p2p_txt(peer, addrs), build_ioe_txt(peer, addrs, rec)):
        offset = 0
        while offset < len(raw):
            assert raw[offset] <= MAX_TXT_ENTRY < 255
            offset += 1 + raw[offset]
        assert offset == len(raw)


@given(raw=st.binary(max_size=MAX_TXT_BYTES + 100))
@settings(deadline=None)
def test_parsers_fail_only_with_malformed_advert_on_random_bytes(raw: bytes) -> None:
    for parse in (parse_p2p_txt, parse_ioe_txt):
        with contextlib.suppress(MalformedAdvert):
            parse(raw)


def _check_parsed(peer: DiscoveredPeer) -> None:
    """What a successful parse of anything promises."""
    assert canonical_peer_id(peer.peer_id) == peer.peer_id
    assert 1 <= len(peer.addrs) <= MAX_ADDRS
    assert len(set(peer.addrs)) == len(peer.addrs)
    for addr in peer.addrs:
        assert addr.endswith(f"/p2p/{peer.peer_id}")
        assert len(addr.encode()) <= MAX_ADDR_LEN
        assert canonical_addr(addr, peer.peer_id) == addr
    if peer.record is not None:
        assert len(peer.record.dnas) <= MAX_DNAS


@given(entries=hostile_entries)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parsers_survive_hostile_txt_records(entries: list[bytes]) -> None:
    raw = raw_txt(*entries)
    for parse in (parse_p2p_txt, parse_ioe_txt):
        try:
            found = parse(raw)
        except MalformedAdvert:
            continue
        _check_parsed(found)


@given(entries=hostile_entries, peer=peer_ids, addrs=st.lists(multiaddrs(), min_size=1, max_size=3))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_junk_around_a_valid_p2p_record_does_not_hide_it(
    entries: list[bytes], peer: str, addrs: list[str]
) -> None:
    good = build_p2p_txt(peer, addrs)
    assume(len(good) + len(raw_txt(*entries)) <= MAX_TXT_BYTES)
    assume(len(entries) + len(addrs) <= 64)
    found = parse_p2p_txt(good + raw_txt(*[e for e in entries if not e.lower().startswith(b"dns")]))
    assert found.peer_id == peer
    _check_parsed(found)


def test_oversized_and_truncated_records_are_refused_before_parsing() -> None:
    big = raw_txt(*[b"x=" + b"a" * 250] * 17)
    assert len(big) > MAX_TXT_BYTES
    for parse in (parse_p2p_txt, parse_ioe_txt):
        with pytest.raises(MalformedAdvert, match="over"):
            parse(big)
        with pytest.raises(MalformedAdvert, match="past the end"):
            parse(b"\x10dnsaddr=/ip4")
        with pytest.raises(MalformedAdvert, match="more than 64"):
            parse(b"\x00" * 65)


def test_p2p_parser_skips_bad_strings_and_reads_other_implementations() -> None:
    raw = raw_txt(
        b"dnsaddr=\xff\xfe/ip4/127.0.0.1/tcp/1/p2p/" + PEER.encode(),  # not UTF-8
        b"dnsaddr=/ip4/999.0.0.1/tcp/1/p2p/" + PEER.encode(),  # not a multiaddr
        b"dnsaddr=/ip4/127.0.0.1/tcp/1",  # no /p2p/
        b"id=" + OTHER.encode(),  # wrong key
        b"\x01\x02=junk",  # key outside printable ASCII
        b"dnsaddr",  # boolean attribute
        b"DNSADDR=" + ADDR.encode(),  # keys are case-insensitive
        b"dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/" + OTHER.encode(),  # another peer: skipped
        b"dnsaddr2=/ip6/::1/tcp/4001/p2p/" + PEER.encode(),  # py-libp2p's numbered keys
    )
    found = parse_p2p_txt(raw)
    assert found == DiscoveredPeer(PeerId(PEER), (ADDR, f"/ip6/::1/tcp/4001/p2p/{PEER}"), None)
    with pytest.raises(MalformedAdvert):
        parse_p2p_txt(raw_txt(b"id=" + PEER.encode(), b"dnsaddr=/ip4/127.0.0.1/tcp/1"))
    with pytest.raises(MalformedAdvert):
        parse_p2p_txt(b"")


def _ioe(**changes: bytes | None) -> bytes:
    fields: dict[str, bytes | None] = {
        "v": b"1",
        "peer": PEER.encode(),
        "type": b"storage",
        "enr": b"enrolled",
        "dna0": f"{dna(1)},{dna(2)}".encode(),
        "addr0": ADDR.encode(),
    }
    fields.update(changes)
    return raw_txt(
        *[k.encode() + (b"" if v is None else b"=" + v) for k, v in fields.items() if v != b"-"]
    )


def test_ioe_parser_reads_a_good_record() -> None:
    assert parse_ioe_txt(_ioe()) == DiscoveredPeer(PeerId(PEER), (ADDR,), RECORD)
    # an address without /p2p/ is completed; extra keys are ignored; first occurrence wins
    raw = _ioe(addr0=b"/ip4/127.0.0.1/tcp/4001", color=b"blue") + raw_txt(b"type=generator")
    assert parse_ioe_txt(raw) == DiscoveredPeer(PeerId(PEER), (ADDR,), RECORD)


@pytest.mark.parametrize(
    "changes",
    [
        {"v": b"2"},
        {"v": b"-"},
        {"peer": b"-"},
        {"peer": b"not-a-peer-id"},
        {"peer": b"\xff" * 40},
        {"type": b"toaster"},
        {"type": None},
        {"enr": b"ENROLLED"},
        {"dna0": b"udnahXYZ"},
        {"dna0": f"{dna(1)},{dna(1)}".encode()},  # duplicate
        {"dna0": b"\xc3\x28"},  # not UTF-8
        {"dna0": b""},
        {"addr0": b"-"},
        {"addr0": f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER}".encode()},  # someone else's address
        {"addr0": b"/ip4/127.0.0.1/tcp/99999"},
        {"addr0": b"/" + b"a" * 240},
    ],
)
def test_ioe_parser_refuses_bad_records(changes: dict[str, bytes | None]) -> None:
    with pytest.raises(MalformedAdvert):
        parse_ioe_txt(_ioe(**changes))


def test_ioe_record_with_too_many_dnas_or_addrs_is_refused() -> None:
    many_dnas = {
        f"dna{i}": ",".join(str(dna(4 * i + j)) for j in range(4)).encode() for i in range(5)
    }
    with pytest.raises(MalformedAdvert):
        parse_ioe_txt(_ioe(**many_dnas))
    many_addrs = {f"addr{i}": f"/ip4/127.0.0.1/tcp/{i + 1}".encode() for i in range(MAX_ADDRS + 1)}
    with pytest.raises(MalformedAdvert):
        parse_ioe_txt(_ioe(**many_addrs))


def test_builders_refuse_what_cannot_be_advertised() -> None:
    with pytest.raises(ValueError):
        build_p2p_txt("not a peer id", [ADDR])
    with pytest.raises(ValueError):
        build_p2p_txt(PEER, [])
    with pytest.raises(ValueError):
        build_p2p_txt(PEER, ADDR)  # type: ignore[arg-type]  # one string, not a list
    with pytest.raises(ValueError, match="another peer"):
        build_p2p_txt(PEER, [f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER}"])
    with pytest.raises(ValueError, match="at most"):
        build_p2p_txt(PEER, [f"/ip4/127.0.0.1/tcp/{p}" for p in range(1, MAX_ADDRS + 2)])
    with pytest.raises(ValueError, match="longer"):
        build_p2p_txt(PEER, ["/dns4/" + "a." * 90 + "local/tcp/1"])
    with pytest.raises(ValueError):
        build_p2p_txt(PEER, ["/ip4/127.0.0.1/tcp/99999"])
    with pytest.raises(ValueError):
        IoeServiceRecord(NodeType.OWNER, Enrollment.ENROLLED, tuple(dna(i) for i in range(17)))
    with pytest.raises(ValueError):
        IoeServiceRecord(NodeType.OWNER, Enrollment.ENROLLED, (dna(1), dna(1)))
    with pytest.raises(ValueError):
        IoeServiceRecord("owner", Enrollment.ENROLLED)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_txt([b"x" * 255])


def test_instance_labels_follow_libp2p() -> None:
    labels = {random_instance_label() for _ in range(200)}
    assert len(labels) == 200
    for label in labels:
        assert 32 <= len(label) <= 63
        assert set(label) <= set("abcdefghijklmnopqrstuvwxyz0123456789")


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("/ip4/192.168.1.2/tcp/4001", True),
        ("/ip6/::1/udp/4001/quic-v1", True),
        ("/dns4/plug.local/tcp/4001", True),
        ("/dns4/example.com/tcp/4001", False),
        ("/ip4/1.2.3.4/tcp/443/wss", False),
        (f"/ip4/1.2.3.4/tcp/4001/p2p/{OTHER}/p2p-circuit", False),
        ("not an address", False),
    ],
)
def test_only_lan_worthy_addresses_are_advertised(addr: str, ok: bool) -> None:
    assert suitable_for_mdns(addr) is ok


# -------------------------------------------------------------------------------------------------
# dial_discovered


class StubNetwork:
    def __init__(self, connected: list[str], failing: set[str]) -> None:
        self.connected = connected
        self.failing = failing
        self.remembered: list[tuple[str, list[str]]] = []
        self.dialled: list[str] = []

    def add_peer_addrs(self, peer: str, addrs: list[str]) -> None:
        self.remembered.append((peer, addrs))

    def connected_peers(self) -> list[str]:
        return self.connected

    async def connect(self, addr: str) -> str:
        self.dialled.append(addr)
        if addr in self.failing:
            raise PeerUnreachable(addr)
        return addr.rsplit("/", 1)[-1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_dial_discovered_remembers_and_tries_each_address() -> None:
    second = f"/ip6/::1/tcp/4001/p2p/{PEER}"
    net = StubNetwork([], failing={ADDR})
    await dial_discovered(net)(DiscoveredPeer(PeerId(PEER), (ADDR, second)))  # type: ignore[arg-type]
    assert net.remembered == [(PEER, [ADDR, second])]
    assert net.dialled == [ADDR, second]
    net = StubNetwork([PEER], failing=set())
    await dial_discovered(net)(DiscoveredPeer(PeerId(PEER), (ADDR,)))  # type: ignore[arg-type]
    assert net.dialled == []  # already connected


# -------------------------------------------------------------------------------------------------
# real mDNS on loopback


class Node:
    """One MdnsDiscovery with the peers its on_peer has been told about, in order."""

    def __init__(
        self, port: int, record: IoeServiceRecord, on_peer: Callable[..., Any] | None = None
    ) -> None:
        self.peer_id = new_peer_id()
        self.addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{self.peer_id}"
        self.record = record
        self.reports: list[tuple[float, DiscoveredPeer]] = []
        self.discovery = MdnsDiscovery(
            self.peer_id,
            [self.addr],
            record,
            interfaces=LOOPBACK,
            on_peer=on_peer or self.remember,
        )

    def remember(self, peer: DiscoveredPeer) -> None:
        self.reports.append((anyio.current_time(), peer))

    def expected(self) -> DiscoveredPeer:
        return DiscoveredPeer(PeerId(self.peer_id), (self.addr,), self.record)

    def latest(self, peer_id: str) -> DiscoveredPeer | None:
        found = [peer for _, peer in self.reports if peer.peer_id == peer_id]
        return found[-1] if found else None


async def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` every 50 ms for at most DEADLINE seconds."""
    with anyio.move_on_after(DEADLINE):
        for _ in range(int(DEADLINE / 0.05) + 1):
            if check():
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before, "a thread outlived the test"


@asynccontextmanager
async def started(*nodes: Node) -> Any:
    async with anyio.create_task_group() as tg:
        for node in nodes:
            tg.start_soon(node.discovery.start)
    try:
        yield nodes
    finally:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for node in nodes:
                    tg.start_soon(node.discovery.close)


def sees_all(nodes: tuple[Node, ...]) -> bool:
    return all(a.latest(b.peer_id) == b.expected() for a in nodes for b in nodes if a is not b)


@pytest.mark.anyio
@pytest.mark.usefixtures("no_leaked_threads")
async def test_three_nodes_find_each_other_on_loopback() -> None:
    records = [
        IoeServiceRecord(NodeType.STORAGE, Enrollment.ENROLLED, (dna(1),)),
        IoeServiceRecord(NodeType.GENERATOR, Enrollment.UNENROLLED),
        IoeServiceRecord(NodeType.OWNER, Enrollment.ENROLLED, tuple(dna(i) for i in range(9))),
    ]
    calls: list[DiscoveredPeer] = []

    async def raising(peer: DiscoveredPeer) -> None:  # a broken on_peer breaks nothing
        calls.append(peer)
        raise RuntimeError("boom")

    a = Node(41001, records[0])
    b = Node(41002, records[1])
    c = Node(41003, records[2], on_peer=raising)
    async with started(a, b, c):
        await wait_until(lambda: sees_all((a, b)), "a and b see the others")
        await wait_until(lambda: {p.peer_id for p in calls} >= {a.peer_id, b.peer_id}, "c sees")
        assert {p.peer_id: p for p in calls if p.peer_id in (a.peer_id, b.peer_id)} == {
            a.peer_id: a.expected(),
            b.peer_id: b.expected(),
        }
        for node in (a, b, c):
            assert node.latest(node.peer_id) is None  # never itself
            mine = {p.peer_id: p for p in node.discovery.peers()}
            for other in {a, b, c} - {node}:
                assert mine[PeerId(other.peer_id)] == other.expected()
        # each peer reported once: both services of a peer are merged before reporting
        for node in (a, b):
            ours = (a.peer_id, b.peer_id, c.peer_id)
            assert len([p for _, p in node.reports if p.peer_id in ours]) == 2


@pytest.mark.anyio
@pytest.mark.usefixtures("no_leaked_threads")
async def test_an_update_is_seen_by_the_others() -> None:
    a = Node(41011, IoeServiceRecord(NodeType.CONSUMPTION, Enrollment.UNENROLLED))
    b = Node(41012, RECORD)
    c = Node(41013, RECORD)
    async with started(a, b, c):
        await wait_until(lambda: sees_all((a, b, c)), "all see each other")
        new_addrs = [
            f"/ip4/127.0.0.1/tcp/41111/p2p/{a.peer_id}",
            f"/ip6/::1/tcp/41111/p2p/{a.peer_id}",
        ]
        new_record = IoeServiceRecord(NodeType.CONSUMPTION, Enrollment.ENROLLED, (dna(7),))
        await a.discovery.update(addrs=new_addrs, record=new_record)
        wanted = DiscoveredPeer(PeerId(a.peer_id), tuple(new_addrs), new_record)
        await wait_until(
            lambda: b.latest(a.peer_id) == wanted and c.latest(a.peer_id) == wanted, "update seen"
        )
        assert b.latest(c.peer_id) == c.expected()  # others unchanged


@pytest.mark.anyio
@pytest.mark.usefixtures("no_leaked_threads")
async def test_a_closed_node_is_forgotten_and_not_reported_again() -> None:
    a, b, c = Node(41021, RECORD), Node(41022, RECORD), Node(41023, RECORD)
    async with started(a, b, c):
        await wait_until(lambda: sees_all((a, b, c)), "all see each other")
        await c.discovery.close()
        closed_at = anyio.current_time()
        gone = PeerId(c.peer_id)
        await wait_until(
            lambda: all(gone not in {p.peer_id for p in n.discovery.peers()} for n in (a, b)),
            "goodbye received",
        )
        await anyio.sleep(2.0)  # long enough for any late answer or re-query to come in
        for node in (a, b):
            assert [t for t, p in node.reports if p.peer_id == gone and t >= closed_at] == []
        # the same peer coming back (a restart: new instance name) is reported as new
        c.discovery = MdnsDiscovery(
            c.peer_id, [c.addr], RECORD, interfaces=LOOPBACK, on_peer=c.remember
        )
        async with started(c):
            await wait_until(
                lambda: all(
                    [p for t, p in n.reports if p.peer_id == gone and t > closed_at]
                    == [c.expected()]
                    for n in (a, b)
                ),
                "c seen again, once",
            )


@pytest.mark.anyio
@pytest.mark.usefixtures("no_leaked_threads")
async def test_garbage_services_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ioe.net.mdns")
    victim = new_peer_id()
    garbage = {
        P2P_SERVICE_TYPE: [
            raw_txt(b"dnsaddr=\xff\xfe", b"dnsaddr=/ip4/999.1.1.1/tcp/1/p2p/" + victim.encode()),
            raw_txt(
                *[b"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/" + victim.encode() + b"/" + b"x" * 150] * 30
            ),
            b"",
        ],
        IOE_SERVICE_TYPE: [
            _ioe(peer=victim.encode(), type=b"toaster"),
            _ioe(peer=victim.encode(), dna0=b"\xc3\x28"),
            raw_txt(b"v=1", b"peer=" + victim.encode()),
        ],
    }
    zc = AsyncZeroconf(interfaces=LOOPBACK)
    names = []
    try:
        infos = []
        for type_, texts in garbage.items():
            for text in texts:
                label = random_instance_label()
                names.append(f"{label}.{type_}")
                infos.append(
                    AsyncServiceInfo(
                        type_,
                        f"{label}.{type_}",
                        port=1,
                        properties=text,
                        server=f"{label}.local.",
                        parsed_addresses=["127.0.0.1"],
                    )
                )
        broadcasts = await asyncio.gather(*(zc.async_register_service(i) for i in infos))
        await asyncio.gather(*broadcasts)
        a, b = Node(41031, RECORD), Node(41032, RECORD)
        async with started(a, b):
            await wait_until(lambda: sees_all((a, b)), "the real peers are still found")

            def all_ignored() -> bool:
                text = caplog.text
                return all(f"ignoring malformed advert {name[:80]!r}" in text for name in names)

            await wait_until(all_ignored, "every garbage advert logged as ignored")
            reasons = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
            assert any("over 4096" in reason for reason in reasons)  # the 6 kB TXT record
            for node in (a, b):
                assert node.latest(victim) is None
                assert victim not in {p.peer_id for p in node.discovery.peers()}
    finally:
        await zc.async_close()


@pytest.mark.anyio
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MULTICAST_ALL is Linux's")
async def test_loopback_instance_hears_only_groups_joined_on_loopback() -> None:
    node = Node(41041, RECORD)
    async with started(node):
        zc = node.discovery._zc  # the test looks inside on purpose
        assert zc is not None
        socks = [r.transport.get_extra_info("socket") for r in zc.zeroconf.engine.readers]
        assert socks
        for sock in socks:
            assert sock.getsockopt(socket.IPPROTO_IP, 49) == 0  # IP_MULTICAST_ALL off


@pytest.mark.anyio
async def test_an_interface_that_is_not_here_is_a_discovery_error() -> None:
    node_id = new_peer_id()
    discovery = MdnsDiscovery(
        node_id,
        [f"/ip4/127.0.0.1/tcp/1/p2p/{node_id}"],
        RECORD,
        interfaces=["192.0.2.254"],  # TEST-NET-1: not an address of this host; nothing is sent
        on_peer=lambda peer: None,
    )
    with pytest.raises(DiscoveryError):
        await discovery.start()
    await discovery.close()


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        MdnsDiscovery("nope", [ADDR], RECORD, on_peer=lambda p: None)
    with pytest.raises(ValueError):
        MdnsDiscovery(PEER, [ADDR], RECORD, interfaces=["lo"], on_peer=lambda p: None)
    with pytest.raises(ValueError):
        MdnsDiscovery(PEER, [f"/dns4/plug.local/tcp/1/p2p/{PEER}"], RECORD, on_peer=lambda p: None)
    with pytest.raises(ValueError):
        MdnsDiscovery(PEER, [ADDR], "storage", on_peer=lambda p: None)  # type: ignore[arg-type]
