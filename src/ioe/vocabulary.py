"""The words every part of the project uses for the same things, defined once.

Drivers describe devices, certificates certify them, local discovery advertises nodes and the
currency values records by how they were verified: each uses the same values on the wire, so
each takes them from here. Changing a value here changes certificates, adverts and entries.
Nothing else may be imported here: this module sits below everything, integrity code included.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class DeviceType(StrEnum):
    """What a device does with energy (drivers' descriptions, certificates, adverts)."""

    CONSUMPTION = "consumption"
    GENERATOR = "generator"
    STORAGE = "storage"
    MONITOR = "monitor"


class NodeType(StrEnum):
    """What a node is, as advertised: a device's :class:`DeviceType` (same values), or
    ``owner`` for an owner's own node (phone, gateway)."""

    CONSUMPTION = DeviceType.CONSUMPTION.value
    GENERATOR = DeviceType.GENERATOR.value
    STORAGE = DeviceType.STORAGE.value
    MONITOR = DeviceType.MONITOR.value
    OWNER = "owner"


class Enrollment(StrEnum):
    """Whether a node's agent holds an enrollment certificate, as advertised."""

    UNENROLLED = "unenrolled"
    ENROLLED = "enrolled"


class Verification(IntEnum):
    """How far a record's energy figure is trusted: who vouched for it (wallets, apps and the
    currency's value rules read the same levels)."""

    SELF_REPORTED = 0
    DEVICE_SIGNED = 1
    METER_ATTESTED = 2
    SUBSTATION_ATTESTED = 3
