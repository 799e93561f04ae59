"""The common device language: device types, canonical points, and checks of values against them.

Canonical point names say their unit in their suffix (``power_w``, ``energy_wh``,
``temperature_c``, ``soc_pct``). Values on the driver API are natural numbers in that unit
(floats allowed), booleans, or enum strings. On a chain, telemetry must be integers: a numeric
point ``<name>_<unit>`` is signed as ``<name>_m<unit>`` in thousandths (``power_w`` 1234.5 →
``power_mw`` 1234500), a boolean as 0/1 and an enum as the index of its choice
(:func:`to_telemetry`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ioe.errors import IoEError
from ioe.vocabulary import DeviceType

PointValue = bool | float | int | str


class DriverError(IoEError):
    """Base of the device-driver errors."""


class PointError(DriverError, ValueError):
    """A write names an unknown or read-only point, or a value outside the point's range.
    Nothing was changed on the device."""


class DeviceOffline(DriverError):
    """The device cannot be reached now (it is reported ``online: false`` until it returns)."""


class DeviceProtocolError(DriverError):
    """The device (or its broker/server) answered something that breaks its protocol."""


class ValueKind(StrEnum):
    BOOL = "bool"
    NUMBER = "number"
    ENUM = "enum"


_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class PointDef:
    """One telemetry or control point. ``writable`` points are control points."""

    name: str
    kind: ValueKind
    unit: str = ""
    writable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    cumulative: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bad point name {self.name!r}")
        if self.kind is ValueKind.ENUM and not self.choices:
            raise ValueError(f"enum point {self.name} needs choices")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"point {self.name}: minimum above maximum")

    def with_range(self, minimum: float | None, maximum: float | None) -> PointDef:
        return replace(self, minimum=minimum, maximum=maximum)

    def with_choices(self, *choices: str) -> PointDef:
        return replace(self, choices=tuple(choices))

    def read_only(self) -> PointDef:
        return replace(self, writable=False)

    def check(self, value: object) -> PointValue:
        """``value`` as this point's type, or :class:`PointError` saying why not."""
        if self.kind is ValueKind.BOOL:
            if type(value) is bool:
                return value
            raise PointError(f"{self.name} takes true or false, not {value!r}")
        if self.kind is ValueKind.ENUM:
            if isinstance(value, str) and value in self.choices:
                return value
            raise PointError(f"{self.name} takes one of {', '.join(self.choices)}, not {value!r}")
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            raise PointError(f"{self.name} takes a number, not {value!r}")
        number = float(value) if type(value) is float else value
        if self.minimum is not None and number < self.minimum:  # type: ignore[operator]
            raise PointError(f"{self.name} = {value} is below its minimum {self.minimum}")
        if self.maximum is not None and number > self.maximum:  # type: ignore[operator]
            raise PointError(f"{self.name} = {value} is above its maximum {self.maximum}")
        return number  # type: ignore[return-value]

    def parse(self, text: str) -> PointValue:
        """A value typed by a person (``on``, ``off``, ``24``, ``cool``), checked."""
        if self.kind is ValueKind.BOOL:
            lowered = text.strip().lower()
            if lowered in ("on", "true", "1", "yes"):
                return True
            if lowered in ("off", "false", "0", "no"):
                return False
            raise PointError(f"{self.name} takes on/off, not {text!r}")
        if self.kind is ValueKind.ENUM:
            return self.check(text.strip())
        try:
            number = float(text)
        except ValueError:
            raise PointError(f"{self.name} takes a number, not {text!r}") from None
        return self.check(int(number) if number.is_integer() and "." not in text else number)

    def describe(self) -> dict[str, object]:
        """JSON-ready description."""
        out: dict[str, object] = {"name": self.name, "kind": str(self.kind), "unit": self.unit}
        out["writable"] = self.writable
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        if self.cumulative:
            out["cumulative"] = True
        if self.description:
            out["description"] = self.description
        return out


def _number(name: str, unit: str, description: str, **extra: object) -> PointDef:
    return PointDef(name=name, kind=ValueKind.NUMBER, unit=unit, description=description, **extra)  # type: ignore[arg-type]


POINTS: Mapping[str, PointDef] = {
    p.name: p
    for p in (
        PointDef(name="switch", kind=ValueKind.BOOL, writable=True, description="relay on/off"),
        _number("power_w", "W", "active power; negative = export/generation into the grid"),
        _number("energy_wh", "Wh", "cumulative energy counter", minimum=0, cumulative=True),
        _number(
            "energy_export_wh",
            "Wh",
            "cumulative energy exported to the grid (meters, generators)",
            minimum=0,
            cumulative=True,
        ),
        _number(
            "power_limit_pct",
            "%",
            "output limit as a share of rated power (curtailment)",
            writable=True,
            minimum=0,
            maximum=100,
        ),
        _number("voltage_v", "V", "RMS voltage", minimum=0),
        _number("current_a", "A", "RMS current"),
        _number("temperature_c", "°C", "measured temperature"),
        _number("setpoint_c", "°C", "target temperature", writable=True, minimum=16, maximum=30),
        PointDef(
            name="mode",
            kind=ValueKind.ENUM,
            writable=True,
            choices=("off", "cool", "heat", "fan", "auto"),
            description="operating mode",
        ),
        _number("soc_pct", "%", "state of charge", minimum=0, maximum=100),
        _number(
            "charge_power_w",
            "W",
            "battery charge power set point; negative = discharge",
            writable=True,
        ),
        _number(
            "current_limit_a", "A", "charging current limit", writable=True, minimum=0, maximum=80
        ),
        PointDef(name="online", kind=ValueKind.BOOL, description="device reachable"),
    )
}
"""The canonical points. Drivers take these and narrow ranges or choices to their device."""


def point(name: str) -> PointDef:
    """A canonical point by name."""
    try:
        return POINTS[name]
    except KeyError:
        raise PointError(f"{name!r} is not a canonical point") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDescription:
    """What a device is and which points it has."""

    device_type: DeviceType
    points: tuple[PointDef, ...]
    driver: str
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    _by_name: dict[str, PointDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ValueError("point names must be unique")
        if "online" not in names:
            object.__setattr__(self, "points", (*self.points, POINTS["online"]))
        self._by_name.update({p.name: p for p in self.points})

    def point(self, name: str) -> PointDef:
        try:
            return self._by_name[name]
        except KeyError:
            raise PointError(f"this device has no point {name!r}") from None

    def check_write(self, name: str, value: object) -> PointValue:
        """The checked value for a write of ``value`` to ``name``, or :class:`PointError`."""
        target = self.point(name)
        if not target.writable:
            raise PointError(f"{name} is read-only")
        return target.check(value)

    def control_points(self) -> list[PointDef]:
        return [p for p in self.points if p.writable]

    def describe(self) -> dict[str, object]:
        return {
            "device_type": str(self.device_type),
            "driver": self.driver,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "points": [p.describe() for p in self.points],
        }


def telemetry_name(definition: PointDef) -> str:
    """The chain-telemetry name of a point: numeric ``x_<unit>`` → ``x_m<unit>``."""
    if definition.kind is ValueKind.NUMBER:
        stem, _, unit = definition.name.rpartition("_")
        return f"{stem}_m{unit}" if stem else f"{definition.name}_milli"
    return definition.name


def to_telemetry(
    description: DeviceDescription, values: Mapping[str, PointValue]
) -> dict[str, int]:
    """Integer telemetry for a chain from read values (unknown names are dropped)."""
    out: dict[str, int] = {}
    for name, value in values.items():
        definition = description._by_name.get(name)
        if definition is None:
            continue
        if definition.kind is ValueKind.BOOL:
            if type(value) is bool:
                out[definition.name] = int(value)
        elif definition.kind is ValueKind.ENUM:
            if value in definition.choices:
                out[definition.name] = definition.choices.index(str(value))
        elif isinstance(value, int | float) and math.isfinite(value):
            out[telemetry_name(definition)] = round(value * 1000)
    return out
