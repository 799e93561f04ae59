"""Integrity rules of the app store zome (pure: no clock, no I/O).

**Listings.** An ``app_listing`` is valid when its manifest decodes and its developer's signature
verifies (so an altered manifest is refused by every node), and its author is that developer.

**Installations.** An ``app_installation`` is valid when its charter verifies, its author is an
owner agent of the charter's manager keyset (:func:`~ioe.zomes.community.validation.
founder_problem`), it cites a valid listing, and the installation names that community and that
manifest, grants exactly the capabilities the manifest asks for and is signed by the manager
keyset.

**Uninstalls** cite an installation by the same author. **Subscription payments** cite an
installation of a paid app (freemium or subscription) by the same author, and a transfer on the
author's own chain: a fee from the author to the manifest's developer of at least the
manifest's fee. A payment names its period (0 for the first); readers count each period once.

**Links** go from the store's anchor and the app's anchor to the author's own listing, from the
community's id to the author's own installation, and from an installation to the author's own
uninstall or payment of it.
"""

from __future__ import annotations

from typing import TypeVar

from ioe.engine.countersigning import CountersignedEntry
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import Create, CreateLink, EntryKind, Record, SignedAction, Visibility
from ioe.engine.schema import decode_as
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.identity import wire
from ioe.zomes.appstore.entries import (
    INSTALLATION_ENTRY,
    INSTALLED_LINK,
    LISTING_ENTRY,
    PAID_LINK,
    PAYMENT_ENTRY,
    RELEASE_LINK,
    STORE_LINK,
    UNINSTALL_ENTRY,
    UNINSTALLED_LINK,
    AppInstallation,
    AppListing,
    AppManifest,
    AppUninstall,
    Installation,
    PricingModel,
    SubscriptionPayment,
    app_anchor,
    checked_manifest,
    installation_problem,
    store_anchor,
)
from ioe.zomes.community.entries import CommunityCharter, checked_charter
from ioe.zomes.community.validation import Refused, cited_entry, founder_problem
from ioe.zomes.currency.entries import Kind, Transfer
from ioe.zomes.currency.entries import entry_index as currency_entry_index

APPSTORE_ZOME = "appstore"
CURRENCY_ZOME_INDEX = 4
"""Where the currency zome sits in the core DNA (``ioe.dnas.core_dna``; a test keeps this
true): a subscription payment's transfer is a countersigned entry of that zome."""
MAX_PERIODS = 1_000_000
E = TypeVar("E")


def _cited(
    host: IntegrityHost, action: ActionHash, zome_index: int, cls: type[E], what: str
) -> tuple[Record, E]:
    return cited_entry(host, action, integrity, zome_index, cls, what=what)


def _manifest(listing: AppListing) -> AppManifest:
    manifest = checked_manifest(listing.manifest)
    if isinstance(manifest, str):
        raise Refused(manifest)
    return manifest


def _activity(op: Op, host: IntegrityHost) -> list[SignedAction]:
    action = op.action
    return host.must_get_agent_activity(action.author, action.prev) if action.prev else []


def _zome(op: Op) -> int:
    entry_type = op.action.entry_type
    assert entry_type is not None
    return entry_type.zome_index


def installed(
    host: IntegrityHost, action: ActionHash, zome_index: int
) -> tuple[Record, Installation, CommunityCharter, AppManifest]:
    """The installation committed at ``action``, its charter and manifest, all verified."""
    record, entry = _cited(host, action, zome_index, AppInstallation, "an app installation")
    installation, charter, manifest = _checked_installation(entry, zome_index, host)
    return record, installation, charter, manifest


def _checked_installation(
    entry: AppInstallation, zome_index: int, host: IntegrityHost
) -> tuple[Installation, CommunityCharter, AppManifest]:
    try:
        installation = Installation.from_bytes(entry.installation)
    except EncodingError as exc:
        raise Refused(f"malformed installation: {exc}") from None
    charter = checked_charter(entry.charter)
    if isinstance(charter, str):
        raise Refused(charter)
    _, listing = _cited(host, entry.listing_at, zome_index, AppListing, "an app listing")
    manifest = _manifest(listing)
    problem = installation_problem(installation, charter, manifest)
    if problem:
        raise Refused(problem)
    return installation, charter, manifest


def _check_listing(op: Op) -> None:
    listing = op.app_entry
    assert isinstance(listing, AppListing)
    manifest = _manifest(listing)
    if op.action.author != manifest.developer:
        raise Refused("a manifest is listed by the developer that signed it")


def _check_installation(op: Op, host: IntegrityHost) -> None:
    entry = op.app_entry
    assert isinstance(entry, AppInstallation)
    _, charter, _ = _checked_installation(entry, _zome(op), host)
    problem = founder_problem(charter, _activity(op, host), op.action.author)
    if problem:
        raise Refused(f"an app is installed by the community's manager: {problem}")


def _check_uninstall(op: Op, host: IntegrityHost) -> None:
    entry = op.app_entry
    assert isinstance(entry, AppUninstall)
    problem = wire.text_problem(entry.reason, "an uninstall's reason", allow_empty=True)
    if problem:
        raise Refused(problem)
    record, _ = _cited(
        host, entry.installation_at, _zome(op), AppInstallation, "an app installation"
    )
    if record.action.author != op.action.author:
        raise Refused("an app is uninstalled by whoever installed it")


def paid_transfer(host: IntegrityHost, action: ActionHash) -> tuple[SignedAction, Transfer]:
    """The currency transfer committed at ``action`` (either party's record of it)."""
    record = host.must_get_valid_record(action)
    entry = record.entry
    if not isinstance(record.action, Create) or entry is None or entry.kind is not EntryKind.APP:
        raise Refused("transfer_at is not a committed transfer")
    try:
        preflight = decode_as(CountersignedEntry, entry.payload).preflight
        if (preflight.entry_zome, preflight.entry_index) != (
            CURRENCY_ZOME_INDEX,
            currency_entry_index(Transfer),
        ):
            raise Refused("transfer_at is not a currency transfer")
        return record.signed_action, decode_as(Transfer, preflight.entry)
    except EncodingError as exc:
        raise Refused(f"transfer_at does not decode as a transfer: {exc}") from None


def _check_payment(op: Op, host: IntegrityHost) -> None:
    payment = op.app_entry
    assert isinstance(payment, SubscriptionPayment)
    author = op.action.author
    if not 0 <= payment.period < MAX_PERIODS:
        raise Refused(f"a period is 0 to {MAX_PERIODS - 1}")
    record, _, _, manifest = installed(host, payment.installation_at, _zome(op))
    if record.action.author != author:
        raise Refused("a subscription is paid by whoever installed the app")
    if manifest.pricing.model is PricingModel.FREE:
        raise Refused("a free app has no subscription to pay")
    signed, transfer = paid_transfer(host, payment.transfer_at)
    if signed.action.author != author:
        raise Refused("a subscription payment cites the author's own record of the transfer")
    if transfer.kind is not Kind.FEE or transfer.spender.agent != author:
        raise Refused("a subscription is paid by a fee from the installer")
    if transfer.receiver.agent != manifest.developer:
        raise Refused("a subscription is paid to the app's developer")
    if transfer.amount_mc < manifest.pricing.fee_mc:
        raise Refused(
            f"the transfer of {transfer.amount_mc} mc is less than the fee of"
            f" {manifest.pricing.fee_mc} mc"
        )


def _check_link(op: Op, action: CreateLink, host: IntegrityHost) -> None:
    if not isinstance(action.target, ActionHash):
        raise Refused("an app store link points at an action")
    zome, target = action.zome_index, action.target
    kind = action.link_type
    record: Record
    if kind in (integrity.link_index(STORE_LINK), integrity.link_index(RELEASE_LINK)):
        record, listing = _cited(host, target, zome, AppListing, "an app listing")
        manifest = _manifest(listing)
        wanted = store_anchor() if kind == integrity.link_index(STORE_LINK) else None
        if action.base != (wanted or app_anchor(manifest.app)):
            raise Refused("a listing is linked from the store's anchor and its app's anchor")
    elif kind == integrity.link_index(INSTALLED_LINK):
        record, entry = _cited(host, target, zome, AppInstallation, "an app installation")
        try:
            community = Installation.from_bytes(entry.installation).community
        except EncodingError as exc:
            raise Refused(f"malformed installation: {exc}") from None
        if action.base != community:
            raise Refused("an installation is linked from its community's id")
    elif kind == integrity.link_index(UNINSTALLED_LINK):
        record, uninstall = _cited(host, target, zome, AppUninstall, "an uninstall")
        if action.base != uninstall.installation_at:
            raise Refused("an uninstall is linked from the installation it ends")
    else:
        record, paid = _cited(host, target, zome, SubscriptionPayment, "a payment")
        if action.base != paid.installation_at:
            raise Refused("a payment is linked from the installation it pays for")
    if record.action.author != action.author:
        raise Refused("an app store link points at the author's own record")


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    entry = op.app_entry
    try:
        if isinstance(entry, AppListing):
            _check_listing(op)
        elif isinstance(entry, AppInstallation):
            _check_installation(op, host)
        elif isinstance(entry, AppUninstall):
            _check_uninstall(op, host)
        elif isinstance(entry, SubscriptionPayment):
            _check_payment(op, host)
        if isinstance(action, CreateLink) and op.type in (
            OpType.STORE_RECORD,
            OpType.REGISTER_ADD_LINK,
        ):
            _check_link(op, action, host)
    except Refused as exc:
        return Invalid(str(exc))
    return VALID


integrity = IntegrityZome(
    name=APPSTORE_ZOME,
    version="1",
    entry_defs=(
        EntryDef(LISTING_ENTRY, AppListing, Visibility.PUBLIC),
        EntryDef(INSTALLATION_ENTRY, AppInstallation, Visibility.PUBLIC),
        EntryDef(UNINSTALL_ENTRY, AppUninstall, Visibility.PUBLIC),
        EntryDef(PAYMENT_ENTRY, SubscriptionPayment, Visibility.PUBLIC),
    ),
    link_types=(STORE_LINK, RELEASE_LINK, INSTALLED_LINK, UNINSTALLED_LINK, PAID_LINK),
    validate=validate,
)

__all__ = ["APPSTORE_ZOME", "CURRENCY_ZOME_INDEX", "installed", "integrity", "validate"]
