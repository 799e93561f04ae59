"""Ownership transfer on the network: a device moves from one owner to another, re-keyed.

Three nodes take part, over ``/ioe/transfer/1`` (messages:
:mod:`ioe.identity.service.transfer_messages`); each runs one :class:`TransferService` (the node
starts it):

1. **Offer** (old owner's node, :meth:`TransferService.offer`): the device must be one this owner
   enrolled; its current certificate is read from the start of its chain (the membrane proof it
   joined with). The offer is recorded (setting :data:`OFFERS_MADE_SETTING`), then sent, signed by
   the old owner agent, to the new owner agent's node, found through the core network (every
   owner agent is a member). The new owner's node checks it (signed by the owner agent the
   certificate names, addressed to itself, a valid certificate) and lists it (setting
   :data:`OFFERS_SETTING`, ``GET /v1/owner/transfers``, signal ``transfer_pending``).
2. **Accept** (new owner's node, :meth:`TransferService.accept`): allocates its next device
   index (shared with enrollment, never reused), derives that device seed, issues the new
   certificate (same type and name; agent 0 of the seed; this owner's keyset), signs the
   :class:`~ioe.identity.transfer.TransferCertificate` (``old_last_seq``/``old_head``: the
   device's latest action found on the network) with its keyset, and asks the old owner's node
   to add the old side. That node signs only what it offered (that device, to that owner) and
   only when the proposed cut-off is the device's latest action it can find (head included), and
   marks the device ``transferred``. The new owner's node then provisions the device: a signed
   message to the device's node (found by its agent info) carrying a sealed box, to the device's
   current agent key, of ``{seed, index, certificate, transfer, network}``.
3. **Adopt** (the device's node): checks everything (the transfer stands between its current
   certificate and the new one, :func:`~ioe.identity.transfer.transfer_problem`, so its current
   owner's keyset signed it; the new certificate names agent 0 of the seed; the sender is the new
   owner agent), and only then replaces its keystore (the ``persist`` callback the runner gives,
   before answering: crash-safe as enrollment is), answers ``adopted`` signed by its new key, and
   sets :attr:`TransferService.adopted`: the runner restarts the node in-process as the new agent.
4. **Publish** (new owner's node): commits the ``key_transfer`` entry (``ownership`` zome) linked
   from the old key, and records the device in its ``enrolled_devices``. Every node that learns the
   entry refuses the old key's actions after the cut-off (:mod:`ioe.dht.revocations`), and key
   history links old → new (:func:`key_history_of`).

**Decision: the new owner publishes.** It is the one that holds the fully signed transfer *and*
the device's confirmation; publishing before the device adopted would cut off a device still
running its old key. (Validation also accepts the old owner as author: either side may finish a
transfer both signed.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ioe.conductor import KEYSTORE_FILE, NETWORK_SETTING
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keystore import Unlock, write_keystore
from ioe.dnas import core_network, network_spec
from ioe.encoding import decode, encode
from ioe.engine.records import SignedAction
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import (
    CERTIFICATE_CONTEXT,
    DeviceVisibility,
    EnrollmentCertificate,
    certificate_problem,
    enrollment_record,
    issue,
)
from ioe.identity.device_account import DeviceAccount
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service import transfer_messages as t
from ioe.identity.service.enrollment import DEVICES_SETTING, NEXT_INDEX_SETTING
from ioe.identity.service.host import IDENTITY_HOST, ProtocolService
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import sign_with_keyset
from ioe.identity.service.transfer_messages import TransferError
from ioe.identity.transfer import TRANSFER_CONTEXT, TransferCertificate, transfer_problem
from ioe.net.interface import NetworkError, PeerId
from ioe.zomes.ownership.entries import REVOCATION_LINK, TRANSFER_LINK
from ioe.zomes.ownership.validation import OWNERSHIP_ZOME
from ioe.zones import zone_problem

if TYPE_CHECKING:
    from ioe.dht.service import DnaNetwork
    from ioe.identity.service.host import IdentityHost

log = logging.getLogger(__name__)

OFFERS_MADE_SETTING = "transfer_offers_made"
"""Old owner: device agent text → ``{"to", "certificate", "offered_us"}``."""
OFFERS_SETTING = "transfer_offers"
"""New owner: device agent text → the offer received (see :meth:`TransferService.pending_list`)."""
MAX_OFFERS = 64
REQUEST_TIMEOUT_S = 15.0
MAX_HISTORY = 16
SETTLE_S = 0.5
"""How long a re-keyed device keeps its old node up, so that its ``adopted`` answer is sent."""
PROVISION_FIELDS = (
    {"seed", "index", "certificate", "transfer"},
    {"seed", "index", "certificate", "transfer", "network"},
)


def transfer_json(transfer: TransferCertificate) -> dict[str, Any]:
    return {
        "id": transfer.id.to_text(),
        "old_device": transfer.old_device.to_text(),
        "new_device": transfer.new_device.to_text(),
        "old_certificate": transfer.old_certificate.to_text(),
        "new_certificate": transfer.new_certificate.to_text(),
        "old_last_seq": transfer.old_last_seq,
        "old_head": transfer.old_head.to_text() if transfer.old_head is not None else None,
        "issued_us": transfer.issued_us,
    }


def _agent(text: str, what: str) -> AgentPubKey:
    try:
        return AgentPubKey.from_text(text)
    except (EncodingError, ValueError) as exc:
        raise TransferError(f"not an {what} key: {exc}") from None


def _certificate_of(activity: list[SignedAction], agent: AgentPubKey) -> tuple[SignedAction, bytes]:
    """The ``AgentValidationPkg`` of ``agent``'s chain and the membrane proof it carries."""
    found = enrollment_record(activity, agent)
    if found is None:
        raise TransferError(
            f"the chain of {agent.to_text()} was not found on the network (is the device running?)"
        )
    return found


def _latest(activity: list[SignedAction], agent: AgentPubKey) -> SignedAction:
    own = [s for s in activity if s.action.author == agent]
    return max(own, key=lambda s: s.action.seq)


def keystore_writer(data_dir: Path, unlock: Unlock) -> Callable[[DeviceAccount], None]:
    """The ``persist`` of an enrolled device's runner: its keystore now holds the new account
    (the file is replaced whole: a crash leaves the old account or the new one)."""

    def persist(account: DeviceAccount) -> None:
        write_keystore(data_dir / KEYSTORE_FILE, account.to_secrets(), unlock, overwrite=True)

    return persist


async def restart_on_adoption(node: IdentityHost) -> None:
    """Stop ``node`` once its device adopted a new owner's account (after a moment, so that its
    answer is sent): its runner then opens the data directory again, as the new agent."""
    await node.transfers.adopted.wait()
    await asyncio.sleep(SETTLE_S)
    node.stopping.set()


def next_device_index(node: IdentityHost) -> int:
    """A fresh device index of this owner (the setting enrollment uses: never reused)."""
    db = node.conductor.db
    stored = db.get_setting(NEXT_INDEX_SETTING)
    index = stored if isinstance(stored, int) and stored >= 1 else 1
    db.put_setting(NEXT_INDEX_SETTING, index + 1)
    return index


class TransferService(ProtocolService):
    """Every node's side of ``/ioe/transfer/1``: an owner's offers and acceptances, and a
    device's adoption of its new owner's account."""

    PROTOCOL = t.PROTOCOL
    NAME = "transfer"

    def __init__(self) -> None:
        super().__init__()
        self.persist: Callable[[DeviceAccount], None] | None = None
        """Set by the runner of an enrolled device: writes the new account to its keystore."""
        self.adopted = asyncio.Event()
        """Set once the device stored its new account: the runner restarts the node."""
        self.account: DeviceAccount | None = None

    def _owner(self) -> OwnerAccount:
        account = self.node.conductor.account
        if not isinstance(account, OwnerAccount):
            raise TransferError("only an owner's node transfers devices")
        return account

    def _dht(self) -> DnaNetwork:
        cell = self.node.conductor.owner_cell
        if cell.dna.hash not in self.node.dnas:
            raise TransferError("this node is not on the core network")
        return self.node.dht_for(cell)

    def _peer_of(self, agent: AgentPubKey, what: str) -> PeerId:
        info = self._dht().members().get(agent)
        if info is None or not info.addrs:
            raise TransferError(
                f"the {what} {agent.to_text()} is not a member known here (is its node running "
                "and connected?)"
            )
        return PeerId(info.peer_id)

    async def _send(self, peer: PeerId, data: bytes, what: str) -> Any:
        try:
            raw = await self.node.network.request(peer, t.PROTOCOL, data, timeout=REQUEST_TIMEOUT_S)
        except NetworkError as exc:
            raise TransferError(f"the {what} did not answer: {exc}") from None
        return m.read_reply(raw)

    def _settings(self, name: str) -> dict[str, Any]:
        stored = self.node.conductor.db.get_setting(name)
        return dict(stored) if isinstance(stored, dict) else {}

    def _devices(self) -> list[dict[str, Any]]:
        stored = self.node.conductor.db.get_setting(DEVICES_SETTING) or []
        return [dict(d) for d in stored if isinstance(d, dict)]

    # ------------------------------------------------------------------------- the old owner

    async def offer(self, device_text: str, to_text: str) -> dict[str, Any]:
        """Offer this owner's device ``device_text`` to the owner agent ``to_text``."""
        account = self._owner()
        device = _agent(device_text, "device")
        to = _agent(to_text, "owner agent")
        me = account.agent_key()
        if to == me.agent:
            raise TransferError("a device is transferred to another owner")
        item = next((d for d in self._devices() if d.get("agent") == device.to_text()), None)
        if item is None:
            raise TransferError(f"{device_text} is not a device this owner enrolled")
        if "transferred" in item or "revoked" in item:
            raise TransferError(f"{device_text} was already transferred or revoked")
        _, proof = _certificate_of(await self._dht().get_agent_activity(device), device)
        try:
            cert = EnrollmentCertificate.from_bytes(proof)
        except EncodingError as exc:
            raise TransferError(
                f"the device's membrane proof is not a certificate: {exc}"
            ) from None
        if cert.device != device or cert.owner != me.agent:
            raise TransferError("the device joined with a certificate of another owner")
        peer = self._peer_of(to, "new owner")
        now = self._now()
        made = self._settings(OFFERS_MADE_SETTING)
        made[device.to_text()] = {"to": to.to_text(), "certificate": proof, "offered_us": now}
        self.node.conductor.db.put_setting(OFFERS_MADE_SETTING, made)
        body = {"to": bytes(to), "device": bytes(device), "certificate": proof, "time_us": now}
        await self._send(peer, t.sign_message("offer", body, me), "new owner's node")
        return {"device": device.to_text(), "to": to.to_text(), "offered_us": now}

    async def _countersign(self, message: m.Message) -> dict[str, Any]:
        """The new owner asks for the old side of a transfer: sign only what was offered."""
        self._owner()
        try:
            transfer = TransferCertificate.from_bytes(m.field(message, "transfer", bytes))
            new = EnrollmentCertificate.from_bytes(m.field(message, "new_certificate", bytes))
        except EncodingError as exc:
            raise TransferError(f"malformed transfer documents: {exc}") from None
        made = self._settings(OFFERS_MADE_SETTING).get(transfer.old_device.to_text())
        if not isinstance(made, dict):
            raise TransferError("this owner offered that device to nobody")
        if message.signer.to_text() != made.get("to") or new.owner != message.signer:
            raise TransferError("the device was offered to another owner")
        old = EnrollmentCertificate.from_bytes(made["certificate"])
        if transfer.old_certificate != old.id:
            raise TransferError("the transfer names another certificate than the one offered")
        activity = await self._dht().get_agent_activity(old.device)
        latest = _latest(activity, old.device) if activity else None
        if latest is None or (transfer.old_last_seq, transfer.old_head) != (
            latest.action.seq,
            latest.hash,
        ):
            known = latest.action.seq if latest is not None else "none"
            raise TransferError(
                "the transfer's cut-off is not the device's latest action known here "
                f"(latest: {known})"
            )
        signatures = await sign_with_keyset(
            self.node,
            TRANSFER_CONTEXT,
            transfer.message(),
            keyset=old.keyset,
            what=f"transfer of {old.name} to {new.owner.to_text()}",
        )
        signed = replace(transfer, old_signatures=signatures)
        problem = transfer_problem(signed, old, new)
        if problem:
            raise TransferError(f"not a valid transfer: {problem}")
        self._mark_transferred(signed, new)
        return {"transfer": signed.to_bytes()}

    def _mark_transferred(self, transfer: TransferCertificate, new: EnrollmentCertificate) -> None:
        db = self.node.conductor.db
        note = {
            "to": new.owner.to_text(),
            "agent": transfer.new_device.to_text(),
            "transfer": transfer.id.to_text(),
            "issued_us": transfer.issued_us,
        }
        marked = [
            {**d, "transferred": note} if d.get("agent") == transfer.old_device.to_text() else d
            for d in self._devices()
        ]
        db.put_setting(DEVICES_SETTING, marked)
        made = self._settings(OFFERS_MADE_SETTING)
        made.pop(transfer.old_device.to_text(), None)
        db.put_setting(OFFERS_MADE_SETTING, made)
        self.node.signals.publish({"type": "device_transferred_away", "device": note})

    # ------------------------------------------------------------------------- the new owner

    def _receive_offer(self, message: m.Message, peer: PeerId) -> str:
        me = self._owner().agent_key().agent
        if m.agent_field(message, "to") != me:
            raise TransferError("this offer is for another owner")
        device = m.agent_field(message, "device")
        proof = m.field(message, "certificate", bytes)
        try:
            cert = EnrollmentCertificate.from_bytes(proof)
        except EncodingError as exc:
            raise TransferError(f"the offered certificate is malformed: {exc}") from None
        problem = certificate_problem(cert)
        if problem:
            raise TransferError(f"the offered certificate is not valid: {problem}")
        if cert.device != device:
            raise TransferError("the offered certificate is for another device")
        if cert.owner != message.signer:
            raise TransferError("only the device's owner may offer it (the certificate's owner)")
        offers = self._settings(OFFERS_SETTING)
        new = device.to_text() not in offers
        if new and len(offers) >= MAX_OFFERS:
            raise TransferError("too many transfer offers are waiting here")
        offers[device.to_text()] = {
            "from": message.signer.to_text(),
            "certificate": proof,
            "offered_us": m.field(message, "time_us", int),
            "peer": str(peer),
        }
        self.node.conductor.db.put_setting(OFFERS_SETTING, offers)
        if new:
            listed = _offer_json(device.to_text(), offers[device.to_text()])
            self.node.signals.publish(
                {**listed, "type": "transfer_pending", "device_type": listed.get("type")}
            )
        return "pending"

    def pending_list(self) -> list[dict[str, Any]]:
        """The transfers offered to this owner, oldest first."""
        offers = self._settings(OFFERS_SETTING)
        listed = [_offer_json(device, offer) for device, offer in offers.items()]
        return sorted(listed, key=lambda o: o["offered_us"])

    async def accept(
        self, device_text: str, *, zone: str | None = None, private: bool = False
    ) -> dict[str, Any]:
        """Take the device offered as ``device_text``: certify, countersign, provision, publish."""
        account = self._owner()
        device = _agent(device_text, "device")
        offer = self._settings(OFFERS_SETTING).get(device.to_text())
        if not isinstance(offer, dict):
            raise TransferError(f"no transfer of {device_text} was offered to this owner")
        old = EnrollmentCertificate.from_bytes(offer["certificate"])
        zone = zone or old.zone
        if zone_problem(zone):
            raise TransferError(f"bad zone: {zone_problem(zone)}")
        async with self._lock:
            dht = self._dht()
            activity = await dht.get_agent_activity(device)
            pkg, proof = _certificate_of(activity, device)
            if proof != offer["certificate"]:
                raise TransferError("the device did not join with the certificate offered")
            latest = _latest(activity, device)
            old_peer = self._peer_of(old.owner, "old owner")
            device_peer = self._peer_of(device, "device")
            index = next_device_index(self.node)
            seed = account.device_seed(index)
            agent = device_agent_key(seed, 0).agent
            visibility = DeviceVisibility.PRIVATE if private else DeviceVisibility.PUBLIC
            now = self._now()
            new = issue(
                keyset=node_keyset(self.node.conductor),
                owner_agent=account.agent_key(),
                device=agent,
                device_type=old.device_type,
                name=old.name,
                zone=zone,
                networks=old.networks,
                issued_us=now,
                serial=index,
                visibility=visibility,
            )
            what = f"certificate of {old.name} (transferred from {old.owner.to_text()})"
            new = replace(
                new,
                signatures=await sign_with_keyset(
                    self.node, CERTIFICATE_CONTEXT, new.message(), keyset=new.keyset, what=what
                ),
            )
            draft = TransferCertificate.between(
                old, new, old_last_seq=latest.action.seq, old_head=latest.hash, issued_us=now
            )
            draft = replace(
                draft,
                new_signatures=await sign_with_keyset(
                    self.node,
                    TRANSFER_CONTEXT,
                    draft.message(),
                    keyset=new.keyset,
                    what=f"transfer of {old.name} from {old.owner.to_text()}",
                ),
            )
            body = {
                "transfer": draft.to_bytes(),
                "new_certificate": new.to_bytes(),
                "time_us": self._now(),
            }
            me = account.agent_key()
            reply = await self._send(
                old_peer, t.sign_message("countersign", body, me), "old owner's node"
            )
            transfer = self._signed_transfer(reply, draft, old, new)
            payload = encode(
                {
                    "seed": seed,
                    "index": index,
                    "certificate": new.to_bytes(),
                    "transfer": transfer.to_bytes(),
                    "network": network_spec(self.node.conductor.core_dna),
                }
            )
            body = {"device": bytes(device), "sealed": m.seal_to(device, payload), "time_us": now}
            done_raw = await self._send(
                device_peer, t.sign_message("provision", body, me), "device's node"
            )
            if type(done_raw) is not bytes:
                raise TransferError("the device did not confirm the transfer")
            done = t.open_message(done_raw, expect="adopted")
            if done.signer != agent:
                raise TransferError("the device answered with another key than provisioned")
            action = self.node.call(
                self.node.conductor.owner_cell,
                OWNERSHIP_ZOME,
                "record_transfer",
                {
                    "transfer": transfer.to_bytes(),
                    "old_certificate": proof,
                    "new_certificate": new.to_bytes(),
                    "old_enrolled_at": bytes(pkg.hash),
                },
            )
            assert isinstance(action, ActionHash)
            dht.revocations.learn_transfer(transfer)
            self._record_device(transfer, old, new, index, offer)
            dht.watch({agent})
            return {
                "agent": agent.to_text(),
                "index": index,
                "name": old.name,
                "previous": device.to_text(),
                "previous_owner": old.owner.to_text(),
                "transfer": transfer.id.to_text(),
                "action": action.to_text(),
            }

    @staticmethod
    def _signed_transfer(
        reply: Any,
        draft: TransferCertificate,
        old: EnrollmentCertificate,
        new: EnrollmentCertificate,
    ) -> TransferCertificate:
        raw = reply.get("transfer") if isinstance(reply, dict) else None
        try:
            transfer = TransferCertificate.from_bytes(raw if type(raw) is bytes else b"")
        except EncodingError as exc:
            raise TransferError(f"the old owner answered with no transfer: {exc}") from None
        if transfer.message() != draft.message():
            raise TransferError("the old owner signed another transfer than the one proposed")
        problem = transfer_problem(transfer, old, new)
        if problem:
            raise TransferError(f"the old owner's answer is not a valid transfer: {problem}")
        return transfer

    def _record_device(
        self,
        transfer: TransferCertificate,
        old: EnrollmentCertificate,
        new: EnrollmentCertificate,
        index: int,
        offer: dict[str, Any],
    ) -> None:
        db = self.node.conductor.db
        record = {
            "agent": new.device.to_text(),
            "index": index,
            "agent_index": 0,
            "name": new.name,
            "type": new.device_type.value,
            "zone": new.zone,
            "visibility": new.visibility.value,
            "enrolled_us": new.issued_us,
            "transferred_from": {
                "agent": old.device.to_text(),
                "owner": old.owner.to_text(),
                "transfer": transfer.id.to_text(),
            },
        }
        db.put_setting(DEVICES_SETTING, [*self._devices(), record])
        offers = self._settings(OFFERS_SETTING)
        offers.pop(old.device.to_text(), None)
        db.put_setting(OFFERS_SETTING, offers)
        self.node.signals.publish({**record, "type": "device_transferred", "offer": offer["from"]})

    # ------------------------------------------------------------------------------ the device

    def _adopt(self, message: m.Message) -> bytes:
        account = self.node.conductor.account
        if not isinstance(account, DeviceAccount):
            raise TransferError("only an enrolled device adopts a new owner")
        keys = account.agent_key()
        if m.agent_field(message, "device") != keys.agent:
            raise TransferError("this provisioning is for another device")
        if self.persist is None or self.adopted.is_set():
            raise TransferError("this device cannot take a new account while it runs this way")
        payload = m.unseal(keys, m.field(message, "sealed", bytes))
        try:
            value = decode(payload, max_size=m.MAX_MESSAGE_BYTES)
            if type(value) is not dict or set(value) not in PROVISION_FIELDS:
                raise EncodingError("not a transfer provisioning")
            new = EnrollmentCertificate.from_bytes(value["certificate"])
            transfer = TransferCertificate.from_bytes(value["transfer"])
            adopted = DeviceAccount.of(value["seed"], value["index"], new)
            network = value.get("network")
            core = core_network(network)
        except (EncodingError, IoEError, TypeError, ValueError) as exc:
            raise TransferError(f"bad provisioning: {exc}") from None
        problem = transfer_problem(transfer, account.certificate, new)
        if problem:
            raise TransferError(f"the transfer does not stand: {problem}")
        if message.signer != new.owner:
            raise TransferError("only the new owner agent provisions the transferred device")
        if network is not None:  # before the keystore: the new account opens on this network
            self.node.conductor.db.put_setting(NETWORK_SETTING, network_spec(core))
        self.persist(adopted)
        self.account = adopted
        self.adopted.set()
        log.warning(
            "transferred to owner %s: restarting as %s",
            new.owner.short(),
            adopted.agent_key().agent.short(),
        )
        body = {"device": bytes(keys.agent), "time_us": self._now()}
        return t.sign_message("adopted", body, adopted.agent_key())

    # ------------------------------------------------------------------------------ handling

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            message = t.open_message(data, expect=("offer", "countersign", "provision"))
            m.check_fresh(message, self._now())
            if message.kind == "offer":
                return m.reply_ok(self._receive_offer(message, peer))
            if message.kind == "countersign":
                return m.reply_ok(await self._countersign(message))
            return m.reply_ok(self._adopt(message))
        except m.EnrollmentError as exc:
            return m.reply_error(str(exc))
        except (IoEError, NetworkError) as exc:
            return m.reply_error(f"refused: {exc}")


def _offer_json(device: str, offer: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "device": device,
        "from": offer.get("from"),
        "offered_us": offer.get("offered_us", 0),
    }
    with contextlib.suppress(EncodingError, KeyError, TypeError):
        cert = EnrollmentCertificate.from_bytes(offer["certificate"])
        out.update({"name": cert.name, "type": cert.device_type.value, "zone": cert.zone})
    return out


# -------------------------------------------------------------------------------- history


async def key_history_of(dht: DnaNetwork, agent: AgentPubKey) -> dict[str, Any]:
    """``agent``'s chain of keys (old → new, through transfers and rotations), after asking the
    network for the transfer and revocation links of each key in turn."""
    asked: set[AgentPubKey] = set()
    history: tuple[AgentPubKey, ...] = (agent,)
    for _ in range(MAX_HISTORY):
        last = history[-1]
        if last in asked:
            break
        asked.add(last)
        for link_type in (TRANSFER_LINK, REVOCATION_LINK):
            for link in await dht.get_links(last, link_type):
                if isinstance(link.target, ActionHash):
                    record = await dht.get_record(link.target)
                    if record is not None:
                        dht.revocations.consider(record, dht.host)
        history = dht.revocations.history(agent)
    transfers = [transfer_json(x) for key in history for x in dht.revocations.transfers_of(key)]
    return {
        "agent": agent.to_text(),
        "history": [key.to_text() for key in history],
        "transfers": transfers,
    }


# ---------------------------------------------------------------------------------- routes


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/owner/transfer/offer", offer_route)
    app.router.add_get("/v1/owner/transfers", transfers_route)
    app.router.add_post("/v1/owner/transfer/accept", accept_route)
    app.router.add_get("/v1/keys/{agent}/history", history_route)


def _node(request: web.Request) -> IdentityHost:
    return request.app[IDENTITY_HOST]


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def offer_route(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if (
        body is None
        or not isinstance(body.get("device"), str)
        or not isinstance(body.get("to"), str)
    ):
        return web.json_response({"error": "offer takes {device, to}"}, status=400)
    try:
        result = await _node(request).transfers.offer(body["device"], body["to"])
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)


async def transfers_route(request: web.Request) -> web.Response:
    try:
        return web.json_response(_node(request).transfers.pending_list())
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def accept_route(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if (
        body is None
        or not isinstance(body.get("device"), str)
        or not isinstance(body.get("zone"), str | None)
    ):
        return web.json_response({"error": "accept takes {device, zone?, private?}"}, status=400)
    try:
        result = await _node(request).transfers.accept(
            body["device"], zone=body.get("zone"), private=bool(body.get("private"))
        )
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)


async def history_route(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        agent = _agent(request.match_info["agent"], "agent")
    except TransferError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(await key_history_of(node.dht_for(node.conductor.owner_cell), agent))
