"""The DNAs this release ships, assembled from the zomes.

``core`` is the network every IoE agent joins: public profiles, signed telemetry, the currency,
identity documents, reputation claims and communities. Changing any integrity zome (its version
or types) changes the DNA hash, i.e. starts a new network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ioe.encoding import Value, encode
from ioe.engine import capability, countersigning
from ioe.engine.dna import DnaDef
from ioe.errors import EncodingError
from ioe.identity.certificate import NETWORK_PROPERTY
from ioe.zomes import (
    community,
    currency,
    identity,
    notify,
    ownership,
    profile,
    reputation,
    telemetry,
)
from ioe.zomes.currency.ledger import CurrencyRules
from ioe.zomes.currency.value import ValueRules

CORE_DNA_NAME = "ioe-core"


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
        ),
        properties={NETWORK_PROPERTY: CORE_DNA_NAME, **(properties or {})},
        network_seed=network_seed,
    )


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
    dna = core_network(spec)
    return network_spec(dna)


def _no_float(text: str) -> Value:
    raise ValueError(f"numbers in a network file are integers, not {text}")


def build_dna(spec: Mapping[str, Value]) -> DnaDef | None:
    """Rebuild a DNA from its stored spec (name, properties, network seed), or None if this
    build does not know a DNA of that name."""
    builder = _BUILDERS.get(spec.get("name"))  # type: ignore[arg-type]
    if builder is None:
        return None
    return builder(spec.get("properties") or {}, str(spec.get("network_seed", "")))
