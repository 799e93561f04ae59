"""Integrity rules of the ownership zome (pure: no clock, no I/O).

A ``key_revocation`` entry is valid when its documents verify (:meth:`KeyRevocationEntry.checked`:
the owner's keyset authorized the revocation of a key its certificate enrolled), its author is
that certificate's owner agent, the revoked key is the certified *device* (revoking an owner
agent is left to keyset changes), and ``enrolled_at`` is the revoked key's own
``AgentValidationPkg`` carrying exactly that certificate. The last rule is what stops an owner
from certifying someone else's key after the fact in order to revoke it: the certificate must be
the one the key itself joined with.

A ``revocation`` link goes from the revoked key to the author's revocation of it.

A ``key_transfer`` entry (:class:`KeyTransferEntry`) is valid when its transfer certificate
verifies against both certificates (:func:`ioe.identity.transfer.transfer_problem`: both keysets
signed), its author is the owner agent of the old *or* the new certificate (either may publish a
transfer both signed; the new owner does, as it finishes the transfer), and ``old_enrolled_at``
is the old key's own ``AgentValidationPkg`` carrying exactly the old certificate (as for
revocations). A ``transfer`` link goes from the old key to the author's transfer entry.
"""

from __future__ import annotations

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.links import AgentLinkRule
from ioe.engine.records import AgentValidationPkg, CreateLink, Visibility
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.hashing import AgentPubKey
from ioe.zomes.ownership.entries import (
    KEY_REVOCATION_ENTRY,
    KEY_TRANSFER_ENTRY,
    REVOCATION_LINK,
    TRANSFER_LINK,
    Checked,
    CheckedTransfer,
    KeyRevocationEntry,
    KeyTransferEntry,
)

OWNERSHIP_ZOME = "ownership"


def revocation_entry_problem(
    entry: KeyRevocationEntry, author: AgentPubKey, host: IntegrityHost
) -> str | None:
    """Why ``entry`` committed by ``author`` is not a valid revocation, or None."""
    checked = entry.checked()
    if isinstance(checked, str):
        return checked
    revocation, certificate = checked.revocation, checked.certificate
    if author != certificate.owner:
        return "only the owner agent named in the certificate may publish its revocations"
    if revocation.revoked != certificate.device:
        return "a revocation entry revokes a device key (owner agents change by keyset changes)"
    enrolled = host.must_get_action(entry.enrolled_at)
    action = enrolled.action
    if (
        not isinstance(action, AgentValidationPkg)
        or action.author != revocation.revoked
        or action.membrane_proof != entry.certificate
    ):
        return "enrolled_at is not the revoked key's membrane proof with this certificate"
    return None


def transfer_entry_problem(
    entry: KeyTransferEntry, author: AgentPubKey, host: IntegrityHost
) -> str | None:
    """Why ``entry`` committed by ``author`` is not a valid transfer, or None."""
    checked = entry.checked()
    if isinstance(checked, str):
        return checked
    if author not in (checked.old_certificate.owner, checked.new_certificate.owner):
        return "only the old or the new owner agent may publish a transfer"
    enrolled = host.must_get_action(entry.old_enrolled_at)
    action = enrolled.action
    if (
        not isinstance(action, AgentValidationPkg)
        or action.author != checked.transfer.old_device
        or action.membrane_proof != entry.old_certificate
    ):
        return "old_enrolled_at is not the old key's membrane proof with the old certificate"
    return None


def _transferred_key(entry: KeyTransferEntry) -> AgentPubKey | None:
    checked = entry.checked()
    return None if isinstance(checked, str) else checked.transfer.old_device


def _revoked_key(entry: KeyRevocationEntry) -> AgentPubKey | None:
    checked = entry.checked()
    return None if isinstance(checked, str) else checked.revocation.revoked


TRANSFER_LINK_RULE = AgentLinkRule(
    entry=KeyTransferEntry,
    subject=_transferred_key,
    not_agent_link="a transfer link goes from the old agent key to a transfer",
    not_own_entry="a transfer link points at the author's own transfer entry",
    not_entry="a transfer link points at a transfer entry",
    not_subject="a transfer link goes from the key its target transfers",
)
REVOCATION_LINK_RULE = AgentLinkRule(
    entry=KeyRevocationEntry,
    subject=_revoked_key,
    not_agent_link="a revocation link goes from the revoked agent key to a revocation",
    not_own_entry="a revocation link points at the author's own revocation entry",
    not_entry="a revocation link points at a revocation entry",
    not_subject="a revocation link goes from the key its target revokes",
)


def _validate_link(action: CreateLink, host: IntegrityHost) -> Outcome:
    if action.link_type == integrity.link_index(TRANSFER_LINK):
        return TRANSFER_LINK_RULE.check(action, host)
    return REVOCATION_LINK_RULE.check(action, host)


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    if isinstance(op.app_entry, KeyRevocationEntry):
        problem = revocation_entry_problem(op.app_entry, action.author, host)
        if problem:
            return Invalid(problem)
    if isinstance(op.app_entry, KeyTransferEntry):
        problem = transfer_entry_problem(op.app_entry, action.author, host)
        if problem:
            return Invalid(problem)
    if isinstance(action, CreateLink) and op.type in (
        OpType.STORE_RECORD,
        OpType.REGISTER_ADD_LINK,
    ):
        return _validate_link(action, host)
    return VALID


integrity = IntegrityZome(
    name=OWNERSHIP_ZOME,
    version="1",
    entry_defs=(
        EntryDef(KEY_REVOCATION_ENTRY, KeyRevocationEntry, Visibility.PUBLIC),
        EntryDef(KEY_TRANSFER_ENTRY, KeyTransferEntry, Visibility.PUBLIC),
    ),
    link_types=(REVOCATION_LINK, TRANSFER_LINK),
    validate=validate,
)

__all__ = [
    "OWNERSHIP_ZOME",
    "Checked",
    "CheckedTransfer",
    "integrity",
    "revocation_entry_problem",
    "transfer_entry_problem",
    "validate",
]
