"""Entry types of the ownership zome."""

from __future__ import annotations

from dataclasses import dataclass

from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.identity.authority import MAX_KEYSET_CHANGES, Keyset, KeysetChange
from ioe.identity.certificate import EnrollmentCertificate, certificate_problem
from ioe.identity.revocation import KeyRevocation, revocation_problem
from ioe.identity.transfer import TransferCertificate, transfer_problem

KEY_REVOCATION_ENTRY = "key_revocation"
REVOCATION_LINK = "revocation"
"""Link type: from a revoked agent key to the action that committed its revocation."""


@dataclass(frozen=True, slots=True)
class Checked:
    """A revocation entry whose documents verify: what it revokes, and by which certificate."""

    revocation: KeyRevocation
    certificate: EnrollmentCertificate


@dataclass(frozen=True, slots=True)
class KeyRevocationEntry:
    """Public: an owner revokes the key of a device it enrolled.

    ``revocation`` is the :class:`KeyRevocation` wire form; ``certificate`` the revoked key's
    enrollment certificate, byte for byte as it presented it when it joined (its
    ``AgentValidationPkg`` membrane proof, the action ``enrolled_at``); ``keyset_changes`` the
    owner's keyset changes since that certificate (wire forms, in order), so the spec in force
    now authorizes the revocation. Everything a validator needs is cited: no clock, no look-up
    beyond ``enrolled_at``."""

    revocation: bytes
    certificate: bytes
    enrolled_at: ActionHash
    keyset_changes: tuple[bytes, ...] = ()

    def checked(self) -> Checked | str:
        """The decoded documents if they verify (:func:`revocation_problem` against the
        certificate's keyset brought up to date by ``keyset_changes``), else why not."""
        if len(self.keyset_changes) > MAX_KEYSET_CHANGES:
            return f"at most {MAX_KEYSET_CHANGES} keyset changes"
        try:
            revocation = KeyRevocation.from_bytes(self.revocation)
            certificate = EnrollmentCertificate.from_bytes(self.certificate)
            changes = [KeysetChange.from_bytes(c) for c in self.keyset_changes]
        except EncodingError as exc:
            return f"malformed revocation documents: {exc}"
        problem = certificate_problem(certificate)
        if problem:
            return f"the revoked key's certificate is not valid: {problem}"
        keyset = Keyset(certificate.keyset.genesis, (*certificate.keyset.changes, *changes))
        problem = revocation_problem(revocation, keyset, certificate)
        if problem:
            return problem
        return Checked(revocation, certificate)


# ------------------------------------------------------------------------------ transfers

KEY_TRANSFER_ENTRY = "key_transfer"
TRANSFER_LINK = "transfer"
"""Link type: from a transferred device's old key to the action that committed the transfer."""


@dataclass(frozen=True, slots=True)
class CheckedTransfer:
    """A transfer entry whose documents verify: the transfer and both certificates."""

    transfer: TransferCertificate
    old_certificate: EnrollmentCertificate
    new_certificate: EnrollmentCertificate


@dataclass(frozen=True, slots=True)
class KeyTransferEntry:
    """Public: a device moved from one owner to another and was re-keyed.

    ``transfer`` is the :class:`TransferCertificate` wire form (signed by both keysets);
    ``old_certificate`` the old key's certificate byte for byte as it joined with it (the
    membrane proof of its ``AgentValidationPkg``, the action ``old_enrolled_at``: as for
    revocations, nobody transfers a key it did not really enroll); ``new_certificate`` the one
    the device now holds; ``old_keyset_changes`` the old owner's keyset changes since its
    certificate, so that the old keyset's spec in force now signed."""

    transfer: bytes
    old_certificate: bytes
    new_certificate: bytes
    old_enrolled_at: ActionHash
    old_keyset_changes: tuple[bytes, ...] = ()

    def checked(self) -> CheckedTransfer | str:
        """The decoded documents if :func:`transfer_problem` accepts them, else why not."""
        if len(self.old_keyset_changes) > MAX_KEYSET_CHANGES:
            return f"at most {MAX_KEYSET_CHANGES} keyset changes"
        try:
            transfer = TransferCertificate.from_bytes(self.transfer)
            old = EnrollmentCertificate.from_bytes(self.old_certificate)
            new = EnrollmentCertificate.from_bytes(self.new_certificate)
            changes = [KeysetChange.from_bytes(c) for c in self.old_keyset_changes]
        except EncodingError as exc:
            return f"malformed transfer documents: {exc}"
        keyset = Keyset(old.keyset.genesis, (*old.keyset.changes, *changes))
        problem = transfer_problem(transfer, old, new, keyset)
        if problem:
            return problem
        return CheckedTransfer(transfer, old, new)
