"""EV chargers over OCPP 1.6 and 2.0.1: the IoE node is the Central System (CSMS).

Charge points dial in over WebSocket (``ws://host:port/<path>/<charge point id>``, subprotocol
``ocpp1.6`` or ``ocpp2.0.1``); :class:`OcppCentralSystem` answers them with the ``ocpp`` library and
keeps, per charge point identity, its boot data, connector status and latest measurements. An
:class:`OcppChargerDriver` is the device view of one identity: a consumption device whose
``current_limit_a`` is sent as a ``TxDefaultProfile`` charging profile (``chargingRateUnit`` A, one
period) and whose revert clears that profile. The identity outlives its connections, so a charger
that drops off is ``online: false`` and comes back by reconnecting, without restarting anything.

The wire-format logic is pure and separate: :func:`parse_meter_values` turns a ``meterValue`` list
into a :class:`MeterReading` in canonical units (1.6 string values with ``unit`` Wh/kWh…; 2.0.1
numbers with ``unitOfMeasure`` ``unit`` and ``multiplier``), :func:`combine_connectors` makes one
reading of a multi-connector charger, :func:`tx_default_profile` builds the profile sent, and
:func:`frame_problem` judges raw OCPP-J frames before the library sees them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from ssl import SSLContext
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import ocpp.routing
from ocpp import v16, v201
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ioe.drivers.base import Driver
from ioe.drivers.model import (
    POINTS,
    DeviceDescription,
    DeviceOffline,
    DeviceProtocolError,
    PointError,
    PointValue,
)
from ioe.vocabulary import DeviceType

_log = logging.getLogger(__name__)


class OcppVersion(StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"

    @property
    def subprotocol(self) -> Subprotocol:
        return Subprotocol(f"ocpp{self.value}")


# ---------------------------------------------------------------------------------------------
# Meter values (pure)
# ---------------------------------------------------------------------------------------------

_POINT_FIELDS = ("energy_wh", "power_w", "current_a", "voltage_v", "soc_pct")


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Measurements of a charge point or one of its connectors, in canonical units."""

    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc_pct: float | None = None

    def updated(self, newer: MeterReading) -> MeterReading:
        """This reading with every value that ``newer`` has replaced."""
        return MeterReading(
            **{
                name: getattr(newer, name)
                if getattr(newer, name) is not None
                else getattr(self, name)
                for name in _POINT_FIELDS
            }
        )

    def stopped(self) -> MeterReading:
        """After a transaction ends no current flows, even if no final sample said so."""
        return replace(self, power_w=0.0, current_a=0.0)

    def points(self) -> dict[str, PointValue]:
        return {name: value for name in _POINT_FIELDS if (value := getattr(self, name)) is not None}


@dataclass(frozen=True, slots=True)
class MeterParse:
    """The reading found in a ``meterValue`` list, and what was wrong with the rest of it."""

    reading: MeterReading
    problems: tuple[str, ...] = ()


# measurand -> (quantity, unit -> factor to the quantity's canonical unit, natural unit)
_MEASURANDS: Mapping[str, tuple[str, Mapping[str, float], str]] = {
    "Energy.Active.Import.Register": ("energy_wh", {"Wh": 1.0, "kWh": 1000.0}, "Wh"),
    "Power.Active.Import": ("power_w", {"W": 1.0, "kW": 1000.0}, "W"),
    "Power.Active.Export": ("export_w", {"W": 1.0, "kW": 1000.0}, "W"),
    "Current.Import": ("current_a", {"A": 1.0}, "A"),
    "Voltage": ("voltage_v", {"V": 1.0}, "V"),
    "SoC": ("soc_pct", {"Percent": 1.0}, "Percent"),
}
_DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# Where a value was measured, best first; Body and Cable (temperatures) are not the flow.
_LOCATION_RANK = {None: 0, "Outlet": 0, "EV": 1, "Inlet": 2}
_LINE = {"L1": 1, "L2": 2, "L3": 3, "L1-N": 1, "L2-N": 2, "L3-N": 3}
_RANGES: Mapping[str, tuple[float, float]] = {
    "energy_wh": (0.0, math.inf),
    "voltage_v": (0.0, math.inf),
    "soc_pct": (0.0, 100.0),
}


@dataclass(frozen=True, slots=True)
class _Sample:
    quantity: str
    phase: str | None
    location: str | None
    value: float


def parse_meter_values(version: OcppVersion | str, meter_values: object) -> MeterParse:
    """The latest values in a ``meterValue`` list (MeterValues, StopTransaction's
    ``transactionData``, TransactionEvent), as the ``ocpp`` library hands it over (keys in
    snake_case). Samples that make no sense are left out and described in ``problems``."""
    version = OcppVersion(version)
    problems: list[str] = []
    if not isinstance(meter_values, list):
        return MeterParse(MeterReading(), ("meterValue is not a list",))
    stamped: list[tuple[datetime, MeterReading]] = []
    for entry in meter_values:
        if not isinstance(entry, Mapping):
            problems.append("a meterValue entry is not an object")
            continue
        when = _timestamp(entry.get("timestamp"))
        if when is None:
            problems.append(f"meterValue timestamp {entry.get('timestamp')!r} is not a date-time")
            continue
        sampled = entry.get("sampled_value")
        if not isinstance(sampled, list):
            problems.append("sampledValue is not a list")
            continue
        samples = []
        for raw in sampled:
            sample = _sample(version, raw, problems)
            if sample is not None:
                samples.append(sample)
        stamped.append((when, _reading(samples, problems)))
    reading = MeterReading()
    for _, newer in sorted(stamped, key=lambda pair: pair[0]):
        reading = reading.updated(newer)
    return MeterParse(reading, tuple(problems))


def register_reading(meter_wh: object) -> MeterParse:
    """A 1.6 ``meterStart`` / ``meterStop``: the energy register in whole Wh."""
    if type(meter_wh) is int and meter_wh >= 0:
        return MeterParse(MeterReading(energy_wh=float(meter_wh)))
    return MeterParse(MeterReading(), (f"meter register {meter_wh!r} is not a count of Wh",))


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _sample(version: OcppVersion, raw: object, problems: list[str]) -> _Sample | None:
    if not isinstance(raw, Mapping):
        problems.append("a sampledValue is not an object")
        return None
    measurand = raw.get("measurand", _DEFAULT_MEASURAND)
    known = _MEASURANDS.get(measurand) if isinstance(measurand, str) else None
    if known is None:
        return None  # a measurand IoE does not use (Frequency, Temperature, …)
    quantity, factors, natural = known
    if version is OcppVersion.V16:
        if raw.get("format", "Raw") != "Raw":
            return None  # SignedData: the value is a signed blob, not a number
        unit, multiplier, text = raw.get("unit", natural), 0, raw.get("value")
        try:
            value = float(text) if isinstance(text, str) else math.nan
        except ValueError:
            value = math.nan
    else:
        measure = raw.get("unit_of_measure", {})
        if not isinstance(measure, Mapping):
            problems.append(f"{measurand}: unitOfMeasure is not an object")
            return None
        unit, multiplier = measure.get("unit", natural), measure.get("multiplier", 0)
        number = raw.get("value")
        is_number = isinstance(number, int | float) and not isinstance(number, bool)
        value = float(number) if is_number else math.nan  # type: ignore[arg-type]
    if not math.isfinite(value):
        problems.append(f"{measurand}: value {raw.get('value')!r} is not a finite number")
        return None
    fits = isinstance(unit, str) and unit in factors
    if not fits or type(multiplier) is not int or not -9 <= multiplier <= 9:
        problems.append(f"{measurand}: unit {unit!r} (multiplier {multiplier!r}) does not fit")
        return None
    phase, location = raw.get("phase"), raw.get("location")
    if not all(item is None or isinstance(item, str) for item in (phase, location)):
        problems.append(f"{measurand}: a phase or location that is not a name")
        return None
    if location not in _LOCATION_RANK:
        return None
    scaled = round(value * factors[unit] * 10.0**multiplier, 6)  # no float noise from ×1000
    return _Sample(quantity, phase, location, scaled)


def _reading(samples: Iterable[_Sample], problems: list[str]) -> MeterReading:
    by_quantity: dict[str, list[_Sample]] = {}
    for sample in samples:
        by_quantity.setdefault(sample.quantity, []).append(sample)
    values: dict[str, float] = {}
    for quantity, group in by_quantity.items():
        best = min(_LOCATION_RANK[s.location] for s in group)
        value = _across_phases(quantity, [s for s in group if _LOCATION_RANK[s.location] == best])
        if value is None:
            continue
        low, high = _RANGES.get(quantity, (-math.inf, math.inf))
        if not low <= value <= high:
            problems.append(f"{quantity} = {value} is outside {low}..{high}")
            continue
        values[quantity] = value
    export = values.pop("export_w", None)
    if export is not None:
        values["power_w"] = values.get("power_w", 0.0) - export
    return MeterReading(**values)


def _across_phases(quantity: str, samples: Sequence[_Sample]) -> float | None:
    """A total value wins; otherwise energy and power add up over the lines, current is the
    highest line current (what a per-phase limit constrains) and voltage the mean line-to-neutral
    voltage."""
    totals = [s.value for s in samples if s.phase is None]
    if totals:
        return totals[-1]
    lines = {_LINE[s.phase]: s.value for s in samples if s.phase in _LINE}
    if not lines or quantity == "soc_pct":
        return None
    if quantity == "current_a":
        return max(lines.values())
    if quantity == "voltage_v":
        return sum(lines.values()) / len(lines)
    return sum(lines.values())


def combine_connectors(readings: Mapping[int, MeterReading]) -> MeterReading:
    """One reading for the charge point: connector (EVSE) 0 is the main meter and wins where it
    has a value; otherwise energy and power are summed over the connectors, current is the
    highest, voltage the mean, and SoC is known only when a single connector reports one."""
    main = readings.get(0, MeterReading())
    outlets = [reading for number, reading in sorted(readings.items()) if number != 0]

    def pick(name: str, how: Callable[[list[float]], float | None]) -> float | None:
        value: float | None = getattr(main, name)
        if value is not None:
            return value
        found = [v for r in outlets if (v := getattr(r, name)) is not None]
        return how(found) if found else None

    return MeterReading(
        energy_wh=pick("energy_wh", sum),
        power_w=pick("power_w", sum),
        current_a=pick("current_a", max),
        voltage_v=pick("voltage_v", lambda v: sum(v) / len(v)),
        soc_pct=pick("soc_pct", lambda v: v[0] if len(v) == 1 else None),
    )


# ---------------------------------------------------------------------------------------------
# Charging profiles and frames (pure)
# ---------------------------------------------------------------------------------------------


def tx_default_profile(
    version: OcppVersion | str, limit_a: float, *, profile_id: int, stack_level: int
) -> dict[str, Any]:
    """The charging profile (wire format) that caps every connector at ``limit_a`` amperes:
    ``csChargingProfiles`` of a 1.6 SetChargingProfile.req, ``chargingProfile`` of a 2.0.1
    SetChargingProfileRequest. Relative, so that a charger's clock cannot delay it; the limit
    has the one decimal both versions accept."""
    period = {"startPeriod": 0, "limit": round(float(limit_a), 1)}
    if OcppVersion(version) is OcppVersion.V16:
        return {
            "chargingProfileId": profile_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]},
        }
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": profile_id, "chargingRateUnit": "A", "chargingSchedulePeriod": [period]}
        ],
    }


_MAX_MESSAGE_ID = 36
_FRAME_ERROR = {OcppVersion.V16: "FormationViolation", OcppVersion.V201: "RpcFrameworkError"}


def frame_problem(raw: str | bytes, version: OcppVersion | str) -> tuple[str, str | None] | None:
    """``None`` for a well-formed OCPP-J frame; otherwise why not, and the CALLERROR to send
    back when the frame is a CALL whose message id can be read (else nobody can be answered)."""
    version = OcppVersion(version)
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "not JSON", None
    except RecursionError:
        return "nested too deeply", None
    if not isinstance(frame, list) or not frame:
        return "not a JSON array", None
    kind = frame[0]
    message_id = frame[1] if len(frame) > 1 else None
    readable_id = isinstance(message_id, str) and 0 < len(message_id) <= _MAX_MESSAGE_ID
    shapes = {2: (str, str, dict), 3: (str, dict), 4: (str, str, str, dict)}
    if type(kind) is not int or kind not in shapes:
        if readable_id and version is OcppVersion.V201:
            return f"unknown message type {kind!r}", _call_error(
                message_id, "MessageTypeNotSupported", f"message type {kind!r} is not supported"
            )
        return f"unknown message type {kind!r}", None
    shape = shapes[kind]
    rest = frame[1:]
    if len(rest) == len(shape) and readable_id and all(map(isinstance, rest, shape)):
        return None
    reason = f"message type {kind} needs {len(shape) + 1} elements of the right types"
    if kind == 2 and readable_id:
        return reason, _call_error(message_id, _FRAME_ERROR[version], reason)
    return reason, None


def _call_error(message_id: object, code: str, description: str) -> str:
    return json.dumps([4, message_id, code, description, {}], separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# The CSMS
# ---------------------------------------------------------------------------------------------

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def route(action: str) -> Callable[[_Handler], _Handler]:
    """``ocpp.routing.on``, typed: marks a method as the handler of ``action``."""
    decorator: Callable[[_Handler], _Handler] = ocpp.routing.on(action)
    return decorator


def utc_now_iso() -> str:
    """The time as OCPP writes it (ISO 8601, UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial: str = ""
    firmware: str = ""


@dataclass(eq=False)
class _Station:
    """What the CSMS knows of one charge point identity; it outlives the connections."""

    charge_point_id: str
    version: OcppVersion | None = None
    boot: BootInfo | None = None
    session: _Session | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    readings: dict[int, MeterReading] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    transactions: dict[str, int] = field(default_factory=dict)  # transaction id -> connector
    limit_a: float | None = None  # the limit of IoE's profile, once the charger accepted it

    def measured(self, connector: int, parse: MeterParse) -> None:
        for problem in parse.problems:
            _log.warning(
                "charge point %s sent a bad meter value: %s", self.charge_point_id, problem
            )
        old = self.readings.get(connector, MeterReading())
        self.readings[connector] = old.updated(parse.reading)

    def transaction_ended(self, transaction_id: str, final: MeterParse) -> None:
        connector = self.transactions.pop(transaction_id, None)
        if connector is not None:
            self.measured(connector, final)
            self.readings[connector] = self.readings[connector].stopped()
            return
        _log.warning(
            "charge point %s ended unknown transaction %s", self.charge_point_id, transaction_id
        )
        for number in set(self.readings) - {0} - set(self.transactions.values()):
            self.readings[number] = self.readings[number].stopped()


class _Session:
    """One WebSocket connection of a charge point, mixed into the library's ChargePoint."""

    _station: _Station
    _system: OcppCentralSystem
    _closed: asyncio.Event
    id: str
    _ocpp_version: str

    def _attach(self, station: _Station, system: OcppCentralSystem) -> None:
        self._station, self._system, self._closed = station, system, asyncio.Event()

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Judge the frame first: a malformed CALL gets a CALLERROR, garbage a log line."""
        problem = frame_problem(raw_msg, self._ocpp_version)
        if problem is None:
            await super().route_message(raw_msg)  # type: ignore[misc]
            return
        reason, reply = problem
        _log.warning(
            "charge point %s sent a malformed frame (%s): %.200r", self.id, reason, raw_msg
        )
        if reply is not None:
            await self._send(reply)

    if TYPE_CHECKING:  # provided by the library's ChargePoint

        async def _send(self, message: str) -> None: ...
        async def call(self, payload: Any, suppress: bool = True) -> Any: ...
        async def start(self) -> None: ...

        _connection: ServerConnection

    async def request(self, payload: Any) -> Any:
        """Send a CALL and return its result; library errors mapped to ours."""
        action = type(payload).__name__
        if self._closed.is_set():
            raise DeviceOffline(f"charge point {self.id} is not connected")
        waiting = asyncio.ensure_future(self.call(payload, suppress=False))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait(
                (waiting, closed),
                timeout=self._system.call_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (waiting, closed):
                task.cancel()
            await asyncio.gather(waiting, closed, return_exceptions=True)
        if waiting.cancelled():
            why = "disconnected during" if self._closed.is_set() else "did not answer"
            raise DeviceOffline(f"charge point {self.id} {why} {action}")
        try:
            return waiting.result()
        except ConnectionClosed:
            raise DeviceOffline(f"charge point {self.id} disconnected during {action}") from None
        except OCPPError as err:
            raise DeviceProtocolError(
                f"charge point {self.id} answered {action} with {type(err).__name__}: {err}"
            ) from err
        except (UnknownCallErrorCodeError, TypeError) as err:
            raise DeviceProtocolError(f"charge point {self.id} answered {action}: {err}") from err

    def _booted(self, info: BootInfo) -> None:
        self._station.boot = info
        _log.info("charge point %s (OCPP %s) booted: %s", self.id, self._ocpp_version, info)

    def _status(self, connector: int, status: str) -> None:
        self._station.status[connector] = status


class _Session16(_Session, v16.ChargePoint):  # type: ignore[misc]
    @route(Action16.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **extra: Any
    ) -> Any:
        serial = extra.get("charge_point_serial_number") or extra.get("charge_box_serial_number")
        self._booted(
            BootInfo(
                vendor=charge_point_vendor,
                model=charge_point_model,
                serial=serial or "",
                firmware=extra.get("firmware_version", ""),
            )
        )
        return result16.BootNotification(
            current_time=utc_now_iso(),
            interval=self._system.heartbeat_interval_s,
            status="Accepted",
        )

    @route(Action16.heartbeat)
    def on_heartbeat(self) -> Any:
        return result16.Heartbeat(current_time=utc_now_iso())

    @route(Action16.status_notification)
    def on_status_notification(self, connector_id: int, status: str, **_: Any) -> Any:
        self._status(connector_id, status)
        return result16.StatusNotification()

    @route(Action16.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @route(Action16.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[Any], **_: Any) -> Any:
        self._station.measured(connector_id, parse_meter_values(OcppVersion.V16, meter_value))
        return result16.MeterValues()

    @route(Action16.start_transaction)
    def on_start_transaction(self, connector_id: int, meter_start: int, **_: Any) -> Any:
        transaction_id = next(self._system._transaction_ids)
        self._station.transactions[str(transaction_id)] = connector_id
        self._station.measured(connector_id, register_reading(meter_start))
        return result16.StartTransaction(
            transaction_id=transaction_id, id_tag_info={"status": "Accepted"}
        )

    @route(Action16.stop_transaction)
    def on_stop_transaction(
        self,
        meter_stop: int,
        transaction_id: int,
        transaction_data: list[Any] | None = None,
        **_: Any,
    ) -> Any:
        final = parse_meter_values(OcppVersion.V16, transaction_data or [])
        stop = register_reading(meter_stop)
        final = MeterParse(final.reading.updated(stop.reading), final.problems + stop.problems)
        self._station.transaction_ended(str(transaction_id), final)
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})

    @route(Action16.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return result16.DataTransfer(status="UnknownVendorId")

    @route(Action16.firmware_status_notification)
    def on_firmware_status_notification(self, status: str) -> Any:
        _log.info("charge point %s firmware: %s", self.id, status)
        return result16.FirmwareStatusNotification()

    @route(Action16.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, status: str) -> Any:
        return result16.DiagnosticsStatusNotification()


class _Session201(_Session, v201.ChargePoint):  # type: ignore[misc]
    @route(Action201.boot_notification)
    def on_boot_notification(self, charging_station: Mapping[str, Any], **_: Any) -> Any:
        self._booted(
            BootInfo(
                vendor=charging_station["vendor_name"],
                model=charging_station["model"],
                serial=charging_station.get("serial_number", ""),
                firmware=charging_station.get("firmware_version", ""),
            )
        )
        return result201.BootNotification(
            current_time=utc_now_iso(),
            interval=self._system.heartbeat_interval_s,
            status="Accepted",
        )

    @route(Action201.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        return result201.Heartbeat(current_time=utc_now_iso())

    @route(Action201.status_notification)
    def on_status_notification(self, evse_id: int, connector_status: str, **_: Any) -> Any:
        self._status(evse_id, connector_status)
        return result201.StatusNotification()

    @route(Action201.authorize)
    def on_authorize(self, **_: Any) -> Any:
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @route(Action201.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[Any], **_: Any) -> Any:
        self._station.measured(evse_id, parse_meter_values(OcppVersion.V201, meter_value))
        return result201.MeterValues()

    @route(Action201.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        transaction_info: Mapping[str, Any],
        meter_value: list[Any] | None = None,
        evse: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        station = self._station
        transaction_id = transaction_info["transaction_id"]
        parse = parse_meter_values(OcppVersion.V201, meter_value or [])
        if evse is not None:
            station.transactions[transaction_id] = evse["id"]
        if event_type == "Ended":
            station.transaction_ended(transaction_id, parse)
        else:
            station.measured(station.transactions.get(transaction_id, 1), parse)
        return result201.TransactionEvent()

    @route(Action201.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return result201.DataTransfer(status="UnknownVendorId")

    @route(Action201.firmware_status_notification)
    def on_firmware_status_notification(self, status: str, **_: Any) -> Any:
        _log.info("charge point %s firmware: %s", self.id, status)
        return result201.FirmwareStatusNotification()

    @route(Action201.notify_event)
    def on_notify_event(self, **_: Any) -> Any:
        return result201.NotifyEvent()

    @route(Action201.security_event_notification)
    def on_security_event_notification(self, **event: Any) -> Any:
        _log.info("charge point %s security event: %s", self.id, event.get("type"))
        return result201.SecurityEventNotification()


_SESSIONS: Mapping[Subprotocol, tuple[OcppVersion, Callable[..., _Session]]] = {
    OcppVersion.V201.subprotocol: (OcppVersion.V201, _Session201),
    OcppVersion.V16.subprotocol: (OcppVersion.V16, _Session16),
}


def charge_point_id_from_path(path: str) -> str:
    """The identity a charge point puts last in its URL path (``/ocpp/CP-1`` → ``CP-1``)."""
    segments = [s for s in urlsplit(path).path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


class OcppCentralSystem:
    """A WebSocket server that charge points connect to. Use as an async context manager.

    ``charge_points``, if given, is the set of identities allowed to connect (others get HTTP
    404). ``port`` 0 picks a free port (read it back from :attr:`port`). ``ssl`` makes it
    ``wss://``. A charger that vanishes without closing is noticed by WebSocket pings
    (``ping_interval_s``, and as long again for the answer).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        charge_points: Collection[str] | None = None,
        heartbeat_interval_s: int = 60,
        call_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        profile_id: int = 1,
        stack_level: int = 0,
        ssl: SSLContext | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl
        self._port = port
        self._allowed = frozenset(charge_points) if charge_points is not None else None
        self.heartbeat_interval_s = heartbeat_interval_s
        self.call_timeout_s = call_timeout_s
        self.ping_interval_s = ping_interval_s
        self.profile_id = profile_id
        self.stack_level = stack_level
        self._transaction_ids = itertools.count(1)
        self._stations: dict[str, _Station] = {}
        self._server: Server | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> OcppCentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self._port,
            subprotocols=list(_SESSIONS),
            process_request=self._check_request,
            ping_interval=self.ping_interval_s,
            ssl=self._ssl,
        )
        if self._port == 0:
            self._port = self._server.sockets[0].getsockname()[1]
        _log.info("OCPP central system listening on %s", self.url)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The URL charge points are configured with, without their identity."""
        return f"{'wss' if self._ssl else 'ws'}://{self.host}:{self._port}"

    @property
    def connected(self) -> list[str]:
        return sorted(s.charge_point_id for s in self._stations.values() if s.session)

    def charger(self, charge_point_id: str, *, max_current_a: float = 32.0) -> OcppChargerDriver:
        """The driver of one charge point, connected or not (yet)."""
        return OcppChargerDriver(self, charge_point_id, max_current_a=max_current_a)

    async def wait_for(
        self, charge_point_id: str, timeout: float = 10.0, *, max_current_a: float = 32.0
    ) -> OcppChargerDriver:
        """The driver of ``charge_point_id`` once it is connected (DeviceOffline after
        ``timeout`` seconds)."""
        station = self._station(charge_point_id)
        try:
            await asyncio.wait_for(station.connected.wait(), timeout)
        except TimeoutError:
            raise DeviceOffline(
                f"charge point {charge_point_id} did not connect within {timeout} s"
            ) from None
        return self.charger(charge_point_id, max_current_a=max_current_a)

    def _station(self, charge_point_id: str) -> _Station:
        station = self._stations.get(charge_point_id)
        if station is None:
            station = self._stations[charge_point_id] = _Station(charge_point_id)
        return station

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        identity = charge_point_id_from_path(request.path)
        if not identity or (self._allowed is not None and identity not in self._allowed):
            _log.warning("refused a charge point connecting as %r", identity)
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        identity = charge_point_id_from_path(connection.request.path if connection.request else "")
        version, kind = _SESSIONS[connection.subprotocol or Subprotocol("")]
        station = self._station(identity)
        session = kind(
            identity, connection, response_timeout=self.call_timeout_s, logger=_log.getChild("wire")
        )
        session._attach(station, self)
        previous, station.session, station.version = station.session, session, version
        station.connected.set()
        _log.info("charge point %s connected (OCPP %s)", identity, version)
        try:
            if previous is not None:  # closing may wait on a dead peer: not in the way
                _log.info("charge point %s reconnected; dropping its old connection", identity)
                closing = asyncio.create_task(previous._connection.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
            await session.start()
        except ConnectionClosed:
            pass
        except Exception:
            _log.exception("connection of charge point %s failed", identity)
        finally:
            session._closed.set()
            if station.session is session:
                station.session = None
                station.connected.clear()
                _log.info("charge point %s disconnected", identity)

    async def _request(self, charge_point_id: str, payload: Any) -> Any:
        session = self._station(charge_point_id).session
        if session is None:
            raise DeviceOffline(f"charge point {charge_point_id} is not connected")
        return await session.request(payload)

    async def _set_limit(self, charge_point_id: str, limit_a: float) -> None:
        station = self._station(charge_point_id)
        profile = tx_default_profile(
            station.version or OcppVersion.V16,
            limit_a,
            profile_id=self.profile_id,
            stack_level=self.stack_level,
        )
        if station.version is OcppVersion.V201:
            payload: Any = call201.SetChargingProfile(evse_id=0, charging_profile=profile)
        else:
            payload = call16.SetChargingProfile(connector_id=0, cs_charging_profiles=profile)
        result = await self._request(charge_point_id, payload)
        if result.status != "Accepted":
            raise PointError(
                f"charge point {charge_point_id} refused a limit of {limit_a} A ({result.status})"
            )
        station.limit_a = round(float(limit_a), 1)

    async def _clear_limit(self, charge_point_id: str) -> None:
        station = self._station(charge_point_id)
        if station.version is OcppVersion.V201:
            payload: Any = call201.ClearChargingProfile(charging_profile_id=self.profile_id)
        else:
            payload = call16.ClearChargingProfile(id=self.profile_id)
        result = await self._request(charge_point_id, payload)
        if result.status not in ("Accepted", "Unknown"):  # Unknown: it was already gone
            raise DeviceProtocolError(
                f"charge point {charge_point_id} answered ClearChargingProfile with {result.status}"
            )
        station.limit_a = None


class OcppChargerDriver(Driver):
    """One charge point as a consumption device: power, energy, current, voltage, the EV's SoC
    when the charger reports it, and ``current_limit_a`` to control.

    ``current_limit_a`` reads back the limit of the profile IoE installed (absent when there is
    none: the charger then follows its own settings). :meth:`revert` clears that profile if
    there was none before IoE's first write, and otherwise sets the earlier limit again.
    """

    name = "ocpp"

    def __init__(
        self, system: OcppCentralSystem, charge_point_id: str, *, max_current_a: float = 32.0
    ) -> None:
        super().__init__()
        self._system = system
        self.charge_point_id = charge_point_id
        self._max_current_a = max_current_a
        self._clear_on_revert = False

    @property
    def _state(self) -> _Station:
        return self._system._station(self.charge_point_id)

    @property
    def version(self) -> OcppVersion | None:
        return self._state.version

    @property
    def status(self) -> dict[int, str]:
        """Last reported status per connector (1.6) or EVSE (2.0.1); 0 is the whole charger."""
        return dict(self._state.status)

    async def describe(self) -> DeviceDescription:
        boot = self._state.boot or BootInfo(vendor="", model="")
        return DeviceDescription(
            device_type=DeviceType.CONSUMPTION,
            points=(
                POINTS["power_w"],
                POINTS["energy_wh"],
                POINTS["current_a"],
                POINTS["voltage_v"],
                POINTS["soc_pct"],
                POINTS["current_limit_a"].with_range(0, self._max_current_a),
            ),
            driver=self.name,
            manufacturer=boot.vendor,
            model=boot.model,
            serial=boot.serial,
        )

    async def read(self) -> dict[str, PointValue]:
        state = self._state
        if state.session is None:
            return {"online": False}
        values = combine_connectors(state.readings).points()
        if state.limit_a is not None:
            values["current_limit_a"] = state.limit_a
        values["online"] = True
        return values

    async def write(self, point: str, value: object) -> None:
        first = point not in self._originals and not self._clear_on_revert
        await super().write(point, value)
        if first and point not in self._originals:
            self._clear_on_revert = True  # no IoE profile before: revert clears ours

    async def revert(self) -> None:
        if self._clear_on_revert:
            await self._system._clear_limit(self.charge_point_id)
            self._clear_on_revert = False
            self._originals.clear()
            return
        await super().revert()

    async def _write(self, point: str, value: PointValue) -> None:
        await self._system._set_limit(self.charge_point_id, float(value))
