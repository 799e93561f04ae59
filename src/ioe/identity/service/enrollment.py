"""The enrollment protocol on a node: owners list and enroll devices; devices ask to be enrolled.

Every node runs one *role* on ``/ioe/enroll/1`` (messages:
:mod:`ioe.identity.service.enrollment_messages`):

* :class:`OwnerEnrollment` (nodes of an owner account, ``ioe node run``): lists signed enrollment
  requests as pending (and emits ``{"type": "enrollment_pending", ...}`` on the signal hub), and
  :meth:`OwnerEnrollment.enroll` pairs with a device by its code, then provisions it;
* :class:`DeviceEnrollment` (``ioe device plug-in``, unenrolled): sends its request to every
  connected peer every :data:`REQUEST_INTERVAL_S` until enrolled, answers challenges, checks the
  owner's proof of the pairing code through the attempt limiter (persisted, so a restart does not
  reset a lockout), and stores the provisioned device seed and certificate;
* :class:`EnrolledDeviceRole` (an enrolled device): forwards requests of other devices to its
  owner's node (the proxy look-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ioe.conductor import NETWORK_SETTING, owner_keyset
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.dnas import CORE_DNA_NAME, core_network, network_spec
from ioe.encoding import decode, encode
from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey
from ioe.identity.authority import Keyset
from ioe.identity.certificate import (
    CERTIFICATE_CONTEXT,
    ENROLLED_DEFAULT_POLICY,
    DeviceVisibility,
    EnrollmentCertificate,
    Policy,
    issue,
)
from ioe.identity.device_account import DeviceAccount
from ioe.identity.pairing import (
    LOCKOUT_US,
    MAX_FAILURES,
    PairingCodeError,
    PairingState,
    Verdict,
    judge,
    normalise_code,
)
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import SigningError, sign_with_keyset
from ioe.net.interface import NetworkError, PeerId
from ioe.vocabulary import DeviceType, Enrollment, NodeType
from ioe.zones import zone_problem

if TYPE_CHECKING:
    from ioe.identity.service.host import IdentityHost

log = logging.getLogger(__name__)

REQUEST_INTERVAL_S = 2.0
MAX_PENDING = 256
PENDING_FORGET_S = 30.0
"""A device that has not asked for this long (it asks every :data:`REQUEST_INTERVAL_S`) is no
longer pending: it was stopped, or enrolled by another owner."""
MAX_CHALLENGES = 64
DEFAULT_ZONE = "unassigned"
DEVICES_SETTING = "enrolled_devices"
NEXT_INDEX_SETTING = "next_device_index"
PAIRING_SETTING = "pairing_state"
OWNER_PEER_SETTING = "owner_peer"


class EnrollmentRole(Protocol):
    """What a node runs on ``/ioe/enroll/1``; ``node_type`` and ``enrollment`` are advertised."""

    node_type: NodeType
    enrollment: Enrollment

    async def start(self, node: IdentityHost) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PendingDevice:
    device: AgentPubKey
    name: str
    device_type: str
    zone: str | None
    peer: PeerId
    addrs: tuple[str, ...]
    seen_us: int

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device.to_text(),
            "name": self.name,
            "type": self.device_type,
            "zone": self.zone,
        }


def check_request(message: m.Message, now_us: int) -> PendingDevice:
    """A verified enrollment request as a pending device (:class:`EnrollmentError` if bad)."""
    m.check_fresh(message, now_us)
    name = m.field(message, "name", str)
    kind = m.field(message, "type", str)
    zone = message.body.get("zone")
    addrs = m.field(message, "addrs", list)
    if not 0 < len(name) <= 256 or not name.isprintable():
        raise m.EnrollmentError("the device name is empty, too long or has control characters")
    if kind not in {t.value for t in DeviceType}:
        raise m.EnrollmentError(f"unknown device type {kind[:40]!r}")
    if zone is not None and (not isinstance(zone, str) or zone_problem(zone)):
        raise m.EnrollmentError("the requested zone is not a zone path")
    if len(addrs) > 16 or not all(isinstance(a, str) and len(a) < 512 for a in addrs):
        raise m.EnrollmentError("bad addresses in the enrollment request")
    m.nonce_field(message, "nonce")
    peer = PeerId(m.field(message, "peer", str))
    return PendingDevice(message.signer, name, kind, zone, peer, tuple(addrs), now_us)


def owner_certificate(  # noqa: PLR0917 - the certificate's fields
    account: OwnerAccount,
    pending: PendingDevice,
    agent: AgentPubKey,
    zone: str,
    visibility: DeviceVisibility,
    now_us: int,
    index: int,
    keyset: Keyset | None = None,
    policy: Policy = ENROLLED_DEFAULT_POLICY,
) -> EnrollmentCertificate:
    """The certificate a single owner issues for agent ``agent`` of its device ``index``: the
    keyset is the owner's authorization key with its revocation key as revoker, the policy
    the enrolled default unless ``policy`` says otherwise (no trading). Given a
    ``keyset`` (the node's, :func:`ioe.identity.service.keyset.node_keyset`), it is returned
    unsigned:
    :func:`ioe.identity.service.keyset_signing.sign_with_keyset` collects the keyset's
    signatures."""
    cert = issue(
        keyset=keyset or owner_keyset(account),
        owner_agent=account.agent_key(),
        device=agent,
        device_type=DeviceType(pending.device_type),
        name=pending.name,
        zone=zone,
        networks=(CORE_DNA_NAME,),
        issued_us=now_us,
        serial=index,
        visibility=visibility,
        policy=policy,
    )
    return cert if keyset is not None else cert.signed_by(account.authorization_key())


class OwnerEnrollment:
    """The owner's side: pending devices, and enrolling one."""

    node_type = NodeType.OWNER
    enrollment = Enrollment.ENROLLED

    def __init__(self) -> None:
        self.pending: dict[AgentPubKey, PendingDevice] = {}
        self._node: IdentityHost | None = None
        self._lock = asyncio.Lock()
        self._alerted: dict[AgentPubKey, bool] = {}  # last device_presence sent per device

    @property
    def node(self) -> IdentityHost:
        if self._node is None:
            raise IoEError("the enrollment service is not running")
        return self._node

    async def start(self, node: IdentityHost) -> None:
        self._node = node
        node.network.set_handler(m.PROTOCOL, self._handle)
        self._watch_devices()

    async def close(self) -> None:
        self._node = None

    def _now(self) -> int:
        return self.node.conductor.clock()

    # -------------------------------------------------------------- the owner's device alerts

    def device_agents(self) -> dict[AgentPubKey, str]:
        """This owner's enrolled devices: agent → name."""
        found = {}
        for item in self.devices():
            with contextlib.suppress(EncodingError, ValueError, KeyError, TypeError):
                found[AgentPubKey.from_text(item["agent"])] = str(item.get("name", ""))
        return found

    def _watch_devices(self) -> None:
        """Have every DNA network watch this owner's devices' nodes (liveness), even those
        far from the owner's agents, so that their presence is always known here."""
        agents = set(self.device_agents())
        for dht in self.node.dnas.values():
            dht.watch(agents)

    def _present(self, agent: AgentPubKey) -> bool:
        return any(dht.present(agent) for dht in self.node.dnas.values())

    def device_presence(self, agent: AgentPubKey) -> None:
        """A member joined or left: if it is one of this owner's devices and its presence
        changed, emit ``{"type": "device_presence", "device", "name", "present"}``."""
        if self._node is None:  # not started yet, or closing
            return
        name = self.device_agents().get(agent)
        if name is None:
            return
        present = self._present(agent)
        if self._alerted.get(agent) == present:
            return
        self._alerted[agent] = present
        self.node.signals.publish(
            {"type": "device_presence", "device": agent.to_text(), "name": name, "present": present}
        )

    def device_status(self) -> list[dict[str, Any]]:
        """The enrolled devices with ``present`` (as this node sees it) and ``last_seen_us``
        (when this node last heard from the device's node, or None)."""
        out = []
        for item in self.devices():
            try:
                agent = AgentPubKey.from_text(item["agent"])
            except (EncodingError, ValueError, KeyError, TypeError):
                out.append({**item, "present": False, "last_seen_us": None})
                continue
            seen = [dht.last_seen_us(agent) for dht in self.node.dnas.values()]
            known = [s for s in seen if s is not None]
            out.append(
                {**item, "present": self._present(agent), "last_seen_us": max(known, default=None)}
            )
        return out

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            message = m.open_message(data, expect="request")
            pending = check_request(message, self._now())
        except m.EnrollmentError as exc:
            return m.reply_error(str(exc))
        if any(d.get("provisional") == pending.device.to_text() for d in self.devices()):
            return m.reply_ok("enrolled")
        if pending.peer != peer and pending.addrs:
            self.node.network.add_peer_addrs(pending.peer, list(pending.addrs))
        self._forget_quiet()
        new = pending.device not in self.pending
        if new and len(self.pending) >= MAX_PENDING:
            return m.reply_error("too many devices are waiting for enrollment here")
        self.pending[pending.device] = pending
        if new:
            self.node.signals.publish(
                {
                    **pending.to_json(),
                    "type": "enrollment_pending",
                    "device_type": pending.device_type,
                    "via": peer,
                }
            )
        return m.reply_ok("pending")

    def pending_list(self) -> list[dict[str, Any]]:
        self._forget_quiet()
        return [p.to_json() for p in sorted(self.pending.values(), key=lambda p: p.seen_us)]

    def _forget_quiet(self) -> None:
        """Drop the devices that stopped asking (see :data:`PENDING_FORGET_S`)."""
        oldest_us = self._now() - int(PENDING_FORGET_S * 1_000_000)
        for device, pending in list(self.pending.items()):
            if pending.seen_us < oldest_us:
                del self.pending[device]

    def devices(self) -> list[dict[str, Any]]:
        stored = self.node.conductor.db.get_setting(DEVICES_SETTING) or []
        return [dict(item) for item in stored]

    def _account(self) -> OwnerAccount:
        account = self.node.conductor.account
        if not isinstance(account, OwnerAccount):
            raise m.EnrollmentError("only an owner's node can enroll devices")
        return account

    async def enroll(
        self,
        device_text: str,
        code: str,
        *,
        zone: str | None = None,
        private: bool = False,
        trade: bool = True,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Have the certificate signed by the keyset (waiting up to ``timeout_s`` for officers'
        approvals when it needs several), pair with the pending device by ``code``, then
        provision it. ``trade=False`` enrolls it with a policy that never lets it pay or be
        paid (every node's validation refuses its currency records)."""
        try:
            device = AgentPubKey.from_text(device_text)
        except (EncodingError, ValueError) as exc:
            raise m.EnrollmentError(f"not a device key: {exc}") from None
        self._forget_quiet()
        pending = self.pending.get(device)
        if pending is None:
            raise m.EnrollmentError(f"no pending device {device_text} (see `ioe owner pending`)")
        try:
            code = normalise_code(code)
        except PairingCodeError as exc:
            raise m.EnrollmentError(f"not a pairing code: {exc}") from None
        zone = zone or pending.zone or DEFAULT_ZONE
        if zone_problem(zone):
            raise m.EnrollmentError(f"bad zone: {zone_problem(zone)}")
        account = self._account()
        async with self._lock:
            index = self._next_index()
            seed = account.device_seed(index)
            agent = device_agent_key(seed, 0).agent
            visibility = DeviceVisibility.PRIVATE if private else DeviceVisibility.PUBLIC
            keyset = node_keyset(self.node.conductor)
            policy = replace(ENROLLED_DEFAULT_POLICY, may_trade=trade)
            cert = owner_certificate(
                account, pending, agent, zone, visibility, self._now(), index, keyset, policy
            )
            # The keyset's signatures first (M officers may take a while to approve): pairing
            # spends the device's code, so it comes only once the certificate is signed.
            try:
                signatures = await sign_with_keyset(
                    self.node,
                    CERTIFICATE_CONTEXT,
                    cert.message(),
                    keyset=keyset,
                    what=f"enroll {pending.name} ({pending.device_type}) in {zone}",
                    timeout_s=timeout_s,
                )
            except SigningError as exc:
                raise m.EnrollmentError(f"the certificate is not signed: {exc}") from None
            cert = replace(cert, signatures=signatures)
            owner_nonce = await self._pair(pending, code)
            payload = encode(
                {
                    "seed": seed,
                    "index": index,
                    "certificate": cert.to_bytes(),
                    "network": network_spec(self.node.conductor.core_dna),
                }
            )
            body = {
                "device": bytes(device),
                "owner_nonce": owner_nonce,
                "sealed": m.seal_to(device, payload),
                "time_us": self._now(),
            }
            keys = account.agent_key()
            done_raw = await self._send(pending.peer, m.sign_message("provision", body, keys))
            if type(done_raw) is not bytes:
                raise m.EnrollmentError("the device did not confirm its enrollment")
            done = m.open_message(done_raw, expect="enrolled")
            if done.signer != agent:
                raise m.EnrollmentError("the device answered with another key than provisioned")
            record = {
                "agent": agent.to_text(),
                "provisional": device.to_text(),
                "index": index,
                "agent_index": 0,  # moved on by a key rotation (ioe.identity.service.rotation)
                "name": pending.name,
                "type": pending.device_type,
                "zone": zone,
                "visibility": visibility.value,
                "enrolled_us": cert.issued_us,
            }
            db = self.node.conductor.db
            db.put_setting(DEVICES_SETTING, [*self.devices(), record])
            self.pending.pop(device, None)
            # The device now restarts under its enrolled key, a new peer id: its provisional
            # one is gone for good, and is never dialled again.
            if pending.peer != self.node.network.peer_id:
                self.node.network.forget_peer(pending.peer)
            self._watch_devices()
            self.node.signals.publish(
                {**record, "type": "device_enrolled", "device_type": pending.device_type}
            )
            return {"agent": agent.to_text(), "index": index, "name": pending.name}

    async def _pair(self, pending: PendingDevice, code: str) -> bytes:
        """Prove the code to the device and check its proof back; returns the owner nonce."""
        keys, device, now = self._account().agent_key(), pending.device, self._now()
        reply = await self._send(
            pending.peer,
            m.sign_message("challenge", {"device": bytes(device), "time_us": now}, keys),
        )
        challenge = reply.get("challenge") if isinstance(reply, dict) else None
        if type(challenge) is not bytes or len(challenge) != m.NONCE_BYTES:
            raise m.EnrollmentError("the device sent no valid challenge")
        owner_nonce = secrets.token_bytes(m.NONCE_BYTES)

        def proof(role: str) -> bytes:
            return m.pairing_proof(
                code,
                role,
                device=device,
                owner=keys.agent,
                challenge=challenge,
                owner_nonce=owner_nonce,
            )

        body = {
            "device": bytes(device),
            "challenge": challenge,
            "owner_nonce": owner_nonce,
            "time_us": now,
            "proof": proof("owner"),
        }
        paired_raw = await self._send(pending.peer, m.sign_message("pair", body, keys))
        if type(paired_raw) is not bytes:
            raise m.EnrollmentError("the device did not confirm the pairing")
        paired = m.open_message(paired_raw, expect="paired")
        if paired.signer != device or not m.proof_matches(
            proof("device"), paired.body.get("proof")
        ):
            raise m.EnrollmentError("the device could not prove it holds the pairing code")
        return owner_nonce

    def _next_index(self) -> int:
        """A fresh device index (never reused, even when a provisioning fails halfway)."""
        db = self.node.conductor.db
        stored = db.get_setting(NEXT_INDEX_SETTING)
        index = stored if isinstance(stored, int) and stored >= 1 else 1
        db.put_setting(NEXT_INDEX_SETTING, index + 1)
        return index

    async def _send(self, peer: PeerId, data: bytes) -> Any:
        try:
            raw = await self.node.network.request(peer, m.PROTOCOL, data, timeout=10.0)
        except NetworkError as exc:
            raise m.EnrollmentError(f"the device did not answer: {exc}") from None
        return m.read_reply(raw)


PROVISIONING_FIELDS = (
    {"seed", "index", "certificate"},
    {"seed", "index", "certificate", "network"},  # the owner's network (ioe.dnas.network_spec)
)


@dataclass(frozen=True, slots=True)
class PlugIn:
    """What an unenrolled device says about itself, and its pairing code."""

    name: str
    device_type: str
    zone: str | None
    code: str


class DeviceEnrollment:
    """An unenrolled device: asks to be enrolled and answers its owner."""

    enrollment = Enrollment.UNENROLLED

    def __init__(self, plug_in: PlugIn, persist: Callable[[DeviceAccount], None]) -> None:
        self.plug_in = plug_in
        self.node_type = NodeType(plug_in.device_type)
        self.persist = persist
        self.enrolled = asyncio.Event()
        self.account: DeviceAccount | None = None
        self._challenges: dict[bytes, int] = {}
        self._paired: tuple[AgentPubKey, bytes, PeerId] | None = None
        self._node: IdentityHost | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def node(self) -> IdentityHost:
        if self._node is None:
            raise IoEError("the enrollment service is not running")
        return self._node

    @property
    def keys(self) -> Any:
        return self.node.conductor.owner_cell.keys

    async def start(self, node: IdentityHost) -> None:
        self._node = node
        node.network.set_handler(m.PROTOCOL, self._handle)
        self._task = asyncio.create_task(self._ask(), name="enrollment-request")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._node = None

    def request_message(self) -> bytes:
        node = self.node
        body = {
            "peer": node.network.peer_id,
            "addrs": list(node.network.listen_addrs()),
            "name": self.plug_in.name,
            "type": self.plug_in.device_type,
            "zone": self.plug_in.zone,
            "nonce": os.urandom(m.NONCE_BYTES),
            "time_us": node.conductor.clock(),
        }
        return m.sign_message("request", body, self.keys)

    async def _ask(self) -> None:
        while not self.enrolled.is_set():
            for peer in self.node.network.connected_peers():
                with contextlib.suppress(NetworkError, m.EnrollmentError):
                    m.read_reply(
                        await self.node.network.request(
                            peer, m.PROTOCOL, self.request_message(), timeout=5.0
                        )
                    )
            await asyncio.sleep(REQUEST_INTERVAL_S)

    # --------------------------------------------------------------------------- pairing state

    def pairing_state(self) -> PairingState:
        stored = self.node.conductor.db.get_setting(PAIRING_SETTING)
        if not isinstance(stored, dict):
            return PairingState()
        return PairingState(
            int(stored.get("failures", 0)),
            int(stored.get("locked_until_us", 0)),
            bool(stored.get("spent", False)),
        )

    def _save_pairing(self, state: PairingState) -> None:
        value = {
            "failures": state.failures,
            "locked_until_us": state.locked_until_us,
            "spent": state.spent,
        }
        self.node.conductor.db.put_setting(PAIRING_SETTING, value)

    # --------------------------------------------------------------------------------- handling

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            message = m.open_message(data, expect=("challenge", "pair", "provision"))
            if m.agent_field(message, "device") != self.keys.agent:
                raise m.EnrollmentError("this message is for another device")
            m.check_fresh(message, self.node.conductor.clock())
            if message.kind == "challenge":
                return m.reply_ok({"challenge": self._challenge()})
            if message.kind == "pair":
                return m.reply_ok(self._pair(message, peer))
            return m.reply_ok(self._provision(message))
        except m.EnrollmentError as exc:
            return m.reply_error(str(exc))

    def _challenge(self) -> bytes:
        now = self.node.conductor.clock()
        self._challenges = {
            c: t for c, t in self._challenges.items() if now - t < m.CHALLENGE_LIFETIME_US
        }
        if len(self._challenges) >= MAX_CHALLENGES:
            raise m.EnrollmentError("too many pairings in progress; try again in a minute")
        challenge = os.urandom(m.NONCE_BYTES)
        self._challenges[challenge] = now
        return challenge

    def _pair(self, message: m.Message, peer: PeerId) -> bytes:
        now = self.node.conductor.clock()
        challenge = m.nonce_field(message, "challenge")
        owner_nonce = m.nonce_field(message, "owner_nonce")
        issued = self._challenges.pop(challenge, None)
        if issued is None or now - issued >= m.CHALLENGE_LIFETIME_US:
            raise m.EnrollmentError(
                "unknown, expired or already used challenge (replayed pairing?)"
            )
        owner = message.signer
        expected = m.pairing_proof(
            self.plug_in.code,
            "owner",
            device=self.keys.agent,
            owner=owner,
            challenge=challenge,
            owner_nonce=owner_nonce,
        )
        matched = m.proof_matches(expected, message.body.get("proof"))
        verdict, state = judge(self.pairing_state(), matched, now)
        self._save_pairing(state)
        if verdict is Verdict.SPENT:
            raise m.EnrollmentError("this device is already paired (its code works once)")
        if verdict is Verdict.LOCKED:
            minutes = max(1, (state.locked_until_us - now) // 60_000_000)
            raise m.EnrollmentError(
                f"too many wrong pairing codes: locked for about {minutes} more minute(s)"
            )
        if verdict is Verdict.WRONG:
            if state.locked_until_us > now:
                minutes = LOCKOUT_US // 60_000_000
                raise m.EnrollmentError(
                    f"wrong pairing code; {MAX_FAILURES} wrong codes in a row: "
                    f"locked for {minutes} minutes"
                )
            raise m.EnrollmentError(
                f"wrong pairing code ({MAX_FAILURES - state.failures} attempt(s) left)"
            )
        self._paired = (owner, owner_nonce, peer)
        proof = m.pairing_proof(
            self.plug_in.code,
            "device",
            device=self.keys.agent,
            owner=owner,
            challenge=challenge,
            owner_nonce=owner_nonce,
        )
        return m.sign_message(
            "paired", {"owner": bytes(owner), "owner_nonce": owner_nonce, "proof": proof}, self.keys
        )

    def _provision(self, message: m.Message) -> bytes:
        if self._paired is None:
            raise m.EnrollmentError("no owner has paired with this device")
        owner, owner_nonce, peer = self._paired
        if message.signer != owner or m.nonce_field(message, "owner_nonce") != owner_nonce:
            raise m.EnrollmentError("only the owner that paired may provision this device")
        payload = m.unseal(self.keys, m.field(message, "sealed", bytes))
        try:
            value = decode(payload, max_size=m.MAX_MESSAGE_BYTES)
            if type(value) is not dict or set(value) not in PROVISIONING_FIELDS:
                raise EncodingError("not a provisioning")
            cert = EnrollmentCertificate.from_bytes(value["certificate"])
            account = DeviceAccount.of(value["seed"], value["index"], cert)
            network = value.get("network")
            core = core_network(network)  # the owner's network: the device joins that one
        except (EncodingError, IoEError, TypeError, ValueError) as exc:
            raise m.EnrollmentError(f"bad provisioning: {exc}") from None
        if cert.owner != owner:
            raise m.EnrollmentError("the certificate names another owner than the one that paired")
        if network is not None:  # before the keystore: the enrolled device opens on this network
            self.node.conductor.db.put_setting(NETWORK_SETTING, network_spec(core))
        self.persist(account)
        self.node.conductor.db.put_setting(OWNER_PEER_SETTING, str(peer))
        self.account = account
        self._paired = None
        self.enrolled.set()
        return m.sign_message(
            "enrolled", {"device": bytes(account.agent_key().agent)}, account.agent_key()
        )


class EnrolledDeviceRole:
    """An enrolled device: forwards other devices' requests to its owner's node."""

    enrollment = Enrollment.ENROLLED

    def __init__(self, node_type: NodeType) -> None:
        self.node_type = node_type
        self._node: IdentityHost | None = None

    async def start(self, node: IdentityHost) -> None:
        self._node = node
        node.network.set_handler(m.PROTOCOL, self._handle)

    async def close(self) -> None:
        self._node = None

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        node = self._node
        owner_peer = node.conductor.db.get_setting(OWNER_PEER_SETTING) if node else None
        if node is None or not isinstance(owner_peer, str):
            return m.reply_error("this device does not know its owner's node")
        try:
            message = m.open_message(data, expect="request")
            check_request(message, node.conductor.clock())
            return await node.network.request(PeerId(owner_peer), m.PROTOCOL, data, timeout=5.0)
        except m.EnrollmentError as exc:
            return m.reply_error(str(exc))
        except NetworkError as exc:
            return m.reply_error(f"the owner's node did not answer: {exc}")
