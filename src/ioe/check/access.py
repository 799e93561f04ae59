"""Access: what a node must refuse, it refuses.

Each check is one attempt at access a node should not give; it survives when the node refuses:

* ``api``: every route of the HTTP API (enumerated from the application, not from a list kept
  here) without a token and with a wrong one answers 401; routes served without the token by
  design (an app's static page) are listed, not tried;
* ``files``: every file in an owner's and a provisional device's data directory, created under
  a umask of 0, is 0600 (``keystore.json``, ``node.json``, ``ioe.sqlite`` and its ``-wal`` and
  ``-shm``, ``device.key``), the directories 0700;
* ``remote``: a stranger (a member of the network holding no grant) calling each zome function
  of another agent's core cell is refused as unauthorized, and so is a call with a made-up
  secret, or with a real secret of a grant assigned to someone else; functions anyone may call
  through a grant the node keeps for everyone are listed, not tried;
* ``directory``: a device whose certificate says private is not in another owner's directory
  (with or without a zone filter), while its owner sees it (a control: without it the check
  would pass by listing nothing);
* ``p2p``: the node's libp2p port, offered plaintext or another security protocol than Noise
  in multistream-select, answers ``na`` (Noise itself is accepted: the control).

``lost`` counts the attempts that got through.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ioe.check.report import CategoryResult
from ioe.check.scratch import ScratchNodes, api_routes
from ioe.cli.common import provisional_identity
from ioe.conductor import owner_keyset
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.capability import CAPABILITY_ZOME, SECRET_BYTES, CapAccess, CapGrant
from ioe.engine.cell import Cell
from ioe.engine.dht import AgentInfo
from ioe.hashing import AgentPubKey
from ioe.identity.certificate import DeviceVisibility, issue
from ioe.identity.service.directory import directory
from ioe.node.runtime import Node
from ioe.services.remote import RemoteCallError, RemoteUnauthorized
from ioe.vocabulary import DeviceType

SECURITY_PROPOSALS = ("/plaintext/2.0.0", "/plaintext/1.0.0", "/secio/1.0.0", "/tls/1.0.0")
NOISE = "/noise"
MULTISTREAM = "/multistream/1.0.0"
SOCKET_TIMEOUT_S = 5.0
_PARAM = re.compile(r"\{[^}]+\}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One access attempt: its group, what was tried, whether it was refused, and what the
    node answered."""

    group: str
    name: str
    refused: bool
    answer: str


# ------------------------------------------------------------------------------------- API


def _status(url: str, method: str, path: str, headers: dict[str, str]) -> int:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=SOCKET_TIMEOUT_S)
    try:
        conn.request(method, path, body=b"{}" if method != "GET" else None, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def api_attempts(node: Node) -> tuple[list[Attempt], list[str]]:
    """Every non-public route without a token and with a wrong one; and the public routes."""
    attempts, public = [], []
    wrong = {"Authorization": "Bearer " + "x" * len(node.token)}
    for route in api_routes(node):
        path = _PARAM.sub("x", route.path)
        if route.public:
            public.append(f"{route.method} {route.path}")
            continue
        for label, headers in (("no token", {}), ("wrong token", wrong)):
            status = _status(node.api_url, route.method, path, headers)
            attempts.append(
                Attempt("api", f"{route.method} {route.path} ({label})", status == 401, str(status))
            )
    # the signals socket also takes its token in the query (browsers cannot set headers)
    status = _status(node.api_url, "GET", "/v1/signals?token=wrong", {})
    attempts.append(Attempt("api", "GET /v1/signals?token=wrong", status == 401, str(status)))
    return attempts, public


# ----------------------------------------------------------------------------------- files


@contextmanager
def permissive_umask() -> Iterator[None]:
    """Create files under a umask of 0, so that a mode comes from the code, not the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def file_attempts(*data_dirs: Path, key_files: tuple[Path, ...] = ()) -> list[Attempt]:
    """Every file under ``data_dirs`` (and each of ``key_files``) must be 0600 and every
    directory 0700: one attempt each (another local user reading it)."""
    attempts = []
    for path in key_files:
        mode = stat.S_IMODE(path.stat().st_mode)
        attempts.append(Attempt("files", f"{path.name} (a key file)", mode == 0o600, oct(mode)))
    for data_dir in data_dirs:
        for path in sorted([data_dir, *data_dir.rglob("*")]):
            mode = stat.S_IMODE(path.stat().st_mode)
            wanted = 0o700 if path.is_dir() else 0o600
            name = f"{data_dir.name}/{path.relative_to(data_dir)}"
            attempts.append(Attempt("files", name, mode == wanted, oct(mode)))
    return attempts


# ---------------------------------------------------------------------------------- remote


def open_functions(nodes: ScratchNodes, node: Node) -> set[tuple[str, str]]:
    """The (zome, function) pairs anyone may call on ``node``'s core cell: covered by an
    unrestricted grant it keeps."""
    cell = node.core_cell()
    grants = nodes.call(node, CAPABILITY_ZOME, "list_grants")
    assert isinstance(grants, dict)
    unrestricted = [g for g in grants.values() if isinstance(g, CapGrant)]
    unrestricted = [g for g in unrestricted if g.access is CapAccess.UNRESTRICTED]
    return {
        (zome.name, fn)
        for zome in cell.dna.coordinator_zomes
        for fn in zome.functions
        if any(g.covers(zome.name, fn) for g in unrestricted)
    }


def remote_attempts(
    nodes: ScratchNodes, callee: Node, stranger: Node
) -> tuple[list[Attempt], list[str]]:
    """A stranger calls each of the callee's core functions with no secret; then with a made-up
    secret and with the real secret of a grant assigned to a third agent."""
    cell, target = stranger.core_cell(), callee.core_cell()
    opened = open_functions(nodes, callee)
    calls: list[tuple[str, str, str, bytes | None]] = []
    for coordinator in target.dna.coordinator_zomes:
        for fn in sorted(coordinator.functions):
            if (coordinator.name, fn) not in opened:
                calls.append((f"{coordinator.name}.{fn}", coordinator.name, fn, None))
    for service in sorted(callee.remote.services):
        calls.append((f"{service}.read (a service)", service, "read", None))
    secret = os.urandom(SECRET_BYTES)
    third = KeyPair(os.urandom(32)).agent
    nodes.call(
        callee,
        CAPABILITY_ZOME,
        "grant",
        {
            "tag": "assigned to another",
            "access": "assigned",
            "functions": ["profile.*"],
            "assignees": [third],
            "secret": secret,
        },
    )
    calls.append(("profile.set_profile (made-up secret)", "profile", "set_profile", os.urandom(32)))
    calls.append(("profile.set_profile (another's secret)", "profile", "set_profile", secret))
    attempts = []
    for name, zome, fn, given in calls:
        refused, answer = _remote(
            nodes, stranger, cell, target.agent, zome=zome, fn=fn, secret=given
        )
        attempts.append(Attempt("remote", name, refused, answer))
    for zome, fn in sorted(opened):  # the control: the same path answers what is open to all
        refused, answer = _remote(
            nodes, stranger, cell, target.agent, zome=zome, fn=fn, secret=None
        )
        if refused:
            raise AssertionError(f"the remote control failed ({zome}.{fn}: {answer})")
    return attempts, sorted(f"{zome}.{fn}" for zome, fn in opened)


def _remote(
    nodes: ScratchNodes,
    stranger: Node,
    cell: Cell,
    to: AgentPubKey,
    *,
    zome: str,
    fn: str,
    secret: bytes | None,
) -> tuple[bool, str]:
    try:
        nodes.run(stranger.remote.call(cell, to, zome, fn, None, secret=secret))
    except RemoteUnauthorized as exc:
        return True, f"unauthorized: {str(exc)[:80]}"
    except RemoteCallError as exc:  # past the grant check: it ran, or tried to
        return False, f"{exc.kind}: {str(exc)[:80]}"
    return False, "answered"


# ------------------------------------------------------------------------------- directory


def directory_attempts() -> list[Attempt]:
    """A private device's agent info, as another owner's node and as its owner's node list it."""
    owner = OwnerAccount.from_root_seed(b"\x21" * 32)
    infos = []
    for index, visibility in ((1, DeviceVisibility.PRIVATE), (2, DeviceVisibility.PUBLIC)):
        device = device_agent_key(owner.device_seed(index), 0)
        certificate = issue(
            keyset=owner_keyset(owner),
            owner_agent=owner.agent_key(),
            device=device.agent,
            device_type=DeviceType.CONSUMPTION,
            name=f"{visibility.value} plug",
            zone="au/nsw/newtown",
            networks=("ioe-core",),
            issued_us=1,
            serial=index,
            visibility=visibility,
        ).signed_by(owner.authorization_key())
        infos.append(
            AgentInfo.sign(
                device,
                dna_hash=core_dna().hash,
                peer_id="12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
                addrs=["/ip4/127.0.0.1/tcp/4001"],
                now_us=time.time_ns() // 1000,
                ttl_us=60_000_000,
                membrane_proof=certificate.to_bytes(),
            )
        )
    private = infos[0].agent
    stranger = {KeyPair(b"\x22" * 32).agent}
    mine = {owner.agent_key().agent}

    def listed(viewers: set[AgentPubKey], zone: str | None) -> set[AgentPubKey]:
        return {e.agent for e in directory(infos, viewers, zone=zone)}

    attempts = [
        Attempt("directory", f"another owner's directory (zone {zone})", private not in
                listed(stranger, zone), "left out" if private not in listed(stranger, zone)
                else "listed")
        for zone in (None, "au/nsw", "au/nsw/newtown")
    ]  # fmt: skip
    if private not in listed(mine, None) or infos[1].agent not in listed(stranger, None):
        raise AssertionError("the directory control failed: the check would prove nothing")
    return attempts


# ------------------------------------------------------------------------------------ p2p


def _delim(text: str) -> bytes:
    data = text.encode() + b"\n"
    length, out = len(data), bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + data


def _read_delim(sock: socket.socket) -> str:
    length = shift = 0
    for _ in range(4):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("closed")
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data.decode(errors="replace").rstrip("\n")


def propose(host: str, port: int, protocol: str) -> str:
    """Open a TCP connection, do the multistream-select handshake and propose ``protocol`` as
    the security protocol; the listener's answer (``na``: refused; the protocol: accepted)."""
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(_delim(MULTISTREAM))
        header = _read_delim(sock)
        if header != MULTISTREAM:
            return f"no multistream header: {header[:40]!r}"
        sock.sendall(_delim(protocol))
        try:
            return _read_delim(sock)
        except (ConnectionError, TimeoutError) as exc:
            return f"closed: {exc}"


def p2p_attempts(node: Node) -> tuple[list[Attempt], str]:
    """Each security protocol but Noise proposed to the node's libp2p port; and the answer to
    Noise (the control)."""
    addr = node.network.listen_addrs()[0]
    match = re.match(r"/ip4/([\d.]+)/tcp/(\d+)", addr)
    if match is None:
        raise AssertionError(f"not a TCP address: {addr}")
    host, port = match.group(1), int(match.group(2))
    attempts = []
    for protocol in SECURITY_PROPOSALS:
        answer = propose(host, port, protocol)
        attempts.append(Attempt("p2p", f"security {protocol}", answer != protocol, answer))
    control = propose(host, port, NOISE)
    if control != NOISE:
        raise AssertionError(f"the Noise control failed ({control!r}): the probe proves nothing")
    return attempts, control


# ------------------------------------------------------------------------------------ run


def _connect(nodes: ScratchNodes, a: Node, b: Node) -> None:
    nodes.run(b.network.connect(a.network.listen_addrs()[0]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(len(n.dht_for(n.core_cell()).members()) >= 2 for n in (a, b)):
            return
        time.sleep(0.05)
    raise AssertionError("the two nodes did not become members of each other's network")


def run(nodes: ScratchNodes, progress: Callable[[str], None] | None = None) -> CategoryResult:
    result = CategoryResult("access")
    started = time.monotonic()
    with permissive_umask():
        alice, bob = nodes.add("alice"), nodes.add("bob")
        carol = nodes.add("carol", p2p=True)
        device_dir = nodes.workdir / "device"
        provisional_identity(device_dir, None)
    _connect(nodes, alice, bob)
    api, public = api_attempts(alice)
    remote, opened = remote_attempts(nodes, alice, bob)
    p2p, control = p2p_attempts(carol)
    attempts = [
        *api,
        *file_attempts(alice.conductor.data_dir, device_dir, key_files=(nodes.key_files["alice"],)),
        *remote,
        *directory_attempts(),
        *p2p,
    ]
    groups: dict[str, dict[str, int]] = {}
    for attempt in attempts:
        group = groups.setdefault(attempt.group, {"tried": 0, "refused": 0})
        group["tried"] += 1
        group["refused"] += attempt.refused
        if not attempt.refused:
            result.fail(f"{attempt.group}: {attempt.name} got through ({attempt.answer})")
    if progress is not None:
        progress(
            "access: " + ", ".join(f"{g} {c['refused']}/{c['tried']}" for g, c in groups.items())
        )
    result.tried = len(attempts)
    result.survived = sum(a.refused for a in attempts)
    result.lost = result.tried - result.survived
    result.extra.update(
        {
            "groups": groups,
            "public_routes": public,
            "open_functions": opened,
            "noise_control": control,
        }
    )
    result.seconds = time.monotonic() - started
    return result
