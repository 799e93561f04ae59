"""Ownership transfer: a device moves from one owner's keyset to another's, re-keyed.

A :class:`TransferCertificate` names the old certificate (by id) and the new one; M signers of
the old keyset *and* M signers of the new keyset sign it. It revokes the old device key after
``old_last_seq`` (the old owner's last valid action of that key) with the new device key as
its replacement, so key history links the two. The new key comes from the new owner's device seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ioe.crypto.keys import KeyPair
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.authority import (
    Keyset,
    check_authorized,
    keyset_problem,
    signatures_shape_ok,
)
from ioe.identity.certificate import EnrollmentCertificate, certificate_problem
from ioe.identity.document import Document, Signatures
from ioe.identity.revocation import NOTHING_VALID, Cutoff

TRANSFER_CONTEXT = b"ioe/identity/transfer/v1"
TRANSFER_VERSION = 1
MAX_TRANSFER_BYTES = 8192


@dataclass(frozen=True, slots=True)
class TransferCertificate(Document):
    version: int
    old_certificate: ExternalHash
    old_device: AgentPubKey
    old_last_seq: int
    old_head: ActionHash | None
    new_certificate: ExternalHash
    new_device: AgentPubKey
    issued_us: int
    old_signatures: Signatures = ()
    new_signatures: Signatures = ()

    CONTEXT = TRANSFER_CONTEXT
    MAX_BYTES = MAX_TRANSFER_BYTES
    UNSIGNED = ("old_signatures", "new_signatures")

    @classmethod
    def between(
        cls,
        old: EnrollmentCertificate,
        new: EnrollmentCertificate,
        *,
        old_last_seq: int,
        issued_us: int,
        old_head: ActionHash | None = None,
    ) -> TransferCertificate:
        """An unsigned transfer from ``old`` to ``new`` (sign with both sides' keys)."""
        return cls(
            TRANSFER_VERSION,
            old.id,
            old.device,
            old_last_seq,
            old_head,
            new.id,
            new.device,
            issued_us,
        )

    def signed_by_old(self, *keys: KeyPair) -> TransferCertificate:
        return self.with_signatures("old_signatures", keys)

    def signed_by_new(self, *keys: KeyPair) -> TransferCertificate:
        return self.with_signatures("new_signatures", keys)

    def cutoff(self) -> Cutoff:
        """The transfer's effect on the old device key."""
        return Cutoff(
            self.old_device, self.old_last_seq, self.old_head, self.new_device, self.issued_us
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TransferCertificate:
        """Strict decoding (shape only; :func:`transfer_problem` checks both sides)."""
        transfer = cls.decoded(data)
        wire.require(transfer.version == TRANSFER_VERSION, "unknown transfer version")
        wire.require(
            signatures_shape_ok(transfer.old_signatures)
            and signatures_shape_ok(transfer.new_signatures),
            "malformed transfer signatures",
        )
        problem = _shape_problem(transfer)
        wire.require(problem is None, str(problem))
        return transfer


def _shape_problem(transfer: TransferCertificate) -> str | None:
    if transfer.old_last_seq < NOTHING_VALID or transfer.issued_us < 0:
        return "bad old_last_seq or issued_us"
    if transfer.old_head is not None and transfer.old_last_seq < 0:
        return "a head needs the sequence number it is at"
    if transfer.old_device == transfer.new_device:
        return "a transferred device is re-keyed: the new key differs from the old"
    if transfer.old_certificate == transfer.new_certificate:
        return "a transfer names two different certificates"
    return None


def transfer_problem(
    transfer: TransferCertificate,
    old: EnrollmentCertificate,
    new: EnrollmentCertificate,
    old_keyset: Keyset | None = None,
) -> str | None:
    """Why ``transfer`` of ``old`` to ``new`` does not stand, or None. ``old_keyset`` is the
    latest chain known of the old owner's keyset (default: the one in ``old``); its current
    spec must have signed, and so must the current spec of ``new``'s keyset."""
    if transfer.version != TRANSFER_VERSION:
        return f"unknown transfer version {transfer.version}"
    problem = _shape_problem(transfer)
    if problem:
        return problem
    if transfer.old_certificate != old.id or transfer.old_device != old.device:
        return "the transfer does not name the old certificate"
    if transfer.new_certificate != new.id or transfer.new_device != new.device:
        return "the transfer does not name the new certificate"
    keyset = old.keyset if old_keyset is None else old_keyset
    if keyset.id != old.keyset_id:
        return "the old keyset given is not the old certificate's"
    if keyset.id == new.keyset_id:
        return "a transfer moves a device to another keyset (within one keyset, rotate instead)"
    if new.device_type != old.device_type:
        return "the new certificate is for another type of device"
    if transfer.issued_us < old.issued_us:
        return "the transfer predates the old certificate"
    problem = keyset_problem(keyset) or certificate_problem(old) or certificate_problem(new)
    if problem:
        return problem
    message = transfer.message()
    problem = check_authorized(keyset.current, message, TRANSFER_CONTEXT, transfer.old_signatures)
    if problem:
        return f"the old owner did not sign the transfer: {problem}"
    problem = check_authorized(
        new.keyset.current, message, TRANSFER_CONTEXT, transfer.new_signatures
    )
    if problem:
        return f"the new owner did not sign the transfer: {problem}"
    return None


def certificate_superseded(
    cert: EnrollmentCertificate, transfers: Iterable[TransferCertificate]
) -> bool:
    """Whether one of the (already verified) ``transfers`` revoked ``cert``."""
    return any(t.old_certificate == cert.id for t in transfers)
