"""The DNAs this release ships, assembled from the zomes.

``core`` is the network every IoE agent joins: public profiles, signed telemetry, the currency,
identity documents, reputation claims, communities and the app store. Changing any integrity
zome (its version or types) changes the DNA hash, i.e. starts a new network.

An **app network** (:func:`app_dna`) is the DNA one installation of an app runs in: the app
membrane (members of the enrolled community only) and the zomes of an app DNA this release
knows (:data:`APP_DNAS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ioe.encoding import Value, encode
from ioe.engine import capability, countersigning
from ioe.engine.dna import DnaDef
from ioe.engine.zome import CoordinatorZome, IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ExternalHash
from ioe.identity.certificate import NETWORK_PROPERTY, TRUSTED_KEYSETS_PROPERTY
from ioe.zomes import (
    appstore,
    community,
    currency,
    identity,
    notify,
    ownership,
    profile,
    reputation,
    telemetry,
)
from ioe.zomes.appnet import board, membrane
from ioe.zomes.appnet.membrane import APP_PROPERTY, COMMUNITY_PROPERTY, INSTALLATION_PROPERTY
from ioe.zomes.currency.ledger import CurrencyRules
from ioe.zomes.currency.value import ValueRules

CORE_DNA_NAME = "ioe-core"
APP_DNA_PREFIX = "ioe-app/"
"""App networks are DNAs named ``ioe-app/<app dna>`` (``ioe-app/board/1``)."""

APP_DNAS: Mapping[str, tuple[tuple[IntegrityZome, ...], tuple[CoordinatorZome, ...]]] = {
    "board/1": ((board.integrity,), (board.coordinator,)),
}
"""The app DNAs this release runs, by the name a manifest gives (``dna``): an app names one of
these; it cannot ship code of its own."""


def core_dna(properties: Mapping[str, Value] | None = None, network_seed: str = "") -> DnaDef:
    """The core DNA. Its membrane (the identity zome) admits an agent with an enrollment
    certificate naming the ``network`` property (``ioe-core`` unless ``properties`` say
    otherwise) or with an owner membership (docs/identity.md)."""
    return DnaDef(
        name=CORE_DNA_NAME,
        integrity_zomes=(
            profile.integrity,
            telemetry.integrity,
            capability.integrity,
            countersigning.integrity,
            currency.integrity,
            ownership.integrity,
            identity.integrity,
            reputation.integrity,
            community.integrity,
            appstore.integrity,
        ),
        coordinator_zomes=(
            profile.coordinator,
            telemetry.coordinator,
            capability.coordinator,
            notify.coordinator,
            currency.coordinator,
            ownership.coordinator,
            reputation.coordinator,
            community.coordinator,
            appstore.coordinator,
        ),
        properties={NETWORK_PROPERTY: CORE_DNA_NAME, **(properties or {})},
        network_seed=network_seed,
    )


def app_dna(
    dna: str, community: ExternalHash, installation: ExternalHash, app: str, core: DnaDef
) -> DnaDef:
    """The network of one installation of an app: DNA ``dna`` (a name of :data:`APP_DNAS`),
    behind the app membrane (members of ``community`` only). Its properties name the community,
    the installation and the core network whose members it admits. ``ValueError`` for a DNA
    this release does not know."""
    if dna not in APP_DNAS:
        raise ValueError(f"this release runs no app DNA {dna!r} (it knows {sorted(APP_DNAS)})")
    properties: dict[str, Value] = {
        COMMUNITY_PROPERTY: bytes(community),
        INSTALLATION_PROPERTY: bytes(installation),
        APP_PROPERTY: app,
    }
    for key in (NETWORK_PROPERTY, TRUSTED_KEYSETS_PROPERTY):
        if key in core.properties:
            properties[key] = core.properties[key]
    return _app_dna(APP_DNA_PREFIX + dna, properties)


def _app_dna(name: str, properties: Mapping[str, Value], network_seed: str = "") -> DnaDef:
    integrity_zomes, coordinator_zomes = APP_DNAS[name.removeprefix(APP_DNA_PREFIX)]
    return DnaDef(
        name=name,
        integrity_zomes=(membrane.integrity, *integrity_zomes),
        coordinator_zomes=coordinator_zomes,
        properties=properties,
        network_seed=network_seed,
    )


def is_app_dna(dna: DnaDef) -> bool:
    """Whether ``dna`` is an app network (started by the app store, not at node start)."""
    return dna.name.startswith(APP_DNA_PREFIX)


_BUILDERS = {CORE_DNA_NAME: core_dna}

NETWORK_KEYS = frozenset({"properties", "network_seed"})
MAX_NETWORK_SEED = 128


def network_spec(dna: DnaDef) -> dict[str, Value]:
    """What makes ``dna`` one network rather than another (``{"properties",
    "network_seed"}``): the shape of a network file, and what an owner hands the devices it
    enrolls so they join the same network."""
    return {"properties": dict(dna.properties), "network_seed": dna.network_seed}


def core_network(spec: Mapping[str, Value] | None) -> DnaDef:
    """The core DNA of a network spec (None: the default network). ``ValueError`` saying what
    is wrong: unknown keys, a value that is not canonical (floats), currency or value settings
    the zomes would refuse (every transfer would be invalid on such a network)."""
    if spec is None:
        return core_dna()
    if not isinstance(spec, Mapping) or not set(spec) <= NETWORK_KEYS:
        raise ValueError(f"a network is a map with at most the keys {sorted(NETWORK_KEYS)}")
    properties = spec.get("properties", {})
    seed = spec.get("network_seed", "")
    if not isinstance(properties, Mapping):
        raise ValueError("a network's properties are a map")
    if not isinstance(seed, str) or len(seed) > MAX_NETWORK_SEED:
        raise ValueError(f"a network seed is text of at most {MAX_NETWORK_SEED} characters")
    try:
        encode(dict(properties))
    except (EncodingError, TypeError, ValueError) as exc:
        raise ValueError(f"the network's properties are not canonical values: {exc}") from None
    CurrencyRules.from_properties(properties)  # ValueError naming the setting
    ValueRules.from_properties(properties)
    return core_dna(properties, seed)


def load_network(path: Path) -> dict[str, Value]:
    """A network file: JSON ``{"properties": {...}, "network_seed": "..."}`` (integers only:
    amounts are milli-credits, rates per mille). ``ValueError`` with the reason."""
    try:
        spec = json.loads(path.read_text(), parse_float=_no_float)
    except OSError as exc:
        raise ValueError(f"cannot read the network file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the network file {path} is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"the network file {path} nests too deeply") from None
    dna = core_network(spec)
    return network_spec(dna)


def _no_float(text: str) -> Value:
    raise ValueError(f"numbers in a network file are integers, not {text}")


def build_dna(spec: Mapping[str, Value]) -> DnaDef | None:
    """Rebuild a DNA from its stored spec (name, properties, network seed), or None if this
    build does not know a DNA of that name."""
    name = spec.get("name")
    properties = spec.get("properties") or {}
    seed = str(spec.get("network_seed", ""))
    if not isinstance(name, str) or not isinstance(properties, Mapping):
        return None
    if name.startswith(APP_DNA_PREFIX) and name.removeprefix(APP_DNA_PREFIX) in APP_DNAS:
        return _app_dna(name, properties, seed)
    builder = _BUILDERS.get(name)
    if builder is None:
        return None
    return builder(properties, seed)
