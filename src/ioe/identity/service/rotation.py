"""Key rotation of an enrolled device, over the network: the device moves to its next agent key.

POST /v1/owner/rotate   {"agent", "reason"?}  → {"agent", "previous", "index", "agent_index",
                                               "revocation", "action"}

Two nodes take part, over ``/ioe/rotate/1`` (messages:
:mod:`ioe.identity.service.rotation_messages`); each runs one :class:`RotationService` (the node
starts it):

1. **Prepare** (the owner's node, :meth:`RotationService.rotate`): the device must be one this
   owner enrolled (``enrolled_devices``, which records the device index and the agent index
   ``j`` it runs as). Its current certificate is read from the start of its chain. The owner
   derives agent ``j+1`` of the same device seed, issues a certificate for it (same type, name,
   zone, visibility, policy, networks; new serial and time) and a :class:`KeyRevocation` of the
   old key cut at the device's latest action it can find (head included) with the new key as
   ``replacement``; both are signed through
   :func:`~ioe.identity.service.keyset_signing.sign_with_keyset`.
2. **Adopt** (the device's node): :func:`rotation_problem` checks everything (signed by its
   owner agent, the revocation valid for its current certificate and naming the new key, the new
   certificate valid, of the same keyset and owner, for agent ``j+1`` of its own seed, and the
   cut at its own head so it voids nothing the device wrote). Only then it writes its keystore
   (the ``persist`` callback transfers use: crash-safe, written before it answers), answers
   ``rotated`` signed by the new key, and sets ``node.transfers.adopted``: the runner restarts
   it in-process as the new agent (the same restart a transfer uses).
3. **Publish** (the owner's node): commits the revocation (``ownership.revoke``, as
   :func:`~ioe.identity.service.revocations.revoke_device` does) and records the device under
   its new key. Every node that learns it refuses the old key's later actions, and key history
   links old → new.

**Decision: publish only after the device confirmed.** Publishing first would cut off a device
that may never have received its new key (it would be locked out until the owner re-enrolls it).
If the device adopted but its answer was lost, the owner sees an error; the device runs the new
key, whose certificate is valid, so a later ``ioe key revoke`` of the old key finishes the job.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.engine.ports import ChainHead
from ioe.engine.records import SignedAction
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.certificate import (
    CERTIFICATE_CONTEXT,
    EnrollmentCertificate,
    certificate_problem,
    enrollment_record,
    issue,
)
from ioe.identity.device_account import DeviceAccount
from ioe.identity.revocation import REVOCATION_CONTEXT, KeyRevocation, revocation_problem
from ioe.identity.service import enrollment_messages as m
from ioe.identity.service import rotation_messages as r
from ioe.identity.service.enrollment import DEVICES_SETTING, OwnerEnrollment
from ioe.identity.service.host import IDENTITY_HOST, ProtocolService
from ioe.identity.service.keyset import node_keyset
from ioe.identity.service.keyset_signing import SigningError, sign_with_keyset
from ioe.identity.service.revocations import revocation_json
from ioe.identity.service.rotation_messages import RotationError
from ioe.net.interface import NetworkError, PeerId
from ioe.zomes.ownership.validation import OWNERSHIP_ZOME

if TYPE_CHECKING:
    from ioe.dht.service import DnaNetwork

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0
SIGN_TIMEOUT_S = 50.0
"""How long each keyset signature waits for officers' approvals (enterprise keysets)."""
AGENT_INDEX_FIELD = "agent_index"
"""The agent index a device runs as, in its ``enrolled_devices`` record (absent: 0)."""
SERIAL_AGENT_BITS = 32
"""A rotated certificate's serial is ``device index << 32 | agent index`` (enrollment's is the
device index alone), so no two certificates of one owner share a serial."""
DEFAULT_REASON = "key rotation"


def rotation_problem(
    account: DeviceAccount,
    signer: AgentPubKey,
    certificate: EnrollmentCertificate,
    revocation: KeyRevocation,
    head: ChainHead | None,
) -> str | None:
    """Why a device holding ``account``, whose own chain ends at ``head``, must not adopt the
    rotation to ``certificate`` that ``signer`` sent with ``revocation`` of its current key; or
    None. Pure: everything it needs is an argument."""
    current = account.certificate
    if signer != current.owner:
        return "the rotation is not signed by this device's owner agent"
    if revocation.revoked != account.agent_key().agent:
        return "the revocation is of another key than this device's"
    keyset = certificate.keyset if certificate.keyset_id == current.keyset_id else current.keyset
    problem = revocation_problem(revocation, keyset, current)
    if problem:
        return f"the revocation does not stand: {problem}"
    if revocation.replacement != certificate.device:
        return "the revocation does not name the new certificate's key as its replacement"
    problem = certificate_problem(certificate)
    if problem:
        return f"the new certificate is not valid: {problem}"
    if certificate.keyset_id != current.keyset_id or certificate.owner != current.owner:
        return "the new certificate names another owner than this device's"
    if certificate.device_type != current.device_type:
        return "the new certificate is for another type of device"
    seed = account.device_seed(account.index)
    if certificate.device != device_agent_key(seed, account.agent + 1).agent:
        return f"the new certificate is not for agent {account.agent + 1} of this device's seed"
    if head is None or (revocation.last_valid_seq, revocation.head) != (head.seq, head.hash):
        at = head.seq if head is not None else "none"
        return f"the revocation's cut-off is not this device's latest action (its head: {at})"
    return None


def _agent(text: str, what: str) -> AgentPubKey:
    try:
        return AgentPubKey.from_text(text)
    except (EncodingError, ValueError) as exc:
        raise RotationError(f"not an {what} key: {exc}") from None


class RotationService(ProtocolService):
    """Every node's side of ``/ioe/rotate/1``: an owner rotates its devices' keys; a device
    adopts its next key (through its node's transfer restart: ``node.transfers``)."""

    PROTOCOL = r.PROTOCOL
    NAME = "rotation"

    def _devices(self) -> list[dict[str, Any]]:
        stored = self.node.conductor.db.get_setting(DEVICES_SETTING) or []
        return [dict(d) for d in stored if isinstance(d, dict)]

    # ------------------------------------------------------------------------------ the owner

    async def rotate(self, agent_text: str, *, reason: str = "") -> dict[str, Any]:
        """Move this owner's device ``agent_text`` to its next agent key (see the module)."""
        account = self.node.conductor.account
        if not isinstance(account, OwnerAccount):
            raise RotationError("only an owner's node rotates its devices' keys")
        old = _agent(agent_text, "agent")
        async with self._lock:
            item = next((d for d in self._devices() if d.get("agent") == old.to_text()), None)
            if item is None:
                raise RotationError(f"{agent_text} is not a device this owner enrolled")
            if "transferred" in item or "revoked" in item:
                raise RotationError(f"{agent_text} was transferred or revoked")
            index, j = item.get("index"), item.get(AGENT_INDEX_FIELD, 0)
            if type(index) is not int or type(j) is not int or index < 1 or j < 0:
                raise RotationError(f"the record of {agent_text} has no device/agent index")
            seed = account.device_seed(index)
            if device_agent_key(seed, j).agent != old:
                raise RotationError(
                    f"{agent_text} is not agent {j} of device seed {index} (record out of step)"
                )
            new = device_agent_key(seed, j + 1).agent
            cell = self.node.conductor.owner_cell
            if cell.dna.hash not in self.node.dnas:
                raise RotationError("this node is not on the core network")
            dht = self.node.dht_for(cell)
            activity = await dht.get_agent_activity(old)
            found = enrollment_record(activity, old)
            if found is None:
                raise RotationError(
                    f"the chain of {old.to_text()} was not found on the network"
                    " (is the device running?)"
                )
            pkg, proof = found
            try:
                current = EnrollmentCertificate.from_bytes(proof)
            except EncodingError as exc:
                raise RotationError(
                    f"the device's membrane proof is not a certificate: {exc}"
                ) from None
            if current.device != old or current.owner != cell.agent:
                raise RotationError("the device joined with a certificate of another owner")
            latest = max(
                (s for s in activity if s.action.author == old), key=lambda s: s.action.seq
            )
            peer = self._peer_of(dht, old)
            certificate, revocation = await self._documents(
                account, current, new, index, j + 1, latest, reason or DEFAULT_REASON
            )
            body = {
                "device": bytes(old),
                "certificate": certificate.to_bytes(),
                "revocation": revocation.to_bytes(),
                "time_us": self._now(),
            }
            reply = await self._send(peer, r.sign_message("rotate", body, account.agent_key()))
            if type(reply) is not bytes:
                raise RotationError("the device did not confirm the rotation")
            done = r.open_message(reply, expect="rotated")
            if done.signer != new or m.agent_field(done, "device") != old:
                raise RotationError("the device answered with another key than its next one")
            payload = {
                "revocation": revocation.to_bytes(),
                "certificate": proof,
                "enrolled_at": bytes(pkg.hash),
            }
            action = self.node.call(cell, OWNERSHIP_ZOME, "revoke", payload)
            assert isinstance(action, ActionHash)
            dht.revocations.learn(revocation)
            record = self._record(item, certificate, revocation, j + 1)
            return {
                "agent": new.to_text(),
                "previous": old.to_text(),
                "index": index,
                AGENT_INDEX_FIELD: j + 1,
                "name": certificate.name,
                "revocation": revocation_json(revocation),
                "action": action.to_text(),
                "enrolled_us": record["enrolled_us"],
            }

    async def _documents(  # noqa: PLR0917 - the parts of both documents
        self,
        account: OwnerAccount,
        current: EnrollmentCertificate,
        new: AgentPubKey,
        index: int,
        agent_index: int,
        latest: SignedAction,
        reason: str,
    ) -> tuple[EnrollmentCertificate, KeyRevocation]:
        """The new key's certificate and the old key's revocation, signed by the keyset."""
        now = self._now()
        try:
            draft = issue(
                keyset=node_keyset(self.node.conductor),
                owner_agent=account.agent_key(),
                device=new,
                device_type=current.device_type,
                name=current.name,
                zone=current.zone,
                networks=current.networks,
                issued_us=now,
                serial=index << SERIAL_AGENT_BITS | agent_index,
                neighbourhoods=current.neighbourhoods,
                visibility=current.visibility,
                policy=current.policy,
            )
            certificate = replace(
                draft,
                signatures=await sign_with_keyset(
                    self.node,
                    CERTIFICATE_CONTEXT,
                    draft.message(),
                    keyset=draft.keyset,
                    what=f"certificate of {current.name} (key rotation)",
                    timeout_s=SIGN_TIMEOUT_S,
                ),
            )
            unsigned = KeyRevocation.new(
                current.keyset,
                current.device,
                last_valid_seq=latest.action.seq,
                head=latest.hash,
                issued_us=now,
                reason=reason,
                replacement=new,
            )
            revocation = replace(
                unsigned,
                signatures=await sign_with_keyset(
                    self.node,
                    REVOCATION_CONTEXT,
                    unsigned.message(),
                    keyset=current.keyset,
                    what=f"revoke {current.device.to_text()}: {reason}",
                    timeout_s=SIGN_TIMEOUT_S,
                ),
            )
            revocation = KeyRevocation.from_bytes(revocation.to_bytes())  # the shape rules
        except EncodingError as exc:
            raise RotationError(f"bad rotation documents: {exc}") from None
        except SigningError as exc:
            raise RotationError(f"the rotation is not signed: {exc}") from None
        problem = certificate_problem(certificate)
        if problem:
            raise RotationError(f"the new certificate is not valid: {problem}")
        return certificate, revocation

    def _peer_of(self, dht: DnaNetwork, agent: AgentPubKey) -> PeerId:
        info = dht.members().get(agent)
        if info is None or not info.addrs:
            raise RotationError(
                f"the device {agent.to_text()} is not a member known here (is its node running "
                "and connected?)"
            )
        return PeerId(info.peer_id)

    async def _send(self, peer: PeerId, data: bytes) -> Any:
        try:
            raw = await self.node.network.request(peer, r.PROTOCOL, data, timeout=REQUEST_TIMEOUT_S)
        except NetworkError as exc:
            raise RotationError(f"the device's node did not answer: {exc}") from None
        return m.read_reply(raw)

    def _record(
        self,
        item: dict[str, Any],
        certificate: EnrollmentCertificate,
        revocation: KeyRevocation,
        agent_index: int,
    ) -> dict[str, Any]:
        """The device's ``enrolled_devices`` record, now under its new key."""
        old = item["agent"]
        record = {
            **item,
            "agent": certificate.device.to_text(),
            AGENT_INDEX_FIELD: agent_index,
            "enrolled_us": certificate.issued_us,
            "rotated_from": {
                "agent": old,
                "revocation": revocation.id.to_text(),
                "issued_us": revocation.issued_us,
            },
        }
        devices = [record if d.get("agent") == old else d for d in self._devices()]
        self.node.conductor.db.put_setting(DEVICES_SETTING, devices)
        enrollment = self.node.enrollment
        if isinstance(enrollment, OwnerEnrollment):  # watch the device's node under its new key
            agents = set(enrollment.device_agents())
            for dht in self.node.dnas.values():
                dht.watch(agents)
        self.node.signals.publish({**record, "type": "device_rotated", "previous": old})
        return record

    # ------------------------------------------------------------------------------ the device

    def _adopt(self, message: m.Message) -> bytes:
        node = self.node
        account = node.conductor.account
        if not isinstance(account, DeviceAccount):
            raise RotationError("only an enrolled device rotates its key")
        keys = account.agent_key()
        if m.agent_field(message, "device") != keys.agent:
            raise RotationError("this rotation is for another device")
        transfers = node.transfers
        if transfers.persist is None or transfers.adopted.is_set():
            raise RotationError("this device cannot take a new key while it runs this way")
        try:
            certificate = EnrollmentCertificate.from_bytes(m.field(message, "certificate", bytes))
            revocation = KeyRevocation.from_bytes(m.field(message, "revocation", bytes))
        except EncodingError as exc:
            raise RotationError(f"malformed rotation documents: {exc}") from None
        head = node.conductor.owner_cell.head()
        problem = rotation_problem(account, message.signer, certificate, revocation, head)
        if problem:
            raise RotationError(problem)
        rotated = account.rotated(certificate)
        transfers.persist(rotated)  # before answering: a crash leaves the old key or the new
        transfers.account = rotated
        transfers.adopted.set()  # the runner restarts the node as the new agent
        log.warning(
            "key rotated by owner %s: restarting as %s (agent %d)",
            certificate.owner.short(),
            rotated.agent_key().agent.short(),
            rotated.agent,
        )
        body = {"device": bytes(keys.agent), "time_us": self._now()}
        return r.sign_message("rotated", body, rotated.agent_key())

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        try:
            message = r.open_message(data, expect="rotate")
            m.check_fresh(message, self._now())
            return m.reply_ok(self._adopt(message))
        except m.EnrollmentError as exc:
            return m.reply_error(str(exc))
        except (IoEError, NetworkError) as exc:
            return m.reply_error(f"refused: {exc}")


# ---------------------------------------------------------------------------------- routes


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/owner/rotate", rotate_route)


async def rotate_route(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("agent"), str)
        or not isinstance(body.get("reason", ""), str)
    ):
        return web.json_response({"error": "rotate takes {agent, reason?}"}, status=400)
    try:
        result = await request.app[IDENTITY_HOST].rotation.rotate(
            body["agent"], reason=body.get("reason", "")
        )
    except IoEError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)
