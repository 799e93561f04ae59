"""Entry types of the app store zome: signed app manifests, installations into communities,
uninstalls and subscription payments.

An **app manifest** says what a Smart Energy App is and asks for: its id (a short slug such as
``demand``), name, version, developer (the agent that signs the manifest), description, pricing
(free, freemium, or a subscription of ``fee_mc`` milli-credits per ``period_s`` seconds), the
device points it needs and at which access level (*see* to read them, *control* to write them,
*trade* to act in markets for the device), and the app DNA it runs (one this release knows: an
app cannot ship code, only name a DNA every node already validates).

An **installation** enrols a community into one manifest: signed by the community's manager
keyset (M of N officers where there are several), it names the community, the manifest's id,
the capabilities granted (exactly those the manifest asks for: a manager grants what an app
needs or does not install it) and the app's settings (JSON text the app reads). Its record
carries the community's charter, so a private community's installation is checked as a public
one's is, without the charter being published.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ioe.crypto.keys import KeyPair, verify
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity import wire
from ioe.identity.authority import check_authorized
from ioe.identity.document import Signatures, SignedDocument, sign
from ioe.zomes.community.entries import Access, CommunityCharter

MANIFEST_CONTEXT = b"ioe/appstore/manifest/v1"
INSTALLATION_CONTEXT = b"ioe/appstore/installation/v1"
MANIFEST_VERSION = 1
INSTALLATION_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 1024
"""A manifest's wire form is at most this long (a manifest file a little more: JSON is wordier)."""
MAX_MANIFEST_FILE_BYTES = 32 * 1024
MAX_INSTALLATION_BYTES = 16 * 1024
MAX_DESCRIPTION = 2_000
MAX_CAPABILITIES = 32
MAX_SETTINGS = 4_096
"""An installation's settings are JSON text of at most this many characters."""
MIN_PERIOD_S = 10
MAX_PERIOD_S = 366 * 86_400
MAX_FEE_MC = 10**9
APP_ID = re.compile(r"[a-z][a-z0-9-]{1,31}\Z")
POINT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
VERSION_TEXT = re.compile(r"[0-9]+(\.[0-9]+){0,3}([-+][0-9A-Za-z.-]{1,32})?\Z")
DNA_NAME = re.compile(r"[a-z][a-z0-9-]{1,31}/[0-9]{1,4}\Z")

LISTING_ENTRY = "app_listing"
INSTALLATION_ENTRY = "app_installation"
UNINSTALL_ENTRY = "app_uninstall"
PAYMENT_ENTRY = "subscription_payment"
STORE_LINK = "store_app"
"""Link type: from the store's anchor (:func:`store_anchor`) to a listing."""
RELEASE_LINK = "app_release"
"""Link type: from an app's anchor (:func:`app_anchor`) to each listing of that app."""
INSTALLED_LINK = "community_app"
"""Link type: from a community's id to each installation into it."""
UNINSTALLED_LINK = "app_uninstalled"
"""Link type: from an installation's action to the uninstall that ended it."""
PAID_LINK = "subscription_paid"
"""Link type: from an installation's action to each subscription payment for it."""


class PricingModel(StrEnum):
    FREE = "free"
    FREEMIUM = "freemium"
    """Runs unpaid; a paid subscription unlocks what the app calls premium."""
    SUBSCRIPTION = "subscription"
    """Runs only while paid: one fee per period, paid ahead."""


@dataclass(frozen=True, slots=True)
class Capability:
    """A device point the app uses, and how."""

    point: str
    access: Access


@dataclass(frozen=True, slots=True)
class Pricing:
    model: PricingModel
    fee_mc: int = 0
    period_s: int = 0


@dataclass(frozen=True, slots=True)
class AppManifest(SignedDocument):
    """An app as its developer signed it (see the module docstring)."""

    version: int
    app: str
    name: str
    app_version: str
    developer: AgentPubKey
    description: str
    pricing: Pricing
    capabilities: tuple[Capability, ...]
    dna: str
    published_us: int
    signatures: Signatures = ()

    CONTEXT = MANIFEST_CONTEXT
    MAX_BYTES = MAX_MANIFEST_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> AppManifest:
        """Strict decoding; :class:`EncodingError` naming what is wrong (the signature is
        checked by :func:`manifest_problem`)."""
        manifest = cls.decoded(data)
        problem = manifest_fields_problem(manifest)
        if problem:
            raise EncodingError(problem)
        return manifest


def manifest_fields_problem(m: AppManifest) -> str | None:
    """Why the fields of ``m`` are not a manifest's, or None (signature not checked)."""
    if m.version != MANIFEST_VERSION:
        return f"unknown manifest version {m.version}"
    if not APP_ID.match(m.app):
        return "an app id is 2 to 32 lower-case letters, digits and -, starting with a letter"
    problem = wire.text_problem(m.name, "an app's name")
    if problem:
        return problem
    if not VERSION_TEXT.match(m.app_version):
        return f"app_version {m.app_version[:40]!r} is not a version (1.2.3, 1.0-beta)"
    if len(m.description) > MAX_DESCRIPTION or not all(
        c.isprintable() or c == "\n" for c in m.description
    ):
        return f"a description is at most {MAX_DESCRIPTION} printable characters"
    problem = pricing_problem(m.pricing)
    if problem:
        return problem
    if len(m.capabilities) > MAX_CAPABILITIES:
        return f"a manifest asks for at most {MAX_CAPABILITIES} capabilities"
    keys = [(c.point, c.access) for c in m.capabilities]
    if keys != sorted(set(keys)):
        return "capabilities are listed once each, ordered by point and access"
    for capability in m.capabilities:
        if not POINT_NAME.match(capability.point):
            return f"{capability.point[:40]!r} is not a point name"
    if not DNA_NAME.match(m.dna):
        return f"dna {m.dna[:40]!r} is not an app DNA name (name/version, e.g. board/1)"
    if m.published_us < 0:
        return "published_us is non-negative"
    return None


def pricing_problem(p: Pricing) -> str | None:
    if p.model is PricingModel.FREE:
        return None if (p.fee_mc, p.period_s) == (0, 0) else "a free app has no fee or period"
    if not 0 < p.fee_mc <= MAX_FEE_MC:
        return f"a fee is 1 to {MAX_FEE_MC} milli-credits"
    if not MIN_PERIOD_S <= p.period_s <= MAX_PERIOD_S:
        return f"a period is {MIN_PERIOD_S} s to {MAX_PERIOD_S} s"
    return None


def manifest_problem(m: AppManifest) -> str | None:
    """Why ``m`` is not a valid manifest, or None: its fields, and its developer's signature
    over its body (any change to a signed manifest shows here)."""
    problem = manifest_fields_problem(m)
    if problem:
        return problem
    if len(m.signatures) != 1 or m.signatures[0].signer != m.developer:
        return "a manifest carries exactly one signature, by the developer it names"
    signature = m.signatures[0]
    if not verify(m.developer, MANIFEST_CONTEXT, m.message(), signature.signature):
        return "the developer's signature does not match the manifest (altered or forged)"
    return None


def checked_manifest(data: bytes) -> AppManifest | str:
    """The manifest of ``data`` if it decodes and verifies, else why not."""
    try:
        manifest = AppManifest.from_bytes(data)
    except EncodingError as exc:
        return f"malformed manifest: {exc}"
    return manifest_problem(manifest) or manifest


def sign_manifest(unsigned: AppManifest, keys: KeyPair) -> AppManifest:
    """``unsigned`` with its developer's signature (``keys`` must be the developer's)."""
    if keys.agent != unsigned.developer:
        raise ValueError("a manifest is signed by the developer it names")
    return AppManifest(
        **{**_fields(unsigned), "signatures": (sign(keys, MANIFEST_CONTEXT, unsigned.message()),)}
    )


def _fields(document: Any) -> dict[str, Any]:
    return {name: getattr(document, name) for name in type(document).__dataclass_fields__}


# ------------------------------------------------------------------------------ manifest files

MANIFEST_FILE_KEYS = frozenset(
    {"app", "name", "version", "description", "pricing", "capabilities", "dna"}
)
PRICING_KEYS = frozenset({"model", "fee_mc", "period_s"})


class ManifestFileError(ValueError):
    """A manifest file that cannot be a manifest; the message says which field and why."""


def manifest_from_json(text: str, developer: AgentPubKey, published_us: int) -> AppManifest:
    """The unsigned manifest a developer's JSON file describes::

        {"app": "demand", "name": "...", "version": "1.0.0", "description": "...",
         "pricing": {"model": "subscription", "fee_mc": 500, "period_s": 2592000},
         "capabilities": [{"point": "switch", "access": "control"}, ...],
         "dna": "board/1"}

    Untrusted input: size, JSON, keys, types and every field's rules are checked, and a
    :class:`ManifestFileError` names the first problem (integers only: amounts are
    milli-credits)."""
    if len(text) > MAX_MANIFEST_FILE_BYTES:
        raise ManifestFileError(f"a manifest file is at most {MAX_MANIFEST_FILE_BYTES} bytes")
    try:
        raw = json.loads(text, parse_float=_no_float, parse_constant=_no_float)
    except ManifestFileError:
        raise
    except ValueError as exc:  # not JSON, or an integer of more digits than int() takes
        raise ManifestFileError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ManifestFileError("not JSON: it nests too deeply") from None
    if not isinstance(raw, dict):
        raise ManifestFileError("a manifest is a JSON object")
    unknown = set(raw) - MANIFEST_FILE_KEYS
    if unknown:
        raise ManifestFileError(f"unknown manifest keys {sorted(unknown)}")
    missing = {"app", "name", "version", "pricing", "dna"} - set(raw)
    if missing:
        raise ManifestFileError(f"the manifest lacks {sorted(missing)}")
    for key in ("app", "name", "version", "description", "dna"):
        if key in raw and not isinstance(raw[key], str):
            raise ManifestFileError(f"{key!r} is text")
    pricing = _pricing_from(raw["pricing"])
    capabilities = _capabilities_from(raw.get("capabilities", []))
    manifest = AppManifest(
        version=MANIFEST_VERSION,
        app=raw["app"],
        name=raw["name"],
        app_version=raw["version"],
        developer=developer,
        description=raw.get("description", ""),
        pricing=pricing,
        capabilities=capabilities,
        dna=raw["dna"],
        published_us=published_us,
    )
    problem = manifest_fields_problem(manifest)
    if problem:
        raise ManifestFileError(problem)
    return manifest


def _no_float(text: str) -> Any:
    raise ManifestFileError(f"numbers in a manifest are integers, not {text}")


def _pricing_from(raw: Any) -> Pricing:
    if not isinstance(raw, dict) or not set(raw) <= PRICING_KEYS or "model" not in raw:
        raise ManifestFileError(
            f"pricing is an object with 'model' and at most {sorted(PRICING_KEYS)}"
        )
    try:
        model = PricingModel(raw["model"])
    except ValueError:
        raise ManifestFileError(
            f"pricing model {str(raw['model'])[:40]!r} is not one of free, freemium, subscription"
        ) from None
    fee, period = raw.get("fee_mc", 0), raw.get("period_s", 0)
    if type(fee) is not int or type(period) is not int:
        raise ManifestFileError("fee_mc and period_s are integers")
    pricing = Pricing(model, fee, period)
    problem = pricing_problem(pricing)
    if problem:
        raise ManifestFileError(problem)
    return pricing


def _capabilities_from(raw: Any) -> tuple[Capability, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_CAPABILITIES:
        raise ManifestFileError(f"capabilities is a list of at most {MAX_CAPABILITIES}")
    found = set()
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"point", "access"}:
            raise ManifestFileError('each capability is {"point": NAME, "access": LEVEL}')
        if not isinstance(item["point"], str) or not POINT_NAME.match(item["point"]):
            raise ManifestFileError(f"{str(item['point'])[:40]!r} is not a point name")
        try:
            access = Access(item["access"])
        except ValueError:
            raise ManifestFileError(
                f"access {str(item['access'])[:40]!r} is not see, control or trade"
            ) from None
        found.add(Capability(item["point"], access))
    return tuple(sorted(found, key=lambda c: (c.point, c.access)))


# ------------------------------------------------------------------------------ installations


@dataclass(frozen=True, slots=True)
class Installation(SignedDocument):
    """A community enrolled into an app (see the module docstring)."""

    version: int
    community: ExternalHash
    app: str
    manifest: ExternalHash
    granted: tuple[Capability, ...]
    settings: str
    installed_us: int
    signatures: Signatures = ()

    CONTEXT = INSTALLATION_CONTEXT
    MAX_BYTES = MAX_INSTALLATION_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> Installation:
        installation = cls.decoded(data)
        problem = installation_fields_problem(installation)
        if problem:
            raise EncodingError(problem)
        return installation


def installation_fields_problem(i: Installation) -> str | None:
    if i.version != INSTALLATION_VERSION:
        return f"unknown installation version {i.version}"
    if not APP_ID.match(i.app):
        return "not an app id"
    if len(i.settings) > MAX_SETTINGS:
        return f"an installation's settings are at most {MAX_SETTINGS} characters"
    try:
        settings = json.loads(i.settings or "{}")
    except json.JSONDecodeError:
        return "an installation's settings are JSON text"
    if not isinstance(settings, dict):
        return "an installation's settings are a JSON object"
    if i.installed_us < 0:
        return "installed_us is non-negative"
    return None


def installation_problem(
    i: Installation, charter: CommunityCharter, manifest: AppManifest
) -> str | None:
    """Why ``i`` is not a valid installation of ``manifest`` into ``charter``'s community, or
    None: its fields, the community and manifest it names, the capabilities (exactly what the
    manifest asks for) and the manager keyset's signatures."""
    problem = installation_fields_problem(i)
    if problem:
        return problem
    if i.community != charter.id:
        return "the installation names another community"
    if i.manifest != manifest.id or i.app != manifest.app:
        return "the installation names another manifest"
    if i.granted != manifest.capabilities:
        return "an installation grants exactly the capabilities its manifest asks for"
    problem = check_authorized(
        charter.manager.current, i.message(), INSTALLATION_CONTEXT, i.signatures
    )
    return f"not signed by the community's manager: {problem}" if problem else None


# ------------------------------------------------------------------------------ the entries


@dataclass(frozen=True, slots=True)
class AppListing:
    """A manifest in the store, committed by its developer: the manifest's wire form."""

    manifest: bytes


@dataclass(frozen=True, slots=True)
class AppInstallation:
    """An installation on the manager's chain, with the community's charter (its wire form)
    and the listing of the manifest it installs."""

    installation: bytes
    charter: bytes
    listing_at: ActionHash


@dataclass(frozen=True, slots=True)
class AppUninstall:
    """Ends an installation (``installation_at``); by the installation's author."""

    installation_at: ActionHash
    reason: str


@dataclass(frozen=True, slots=True)
class SubscriptionPayment:
    """Period ``period`` (0 is the first) of a subscription, paid by the transfer committed at
    ``transfer_at`` on the author's chain (a fee to the manifest's developer of at least the
    manifest's fee)."""

    installation_at: ActionHash
    transfer_at: ActionHash
    period: int


def store_anchor() -> ExternalHash:
    """Where every listing is linked from."""
    return ExternalHash.of(b"ioe/appstore/apps")


def app_anchor(app: str) -> ExternalHash:
    """Where the listings (releases) of one app id are linked from."""
    return ExternalHash.of(b"ioe/appstore/app/" + app.encode())
