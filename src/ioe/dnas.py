"""The DNAs this release ships, assembled from the zomes.

``core`` is the network every IoE agent joins: for now it holds public profiles, signed
telemetry and the currency's transfers; identity, devices and community zomes join it as they
are built. Changing any integrity zome (its version or types) changes the DNA hash, i.e.
starts a new network.
"""

from __future__ import annotations

from collections.abc import Mapping

from ioe.encoding import Value
from ioe.engine import capability, countersigning
from ioe.engine.dna import DnaDef
from ioe.identity.certificate import NETWORK_PROPERTY
from ioe.zomes import currency, identity, notify, ownership, profile, telemetry

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
        ),
        coordinator_zomes=(
            profile.coordinator,
            telemetry.coordinator,
            capability.coordinator,
            notify.coordinator,
            currency.coordinator,
            ownership.coordinator,
        ),
        properties={NETWORK_PROPERTY: CORE_DNA_NAME, **(properties or {})},
        network_seed=network_seed,
    )


_BUILDERS = {CORE_DNA_NAME: core_dna}


def build_dna(spec: Mapping[str, Value]) -> DnaDef | None:
    """Rebuild a DNA from its stored spec (name, properties, network seed), or None if this
    build does not know a DNA of that name."""
    builder = _BUILDERS.get(spec.get("name"))  # type: ignore[arg-type]
    if builder is None:
        return None
    return builder(spec.get("properties") or {}, str(spec.get("network_seed", "")))
