"""SunSpec register maps without I/O: model layouts, value decoding, scale factors, and the
mapping from SunSpec models to the canonical device points.

Layouts come from the model definitions that pysunspec2 ships (the SunSpec Alliance's JSON files),
so a point's offset and type are read from the standard, never typed by hand. Apart from reading
those definitions once, everything here is a pure function of register values, tested without a
device; the adapter in :mod:`ioe.drivers.sunspec` only moves registers.

A SunSpec map starts with the marker ``SunS`` (two registers) at a base address (40000, 0 or
50000), followed by models, each ``ID, L`` and then ``L`` registers, ending with ID ``0xFFFF``.
Integer points are scaled by a ``sunssf`` point: value = raw * 10^sf. Every type has a sentinel
meaning "not implemented" (``0x8000`` for int16, ``0xFFFF`` for uint16/enum16, ``0`` for
accumulators, NaN for floats, …): such a point is absent, and so is a point whose scale factor is
absent or outside the standard's -10…10.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import sunspec2.device
import sunspec2.mb

from ioe.drivers.model import POINTS, PointDef
from ioe.vocabulary import DeviceType

RawValue = int | float | str
Number = int | float

MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL_ID = 0xFFFF
BASE_ADDRESSES = (40000, 0, 50000)
MAX_MODELS = 200  # a longer chain is garbage, not a device
MAX_READ = 125  # registers per Modbus read request
SF_LIMIT = 10

COMMON_MODEL = 1
INVERTER_MODELS = (101, 102, 103, 111, 112, 113)
METER_MODELS = (201, 202, 203, 204, 211, 212, 213, 214)
STORAGE_CONTROL_MODEL = 124
SOC_SOURCES = ((124, "ChaState"), (802, "SoC"), (713, "SoC"))

STORCTL_CHARGE = 1 << 0  # StorCtl_Mod bit: the charge limit InWRte is in force
STORCTL_DISCHARGE = 1 << 1  # StorCtl_Mod bit: the discharge limit OutWRte is in force
STORCTL_BOTH = STORCTL_CHARGE | STORCTL_DISCHARGE

_JSON_DIR = Path(sunspec2.device.models_dir) / "json"
_INT16_MIN, _INT16_MAX = -0x8000, 0x7FFF


class MapError(ValueError):
    """Registers that do not form a valid SunSpec map (the device's fault)."""


# ---------------------------------------------------------------------------------------------
# Model layouts from the standard's definitions


@dataclass(frozen=True, slots=True)
class PointLayout:
    """Where one point of a model sits, from the model definition."""

    name: str
    type: str
    offset: int  # registers from the model's ID register
    size: int  # registers
    sf: str | int | None = None  # scale-factor point name, a constant, or none
    writable: bool = False


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """The fixed (top-level) points of one SunSpec model."""

    model_id: int
    name: str
    points: Mapping[str, PointLayout]
    length: int  # registers of the fixed points, ID and L included

    def point(self, name: str) -> PointLayout | None:
        return self.points.get(name)


@cache
def model_layout(model_id: int) -> ModelLayout | None:
    """The layout of a standard model, or None for a model the definitions do not know."""
    path = _JSON_DIR / f"model_{model_id}.json"
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    group = definition["group"]
    points: dict[str, PointLayout] = {}
    offset = 0
    for point in group["points"]:
        type_name = point["type"]
        size = int(point.get("size") or sunspec2.mb.point_type_info[type_name].len)
        sf = point.get("sf")
        points[point["name"]] = PointLayout(
            name=point["name"],
            type=type_name,
            offset=offset,
            size=size,
            sf=sf if isinstance(sf, str | int) else None,
            writable=point.get("access") == "RW",
        )
        offset += size
    return ModelLayout(model_id=model_id, name=group["name"], points=points, length=offset)


# ---------------------------------------------------------------------------------------------
# Decoding and scaling


def registers_to_bytes(registers: Sequence[int]) -> bytes:
    return b"".join((r & 0xFFFF).to_bytes(2, "big") for r in registers)


_INT_TYPES: Mapping[str, tuple[int, bool, int | None]] = {
    # type: (registers, signed, "not implemented" sentinel)
    "int16": (1, True, sunspec2.mb.SUNS_UNIMPL_INT16),
    "sunssf": (1, True, sunspec2.mb.SUNS_UNIMPL_SUNSSF),
    "uint16": (1, False, sunspec2.mb.SUNS_UNIMPL_UINT16),
    "count": (1, False, sunspec2.mb.SUNS_UNIMPL_UINT16),
    "enum16": (1, False, sunspec2.mb.SUNS_UNIMPL_ENUM16),
    "bitfield16": (1, False, sunspec2.mb.SUNS_UNIMPL_BITFIELD16),
    "acc16": (1, False, sunspec2.mb.SUNS_UNIMPL_ACC16),
    "int32": (2, True, sunspec2.mb.SUNS_UNIMPL_INT32),
    "uint32": (2, False, sunspec2.mb.SUNS_UNIMPL_UINT32),
    "enum32": (2, False, sunspec2.mb.SUNS_UNIMPL_ENUM32),
    "bitfield32": (2, False, sunspec2.mb.SUNS_UNIMPL_BITFIELD32),
    "acc32": (2, False, sunspec2.mb.SUNS_UNIMPL_ACC32),
    "ipaddr": (2, False, sunspec2.mb.SUNS_UNIMPL_IPADDR),
    "int64": (4, True, sunspec2.mb.SUNS_UNIMPL_INT64),
    "uint64": (4, False, sunspec2.mb.SUNS_UNIMPL_UINT64),
    "acc64": (4, False, sunspec2.mb.SUNS_UNIMPL_ACC64),
}


def decode(type_name: str, registers: Sequence[int]) -> RawValue | None:
    """A point's raw value from its registers, or None when it says "not implemented" (or the
    type is one we do not read: pad, eui48, ipv6addr)."""
    data = registers_to_bytes(registers)
    if type_name in _INT_TYPES:
        size, signed, sentinel = _INT_TYPES[type_name]
        if len(data) != size * 2:
            raise MapError(f"{type_name} needs {size} registers, got {len(registers)}")
        value = int.from_bytes(data, "big", signed=signed)
        return None if value == sentinel else value
    if type_name in ("float32", "float64"):
        fmt, size = (">f", 4) if type_name == "float32" else (">d", 8)
        if len(data) != size:
            raise MapError(f"{type_name} needs {size // 2} registers, got {len(registers)}")
        number = float(struct.unpack(fmt, data)[0])
        return None if not math.isfinite(number) else number
    if type_name == "string":
        if not data or data[0] == 0:
            return None
        return data.rstrip(b"\0").decode("utf-8", errors="replace").strip()
    return None


def scale(raw: RawValue | None, sf: int | None) -> Number | None:
    """``raw`` * 10^``sf``; None if either is absent or the scale factor is outside -10…10.

    Negative scale factors divide, so 2305 at -1 is exactly 230.5 (not 230.50000000000003).
    """
    if raw is None or isinstance(raw, str) or sf is None:
        return None
    if not -SF_LIMIT <= sf <= SF_LIMIT:
        return None
    if isinstance(raw, float):
        return raw * 10.0**sf
    factor = int(10 ** abs(sf))
    return raw * factor if sf >= 0 else raw / factor


def as_number(value: Fraction) -> Number:
    """An exact fraction as an int when whole, else the nearest float."""
    return int(value) if value.denominator == 1 else float(value)


# ---------------------------------------------------------------------------------------------
# The map: a scan result and model blocks


@dataclass(frozen=True, slots=True)
class ModelHeader:
    """One model found by a scan: its ID, the address of its ID register and its length L."""

    model_id: int
    address: int
    length: int

    @property
    def registers(self) -> int:
        """Registers of the whole block, header included."""
        return self.length + 2

    @property
    def layout(self) -> ModelLayout | None:
        return model_layout(self.model_id)


def is_marker(registers: Sequence[int]) -> bool:
    return tuple(registers[:2]) == MARKER


def next_model_address(header: ModelHeader) -> int:
    """Where the model after ``header`` starts; MapError if that leaves the register space."""
    following = header.address + header.registers
    if following > 0xFFFF:
        raise MapError(f"model {header.model_id} at {header.address} runs past register 65535")
    return following


@dataclass(frozen=True, slots=True)
class ModelBlock:
    """The registers of one model, as read: raw and scaled values by point name."""

    header: ModelHeader
    registers: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.registers) != self.header.registers:
            raise MapError(
                f"model {self.header.model_id}: {len(self.registers)} registers read, "
                f"{self.header.registers} expected"
            )
        if self.registers[0] != self.header.model_id or self.registers[1] != self.header.length:
            raise MapError(
                f"model at {self.header.address} is now {self.registers[0]} (length "
                f"{self.registers[1]}), was {self.header.model_id} (length {self.header.length})"
            )

    def _point(self, name: str) -> PointLayout | None:
        layout = self.header.layout
        point = layout.point(name) if layout else None
        if point is None or point.offset + point.size > len(self.registers):
            return None
        return point

    def raw(self, name: str) -> RawValue | None:
        point = self._point(name)
        if point is None:
            return None
        return decode(point.type, self.registers[point.offset : point.offset + point.size])

    def scale_factor(self, name: str) -> int | None:
        """The scale factor that applies to point ``name`` (0 when it has none)."""
        point = self._point(name)
        if point is None:
            return None
        if point.sf is None:
            return 0
        if isinstance(point.sf, int):
            return point.sf
        sf = self.raw(point.sf)
        return sf if isinstance(sf, int) else None

    def value(self, name: str) -> Number | None:
        """The point in its unit (scale factor applied), or None if absent."""
        return scale(self.raw(name), self.scale_factor(name))


# ---------------------------------------------------------------------------------------------
# Storage control (model 124): a charge power set point as a window of zero width


@dataclass(frozen=True, slots=True)
class StorageControl:
    """Model 124 as a charge power set point.

    ``InWRte`` caps charging and ``OutWRte`` caps discharging, both in percent of ``WChaMax``
    (model 124 has no separate discharge maximum, so WChaMax is the reference for both, as
    Fronius documents for its GEN24). A negative ``OutWRte`` is a minimum charge, a negative
    ``InWRte`` a minimum discharge. With both limits in force (``StorCtl_Mod`` = 3) and
    ``InWRte = -OutWRte`` the window has zero width: the battery charges at exactly that power
    (discharges when negative). Any other setting is the device's own control, and no set point
    is reported.
    """

    w_cha_max: Fraction  # W
    rate_sf: int  # InOutWRte_SF

    @property
    def _step(self) -> Fraction:
        """Watts per raw unit of InWRte."""
        return self.w_cha_max * Fraction(10) ** self.rate_sf / 100

    @property
    def limit_w(self) -> Number:
        """The largest charge (and discharge) power a set point may ask for."""
        full = min(Fraction(100) / Fraction(10) ** self.rate_sf, Fraction(_INT16_MAX))
        return as_number(math.floor(full) * self._step)

    def encode(self, power_w: float) -> dict[str, int]:
        """The raw register values that hold the battery at ``power_w`` (+ charge, - discharge)."""
        limit = self.limit_w
        if not -limit <= power_w <= limit:
            raise ValueError(f"charge power {power_w} W outside ±{limit} W")
        rate = round(Fraction(power_w) / self._step)
        # the limits first, then the mode that puts them in force
        return {"OutWRte": -rate, "InWRte": rate, "StorCtl_Mod": STORCTL_BOTH}

    def decode(self, mode: int | None, in_rate: int | None, out_rate: int | None) -> Number | None:
        """The set point in force, or None when the device is under its own control."""
        if mode is None or in_rate is None or out_rate is None:
            return None
        if mode & STORCTL_BOTH != STORCTL_BOTH or in_rate != -out_rate:
            return None
        return as_number(in_rate * self._step)


def storage_control(block: ModelBlock) -> StorageControl | None:
    """The charge power control of a model 124 block, or None if it cannot be driven (a rate or
    its scale factor not implemented, no usable WChaMax)."""
    if any(block.raw(name) is None for name in ("StorCtl_Mod", "InWRte", "OutWRte")):
        return None
    rate_sf = block.scale_factor("InWRte")
    w_cha_max = block.value("WChaMax")
    if rate_sf is None or not -SF_LIMIT <= rate_sf <= SF_LIMIT:
        return None
    if w_cha_max is None or w_cha_max <= 0:
        return None
    return StorageControl(w_cha_max=Fraction(w_cha_max), rate_sf=rate_sf)


# ---------------------------------------------------------------------------------------------
# From models to canonical points

ENERGY_EXPORT = POINTS["energy_export_wh"]
"""A meter's export counter; ``energy_wh`` is its import counter."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A canonical point read from the first implemented of some SunSpec points of one model."""

    point: PointDef
    candidates: tuple[str, ...]
    negate: bool = False

    def read(self, block: ModelBlock) -> Number | None:
        for name in self.candidates:
            value = block.value(name)
            if value is not None:
                return -value if self.negate else value
        return None


INVERTER_TELEMETRY = (
    # AC power out of a PV inverter is generation: negative on the device's side of the meter
    Telemetry(POINTS["power_w"], ("W",), negate=True),
    Telemetry(POINTS["energy_wh"], ("WH",)),
    Telemetry(POINTS["voltage_v"], ("PhVphA",)),
    Telemetry(POINTS["current_a"], ("A",)),
    Telemetry(POINTS["temperature_c"], ("TmpCab", "TmpSnk", "TmpTrns", "TmpOt")),
)
METER_TELEMETRY = (
    # SunSpec meters count power positive when imported from the grid: the canonical sign
    Telemetry(POINTS["power_w"], ("W",)),
    Telemetry(POINTS["energy_wh"], ("TotWhImp",)),
    Telemetry(ENERGY_EXPORT, ("TotWhExp",)),
    Telemetry(POINTS["voltage_v"], ("PhVphA", "PhV")),
    Telemetry(POINTS["current_a"], ("A",)),
)
SOC = POINTS["soc_pct"]
CHARGE_POWER = POINTS["charge_power_w"]


@dataclass(frozen=True, slots=True)
class Profile:
    """Which models of a scanned map make up the device, and which canonical points they give."""

    device_type: DeviceType
    common: ModelHeader | None
    telemetry_model: ModelHeader | None  # the inverter or meter the telemetry comes from
    telemetry: tuple[Telemetry, ...]
    soc_model: ModelHeader | None
    soc_point: str
    control_model: ModelHeader | None  # model 124

    @property
    def models(self) -> tuple[ModelHeader, ...]:
        """The models to read on every poll (the common model is read once, by the scan)."""
        found = (self.telemetry_model, self.soc_model, self.control_model)
        return tuple(dict.fromkeys(h for h in found if h is not None))

    def points(self, control: StorageControl | None) -> tuple[PointDef, ...]:
        points = [t.point for t in self.telemetry]
        if self.soc_model is not None:
            points.append(SOC)
        if self.control_model is not None:
            charge = CHARGE_POWER.read_only()
            if control is not None:
                charge = CHARGE_POWER.with_range(-control.limit_w, control.limit_w)
            points.append(charge)
        return tuple(points)

    def values(self, blocks: Mapping[int, ModelBlock]) -> dict[str, Number]:
        """Canonical values from the blocks just read (keyed by model address)."""
        out: dict[str, Number] = {}
        if self.telemetry_model is not None:
            block = blocks[self.telemetry_model.address]
            for telemetry in self.telemetry:
                value = telemetry.read(block)
                if value is not None:
                    out[telemetry.point.name] = value
        if self.soc_model is not None:
            soc = blocks[self.soc_model.address].value(self.soc_point)
            if soc is not None:
                out[SOC.name] = soc
        if self.control_model is not None:
            block = blocks[self.control_model.address]
            control = storage_control(block)
            if control is not None:
                set_point = control.decode(
                    _int(block.raw("StorCtl_Mod")),
                    _int(block.raw("InWRte")),
                    _int(block.raw("OutWRte")),
                )
                if set_point is not None:
                    out[CHARGE_POWER.name] = set_point
        return out


def _int(value: RawValue | None) -> int | None:
    return value if isinstance(value, int) else None


def _first(headers: Sequence[ModelHeader], model_ids: Sequence[int]) -> ModelHeader | None:
    """The first model of the map whose ID is in ``model_ids`` and whose length holds its
    fixed points (a shorter one is garbage and is skipped)."""
    for header in headers:
        layout = header.layout
        if header.model_id in model_ids and layout and header.registers >= layout.length:
            return header
    return None


def profile(headers: Sequence[ModelHeader]) -> Profile:
    """What the device is, from the models a scan found: storage if it has a storage model,
    else a generator if it has an inverter, else a monitor if it has a meter."""
    common = next((h for h in headers if h.model_id == COMMON_MODEL), None)
    inverter = _first(headers, INVERTER_MODELS)
    meter = _first(headers, METER_MODELS)
    control = _first(headers, (STORAGE_CONTROL_MODEL,))
    soc_model, soc_point = None, ""
    for model_id, point in SOC_SOURCES:
        if (found := _first(headers, (model_id,))) is not None:
            soc_model, soc_point = found, point
            break
    if control is not None or soc_model is not None:
        device_type = DeviceType.STORAGE
    elif inverter is not None:
        device_type = DeviceType.GENERATOR
    elif meter is not None:
        device_type = DeviceType.MONITOR
    else:
        found_ids = ", ".join(str(h.model_id) for h in headers) or "none"
        raise MapError(f"no inverter, storage or meter model in this map (models: {found_ids})")
    telemetry_model: ModelHeader | None = None
    telemetry: tuple[Telemetry, ...] = ()
    if inverter is not None:
        telemetry_model, telemetry = inverter, INVERTER_TELEMETRY
    elif device_type is DeviceType.MONITOR:
        telemetry_model, telemetry = meter, METER_TELEMETRY
    return Profile(
        device_type=device_type,
        common=common,
        telemetry_model=telemetry_model,
        telemetry=telemetry,
        soc_model=soc_model,
        soc_point=soc_point,
        control_model=control,
    )


def write_requests(header: ModelHeader, values: Mapping[str, int]) -> list[tuple[int, list[int]]]:
    """Modbus writes (address, registers) that set raw integer ``values`` of one model's points,
    in the order given; a point right after the previous one joins its request."""
    layout = header.layout
    if layout is None:
        raise MapError(f"model {header.model_id} has no known layout")
    requests: list[tuple[int, list[int]]] = []
    for name, value in values.items():
        point = layout.point(name)
        if point is None or not point.writable or point.type not in _INT_TYPES:
            raise MapError(f"model {header.model_id} has no writable integer point {name}")
        size, signed, _ = _INT_TYPES[point.type]
        try:
            data = value.to_bytes(size * 2, "big", signed=signed)
        except OverflowError:
            raise MapError(f"{name} cannot hold {value}") from None
        registers = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        address = header.address + point.offset
        if requests and requests[-1][0] + len(requests[-1][1]) == address:
            requests[-1][1].extend(registers)
        else:
            requests.append((address, registers))
    return requests
