"""Remote zome calls and remote signals between agents' nodes.

A remote call is a canonical CBOR map signed by the calling agent (context ``ioe/zome-call/v1``)::

    {"to": agent, "from": agent, "zome": str, "fn": str, "payload": value,
     "secret": bytes | null, "nonce": 32 bytes, "expires_us": int, "issued_us": int}

sent over ``/ioe/<dna>/call/1`` as ``{"call": bytes, "sig": bytes}``. The callee's node checks, in
order: the signature; that the calling agent is a member whose node is the peer that sent the
request (and is not blocked); the expiry (in the future, at most ``MAX_CALL_WINDOW_US`` ahead);
that it was issued after the node started (the nonces seen before a restart are gone with the
process's memory, so an older call could be a replay: it is refused as expired, and a caller
whose clock is behind the callee's by *s* seconds is refused for the first *s* seconds after the
callee restarts); that the nonce was not seen before (replays are refused); and finally the
capability grant on the callee's chain, at the moment of the call
(:func:`ioe.engine.capability.authorize_call`). The reply is JSON: ``{"ok": result}`` or
``{"error": {"kind": ..., "message": ...}}``.

Besides zome functions, a node can serve *services* under a zome name (``device``: describe, read,
write on a device node), gated by exactly the same grants.

A remote signal is ``{"from", "to", "zome", "value", "sent_us"}`` signed by the sender (context
``ioe/remote-signal/v1``) over ``/ioe/<dna>/signal/1``. It is accepted from any member that is
not blocked, and handed to the receiving node's local signal listeners.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ioe.crypto.keys import KeyPair
from ioe.drivers.model import DeviceOffline, PointError
from ioe.encoding import Value, decode, encode
from ioe.engine.capability import CAPABILITY_ZOME, authorize_call
from ioe.engine.cell import Cell
from ioe.engine.signals import MAX_SIGNAL_BYTES, RemoteSignal, Signal
from ioe.envelope import Envelope, is_fresh, is_live
from ioe.errors import (
    ChainError,
    EncodingError,
    IoEError,
    Unauthorized,
    ValidationError,
    ZomeCallError,
)
from ioe.hashing import AgentPubKey
from ioe.net.interface import MAX_PAYLOAD, NetworkError, PeerId, RequestRefused
from ioe.services.jsonvalue import json_ready

if TYPE_CHECKING:
    from ioe.dht.service import DnaNetwork
    from ioe.services.signals import SignalHub

log = logging.getLogger(__name__)

CALL_CONTEXT = b"ioe/zome-call/v1"
SIGNAL_CONTEXT = b"ioe/remote-signal/v1"
NONCE_BYTES = 32
CALL_LIFETIME_US = 60_000_000
MAX_CALL_WINDOW_US = 5 * 60_000_000
MAX_SIGNAL_AGE_US = 5 * 60_000_000
SIGNAL_OVERHEAD = 1024
MAX_NONCES = 100_000
MAX_NONCES_PER_CALLER = 2_000

CALL_ENVELOPE = Envelope(
    what="call",
    context=CALL_CONTEXT.decode(),
    body_field="call",
    max_bytes=MAX_PAYLOAD,
    error=RequestRefused,
)
SIGNAL_ENVELOPE = Envelope(
    what="signal",
    context=SIGNAL_CONTEXT.decode(),
    body_field="signal",
    max_bytes=MAX_SIGNAL_BYTES + SIGNAL_OVERHEAD,
    error=RequestRefused,
)

Service = Callable[[str, Value, AgentPubKey], Awaitable[Any]]
"""``service(function, payload, caller)`` for a zome name served by the node itself."""


class RemoteCallError(IoEError):
    """A remote call failed; ``kind`` says why (unauthorized, zome, validation, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RemoteUnauthorized(RemoteCallError, Unauthorized):
    """The callee holds no live capability grant allowing this call."""


@dataclass(frozen=True, slots=True)
class CallRequest:
    to: AgentPubKey
    caller: AgentPubKey
    zome: str
    fn: str
    payload: Value
    secret: bytes | None
    nonce: bytes
    expires_us: int
    issued_us: int

    def to_value(self) -> dict[str, Value]:
        return {
            "to": bytes(self.to),
            "from": bytes(self.caller),
            "zome": self.zome,
            "fn": self.fn,
            "payload": self.payload,
            "secret": self.secret,
            "nonce": self.nonce,
            "expires_us": self.expires_us,
            "issued_us": self.issued_us,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_bytes(cls, data: bytes) -> CallRequest:
        return cls.from_value(decode(data, max_size=MAX_PAYLOAD))

    @classmethod
    def from_value(cls, body: Value) -> CallRequest:
        """The call a decoded body describes; :class:`EncodingError` if it describes none."""
        if type(body) is not dict or set(body) != {
            "to",
            "from",
            "zome",
            "fn",
            "payload",
            "secret",
            "nonce",
            "expires_us",
            "issued_us",
        }:
            raise EncodingError(
                "a call is {to, from, zome, fn, payload, secret, nonce, expires_us, issued_us}"
            )
        to, caller, zome, fn = body["to"], body["from"], body["zome"], body["fn"]
        secret, nonce, expires = body["secret"], body["nonce"], body["expires_us"]
        if not (
            type(to) is bytes and len(to) == 32 and type(caller) is bytes and len(caller) == 32
        ):
            raise EncodingError("call agents are 32-byte keys")
        if type(zome) is not str or type(fn) is not str or len(zome) > 64 or len(fn) > 64:
            raise EncodingError("zome and fn are short strings")
        if secret is not None and (type(secret) is not bytes or len(secret) > 64):
            raise EncodingError("a capability secret is bytes")
        if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
            raise EncodingError(f"a call nonce is {NONCE_BYTES} bytes")
        issued = body["issued_us"]
        if type(expires) is not int or type(issued) is not int:
            raise EncodingError("expires_us and issued_us are integers")
        if not 0 <= expires - issued <= MAX_CALL_WINDOW_US:
            raise EncodingError("a call expires after it is issued, within the call window")
        return cls(
            AgentPubKey(to),
            AgentPubKey(caller),
            zome,
            fn,
            body["payload"],
            secret,
            nonce,
            expires,
            issued,
        )

    def signed(self, keys: KeyPair) -> bytes:
        if keys.agent != self.caller:
            raise ZomeCallError("a call is signed by its caller")
        return CALL_ENVELOPE.seal(keys, self.to_value())


def open_signed_call(data: bytes) -> CallRequest:
    """The call inside a signed envelope; :class:`RequestRefused` if it is not one, or the
    signature does not verify."""
    opened = CALL_ENVELOPE.open(data)
    try:
        return CallRequest.from_value(opened.body)
    except EncodingError as exc:
        raise RequestRefused(f"malformed call: {exc}") from None


class NonceCache:
    """Nonces of calls not yet expired: a call is accepted once. Each caller may have at most
    ``per_caller`` live calls, so one caller cannot crowd out the others."""

    def __init__(self, limit: int = MAX_NONCES, per_caller: int = MAX_NONCES_PER_CALLER) -> None:
        self._seen: dict[bytes, tuple[AgentPubKey, int]] = {}
        self._per_caller: dict[AgentPubKey, int] = {}
        self._limit = limit
        self._caller_limit = per_caller

    def _prune(self, now_us: int) -> None:
        live = {n: (c, e) for n, (c, e) in self._seen.items() if e > now_us}
        self._seen = live
        self._per_caller = {}
        for caller, _ in live.values():
            self._per_caller[caller] = self._per_caller.get(caller, 0) + 1

    def admit(self, caller: AgentPubKey, nonce: bytes, expires_us: int, now_us: int) -> bool:
        if nonce in self._seen:
            return False
        if len(self._seen) >= self._limit or self._per_caller.get(caller, 0) >= self._caller_limit:
            self._prune(now_us)
            if (
                len(self._seen) >= self._limit
                or self._per_caller.get(caller, 0) >= self._caller_limit
            ):
                return False  # under a flood of live calls: refuse rather than forget
        self._seen[nonce] = (caller, expires_us)
        self._per_caller[caller] = self._per_caller.get(caller, 0) + 1
        return True


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"kind": kind, "message": message}}).encode()


class RemoteCalls:
    """Answers and makes remote calls and signals for one node's DNAs."""

    def __init__(self, clock: Callable[[], int], hub: SignalHub) -> None:
        self.clock = clock
        self.hub = hub
        self.services: dict[str, Service] = {}
        self.controllers: Callable[[AgentPubKey], bool] | None = None
        """Who may command the ``device`` service without a grant: an enrolled device's
        certificate policy (``may_control``; e.g. its owner, also once recovered elsewhere)."""
        self._dnas: dict[bytes, DnaNetwork] = {}
        self._cells: dict[tuple[bytes, AgentPubKey], Cell] = {}
        self._nonces = NonceCache()
        self.started_us = clock()
        """Calls issued before this moment are refused: the nonces this node saw before it
        (re)started are gone with its memory, so such a call could be a replay."""
        self._tasks: set[asyncio.Task[None]] = set()

    def protocol_call(self, dht: DnaNetwork) -> str:
        return f"/ioe/{dht.dna.hash.to_text()}/call/1"

    def protocol_signal(self, dht: DnaNetwork) -> str:
        return f"/ioe/{dht.dna.hash.to_text()}/signal/1"

    def attach(self, dht: DnaNetwork, cells: list[Cell]) -> None:
        """Serve calls and signals for ``dht``'s DNA and route ``cells``' signals."""
        self._dnas[bytes(dht.dna.hash)] = dht

        async def on_call(peer: PeerId, payload: bytes) -> bytes:
            return await self._on_call(dht, peer, payload)

        async def on_signal(peer: PeerId, payload: bytes) -> bytes:
            return await self._on_signal(dht, peer, payload)

        dht.net.set_handler(self.protocol_call(dht), on_call)
        dht.net.set_handler(self.protocol_signal(dht), on_signal)
        for cell in cells:
            self._cells[(bytes(dht.dna.hash), cell.agent)] = cell
            cell.on_signal = self._local_signal
            cell.on_remote_signal = self._send_signal

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    # ------------------------------------------------------------------------------ calling

    async def call(
        self,
        cell: Cell,
        to: AgentPubKey,
        zome: str,
        fn: str,
        payload: Value = None,
        *,
        secret: bytes | None = None,
        timeout_s: float = 10.0,
    ) -> Any:
        """Call ``zome.fn`` on agent ``to``'s cell of ``cell``'s DNA, as ``cell``'s agent.
        Returns the JSON-ready result; raises :class:`RemoteCallError` (or its
        :class:`RemoteUnauthorized`) when the callee refuses, ``NetworkError`` when unreachable."""
        dht = self._dnas[bytes(cell.dna.hash)]
        info = dht.members().get(to)
        if info is None:
            raise RemoteCallError(
                "unknown", f"{to.to_text()} is not a known member of this network"
            )
        now = self.clock()
        request = CallRequest(
            to,
            cell.agent,
            zome,
            fn,
            payload,
            secret,
            secrets.token_bytes(NONCE_BYTES),
            now + CALL_LIFETIME_US,
            now,
        )
        try:
            envelope = request.signed(cell.keys)
        except EncodingError as exc:
            raise ZomeCallError(f"the payload cannot be sent: {exc}") from None
        if info.peer_id == dht.net.peer_id:
            reply = await self._answer(dht, PeerId(info.peer_id), open_signed_call(envelope))
        else:
            reply = await dht.net.request(
                PeerId(info.peer_id), self.protocol_call(dht), envelope, timeout=timeout_s
            )
        try:
            body = json.loads(reply)
        except ValueError:
            raise RemoteCallError("protocol", "the callee's reply is not JSON") from None
        if isinstance(body, dict) and "ok" in body:
            return body["ok"]
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            raise RemoteCallError("protocol", "the callee's reply has neither ok nor error")
        kind, message = str(error.get("kind")), str(error.get("message"))
        if kind == "unauthorized":
            raise RemoteUnauthorized(kind, f"refused by {to.to_text()}: {message}")
        raise RemoteCallError(kind, f"{zome}.{fn} on {to.to_text()} failed: {message}")

    # ---------------------------------------------------------------------------- answering

    async def _on_call(self, dht: DnaNetwork, peer: PeerId, payload: bytes) -> bytes:
        return await self._answer(dht, peer, open_signed_call(payload))

    async def _answer(self, dht: DnaNetwork, peer: PeerId, call: CallRequest) -> bytes:
        revoked = dht.revocations.member_refusal(call.caller)
        if revoked is not None:
            raise RequestRefused(f"the caller is refused: {revoked}")
        info = dht.members().get(call.caller)
        if info is None or PeerId(info.peer_id) != peer:
            raise RequestRefused("the caller is not a member of this network at this peer")
        if dht.is_blocked(call.caller):
            raise RequestRefused("the caller is blocked")
        now = self.clock()
        if not is_live(call.expires_us, now, MAX_CALL_WINDOW_US):
            return _error("expired", "the call has expired or expires too far ahead")
        if call.issued_us < self.started_us:
            return _error("expired", "the call was issued before this node started (a replay?)")
        cell = self._cells.get((bytes(dht.dna.hash), call.to))
        if cell is None:
            return _error("unknown", f"{call.to.to_text()} does not run on this node")
        if call.zome == CAPABILITY_ZOME:
            return _error("unauthorized", "grants are managed by their owner only, never remotely")
        try:
            # The grant first (it has no side effects), so a caller without one cannot fill the
            # nonce cache; then the nonce, so an allowed call runs once.
            authorize = call.caller != cell.agent and not (
                call.zome == "device"
                and self.controllers is not None
                and self.controllers(call.caller)
            )
            if authorize:
                authorize_call(cell, call.caller, call.zome, call.fn, call.secret)
            if not self._nonces.admit(call.caller, call.nonce, call.expires_us, now):
                return _error("replay", "this call was already made, or too many are in flight")
            service = self.services.get(call.zome)
            if service is not None:
                result = await service(call.fn, call.payload, call.caller)
            else:
                result = cell.call(
                    call.zome,
                    call.fn,
                    call.payload,
                    now_us=self.clock(),
                    provenance=call.caller,
                    cap_secret=call.secret,
                )
                dht.notify_commit()
        except Unauthorized as exc:
            log.info("refused %s.%s from %s: %s", call.zome, call.fn, call.caller.short(), exc)
            return _error("unauthorized", str(exc))
        except PointError as exc:
            return _error("point", str(exc))
        except DeviceOffline as exc:
            return _error("offline", str(exc))
        except ValidationError as exc:
            return _error("validation", str(exc))
        except ChainError as exc:
            return _error("chain", str(exc))
        except (ZomeCallError, EncodingError, ValueError) as exc:
            return _error("zome", str(exc))
        except IoEError as exc:
            return _error("failed", str(exc))
        try:
            return json.dumps({"ok": json_ready(result)}).encode()
        except (TypeError, ValueError) as exc:
            return _error("zome", f"the result cannot be sent: {exc}")

    # ------------------------------------------------------------------------------ signals

    def _local_signal(self, cell: Cell, signal: Signal) -> None:
        self.hub.publish(
            {
                "type": "signal",
                "dna": cell.dna.hash.to_text(),
                "agent": signal.agent.to_text(),
                "zome": signal.zome,
                "value": json_ready(signal.value),
            }
        )

    def _send_signal(self, cell: Cell, signal: RemoteSignal) -> None:
        dht = self._dnas.get(bytes(cell.dna.hash))
        if dht is None:
            return
        for target in signal.to:
            body = {
                "to": bytes(target),
                "zome": signal.zome,
                "value": signal.value,
                "sent_us": self.clock(),
            }
            envelope = SIGNAL_ENVELOPE.seal(cell.keys, body)  # from: the sender, cell's agent
            task = asyncio.get_running_loop().create_task(self._deliver(dht, target, envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, dht: DnaNetwork, target: AgentPubKey, envelope: bytes) -> None:
        info = dht.members().get(target)
        if info is None:
            log.info("remote signal to %s dropped: not a known member", target.short())
            return
        try:
            if info.peer_id == dht.net.peer_id:
                await self._on_signal(dht, PeerId(info.peer_id), envelope)
            else:
                await dht.net.request(
                    PeerId(info.peer_id), self.protocol_signal(dht), envelope, timeout=10.0
                )
        except (NetworkError, RequestRefused) as exc:
            log.info("remote signal to %s not delivered: %s", target.short(), exc)

    async def _on_signal(self, dht: DnaNetwork, peer: PeerId, payload: bytes) -> bytes:
        opened = SIGNAL_ENVELOPE.open(payload)
        message, sender_key = opened.body, opened.signer
        if set(message) != {"from", "to", "zome", "value", "sent_us"}:
            raise RequestRefused("malformed signal: a signal is {from, to, zome, value, sent_us}")
        to, zome = message["to"], message["zome"]
        if type(to) is not bytes or type(zome) is not str or type(message["sent_us"]) is not int:
            raise RequestRefused("malformed signal: bad signal fields")
        info = dht.members().get(sender_key)
        if info is None or PeerId(info.peer_id) != peer:
            raise RequestRefused("the sender is not a member of this network at this peer")
        if dht.is_blocked(sender_key):
            raise RequestRefused("the sender is blocked")
        if not is_fresh(message["sent_us"], self.clock(), MAX_SIGNAL_AGE_US):
            raise RequestRefused("the signal is too old or from the future")
        recipient = AgentPubKey(to) if len(to) == 32 else None
        if recipient is None or (bytes(dht.dna.hash), recipient) not in self._cells:
            raise RequestRefused("no such agent on this node")
        self.hub.publish(
            {
                "type": "remote_signal",
                "dna": dht.dna.hash.to_text(),
                "from": sender_key.to_text(),
                "to": recipient.to_text(),
                "zome": zome,
                "value": json_ready(message["value"]),
            }
        )
        return b""
