"""A simulated EV charge point speaking OCPP 1.6 or 2.0.1 to a CSMS, for tests and demos.

It is a client built on the ``ocpp`` library's ChargePoint classes: it boots, reports status,
starts a transaction on connector (EVSE) 1 and sends periodic meter values in the wire format of
its version (1.6: MeterValues with string values and ``unit``; 2.0.1: TransactionEvent Updated
with numbers and ``unitOfMeasure``), with kWh / kW (1.6) or kWh / W×10³ (2.0.1) when
``kilo_units`` is set. SetChargingProfile and ClearChargingProfile change the current it draws
(:class:`ChargerModel`). :meth:`SimulatedChargePoint.disconnect` and
:meth:`~SimulatedChargePoint.connect` take it offline and back with the same identity. Every frame
sent and received is kept (``frames_out`` / ``frames_in``), so tests can check the exact wire
format.

The meter values are formatted here independently of the CSMS's parser, so the two check each
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ocpp import v16, v201
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Subprotocol

from ioe.drivers.ocpp_cs import route, utc_now_iso

_log = logging.getLogger(__name__)

MIN_CURRENT_A = 6.0
"""IEC 61851: below 6 A a charger cannot signal a charging current, so it pauses."""

_PURPOSES = ("ChargePointMaxProfile", "ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    profile_id: int
    stack_level: int
    purpose: str
    limit_a: float


class ChargerModel:
    """The simulated hardware and car: the profiles installed and the current they allow, and
    the energy and state of charge that current adds up to."""

    def __init__(
        self,
        *,
        max_current_a: float = 32.0,
        phases: int = 3,
        voltage_v: float = 230.0,
        soc_pct: float | None = 40.0,
        battery_wh: float = 60_000.0,
        energy_wh: float = 1_000.0,
    ) -> None:
        self.max_current_a = max_current_a
        self.phases = phases
        self.voltage_v = voltage_v
        self.soc_pct = soc_pct
        self.battery_wh = battery_wh
        self.energy_wh = energy_wh
        self.charging = False
        self.profiles: dict[int, InstalledProfile] = {}

    def install(self, profile: InstalledProfile) -> None:
        """A profile replaces the one with its id, or with its purpose and stack level."""
        self.profiles = {
            key: old
            for key, old in self.profiles.items()
            if key != profile.profile_id
            and (old.purpose, old.stack_level) != (profile.purpose, profile.stack_level)
        }
        self.profiles[profile.profile_id] = profile

    def clear(
        self,
        *,
        profile_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove the matching profiles (all, without criteria); whether any was removed."""
        if profile_id is not None:
            return self.profiles.pop(profile_id, None) is not None
        keep = {
            key: p
            for key, p in self.profiles.items()
            if (purpose is not None and p.purpose != purpose)
            or (stack_level is not None and p.stack_level != stack_level)
        }
        removed = len(keep) != len(self.profiles)
        self.profiles = keep
        return removed

    @property
    def limit_a(self) -> float | None:
        """The limit the profiles set: the highest stack level of each purpose, the lowest of
        those; ``None`` without profiles."""
        limits = []
        for purpose in _PURPOSES:
            stack = [p for p in self.profiles.values() if p.purpose == purpose]
            if stack:
                limits.append(max(stack, key=lambda p: p.stack_level).limit_a)
        return min(limits) if limits else None

    @property
    def current_a(self) -> float:
        if not self.charging or (self.soc_pct is not None and self.soc_pct >= 100):
            return 0.0
        limit = self.limit_a
        offered = self.max_current_a if limit is None else min(limit, self.max_current_a)
        return offered if offered >= MIN_CURRENT_A else 0.0

    @property
    def power_w(self) -> float:
        return self.current_a * self.voltage_v * self.phases

    def advance(self, seconds: float) -> None:
        added_wh = self.power_w * seconds / 3600
        self.energy_wh += added_wh
        if self.soc_pct is not None:
            self.soc_pct = min(100.0, self.soc_pct + 100 * added_wh / self.battery_wh)

    def amperes(self, unit: str, limit: float) -> float:
        return limit if unit == "A" else limit / (self.voltage_v * self.phases)


class _Recorder:
    """The connection as the ocpp library sees it, keeping every frame."""

    def __init__(self, connection: ClientConnection, owner: SimulatedChargePoint) -> None:
        self._connection, self._owner = connection, owner

    async def recv(self) -> str | bytes:
        frame = await self._connection.recv()
        self._owner.frames_in.append(frame if isinstance(frame, str) else frame.decode())
        return frame

    async def send(self, frame: str) -> None:
        self._owner.frames_out.append(frame)
        await self._connection.send(frame)


def _first_limit(model: ChargerModel, schedule: Mapping[str, Any]) -> float:
    periods = sorted(schedule["charging_schedule_period"], key=lambda p: p["start_period"])
    return model.amperes(schedule["charging_rate_unit"], float(periods[0]["limit"]))


def _install(
    owner: SimulatedChargePoint, profile_id: int, profile: Mapping[str, Any], schedule: Any
) -> str:
    """A SetChargingProfile's status: both versions name the same fields alike but the id and
    the schedule (one in 1.6, a list in 2.0.1)."""
    return owner.install(
        profile_id=profile_id,
        stack_level=profile["stack_level"],
        purpose=profile["charging_profile_purpose"],
        limit_a=_first_limit(owner.model, schedule),
    )


def _clear(owner: SimulatedChargePoint, profile_id: int | None, criteria: Mapping[str, Any]) -> str:
    """A ClearChargingProfile's status."""
    removed = owner.model.clear(
        profile_id=profile_id,
        purpose=criteria.get("charging_profile_purpose"),
        stack_level=criteria.get("stack_level"),
    )
    return "Accepted" if removed else "Unknown"


class _Sim16(v16.ChargePoint):  # type: ignore[misc]
    owner: SimulatedChargePoint

    @route(Action16.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: Mapping[str, Any], **_: Any
    ) -> Any:
        profile = cs_charging_profiles
        schedule = profile["charging_schedule"]
        status = _install(self.owner, profile["charging_profile_id"], profile, schedule)
        return result16.SetChargingProfile(status=status)

    @route(Action16.clear_charging_profile)
    def on_clear_charging_profile(self, **criteria: Any) -> Any:
        status = _clear(self.owner, criteria.get("id"), criteria)
        return result16.ClearChargingProfile(status=status)


class _Sim201(v201.ChargePoint):  # type: ignore[misc]
    owner: SimulatedChargePoint

    @route(Action201.set_charging_profile)
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: Mapping[str, Any], **_: Any
    ) -> Any:
        profile = charging_profile
        schedule = profile["charging_schedule"][0]
        return result201.SetChargingProfile(
            status=_install(self.owner, profile["id"], profile, schedule)
        )

    @route(Action201.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        criteria = charging_profile_criteria or {}
        status = _clear(self.owner, charging_profile_id, criteria)
        return result201.ClearChargingProfile(status=status)


class SimulatedChargePoint:
    """A charge point that dials ``csms_url``/``charge_point_id``. Use as an async context
    manager, or call :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        csms_url: str,
        charge_point_id: str,
        *,
        version: str = "1.6",
        model: ChargerModel | None = None,
        meter_interval_s: float = 0.5,
        kilo_units: bool = False,
        accept_profiles: bool = True,
        vendor: str = "IoE",
        model_name: str = "SimCharger",
        serial: str = "SIM-0001",
        id_tag: str = "04A2B3C4D5E6F7",
    ) -> None:
        if version not in ("1.6", "2.0.1"):
            raise ValueError(f"OCPP version {version!r} is not simulated")
        self.url = f"{csms_url.rstrip('/')}/{charge_point_id}"
        self.charge_point_id = charge_point_id
        self.version = version
        self.model = model or ChargerModel()
        self.meter_interval_s = meter_interval_s
        self.kilo_units = kilo_units
        self.accept_profiles = accept_profiles
        self.vendor, self.model_name, self.serial, self.id_tag = vendor, model_name, serial, id_tag
        self.frames_in: list[str] = []
        self.frames_out: list[str] = []
        self._connection: ClientConnection | None = None
        self._cp: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._booted = False
        self._transaction_id: int | str | None = None
        self._seq_no = 0
        self._last_advance = 0.0

    async def __aenter__(self) -> SimulatedChargePoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether its WebSocket is open (the CSMS may have closed it)."""
        return self._connection is not None and self._connection.state is State.OPEN

    async def start(self, *, charging: bool = True) -> None:
        """Connect, boot, report status and (by default) start charging."""
        await self.connect()
        if charging:
            await self.start_charging()

    async def close(self) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Open the WebSocket; boot the first time, report status after a reconnect."""
        subprotocol = Subprotocol(f"ocpp{self.version}")
        self._connection = await connect(self.url, subprotocols=[subprotocol], open_timeout=5)
        kind = _Sim16 if self.version == "1.6" else _Sim201
        self._cp = kind(self.charge_point_id, _Recorder(self._connection, self), response_timeout=5)
        self._cp.owner = self
        self._tasks = [asyncio.create_task(self._route(), name=f"ocpp-sim-{self.charge_point_id}")]
        self._last_advance = asyncio.get_running_loop().time()
        if not self._booted:
            await self._boot()
        await self._report_status()
        if self.model.charging:
            self._start_metering()

    async def disconnect(self) -> None:
        """Close the WebSocket (the device goes offline; its state stays)."""
        tasks, self._tasks = self._tasks, []
        connection, self._connection = self._connection, None
        for task in tasks[1:]:  # the meter loop; the router ends with the connection
            task.cancel()
        if connection is not None:
            await connection.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def start_charging(self) -> None:
        """Begin a transaction on connector (EVSE) 1 and meter it."""
        self._advance()
        if self.version == "1.6":
            result = await self._call(
                call16.StartTransaction(
                    connector_id=1,
                    id_tag=self.id_tag,
                    meter_start=round(self.model.energy_wh),
                    timestamp=utc_now_iso(),
                )
            )
            self._transaction_id = result.transaction_id
            self.model.charging = True
            await self._call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
            )
        else:
            self._transaction_id = str(uuid.uuid4())
            self.model.charging = True
            await self._transaction_event("Started", "Authorized", "Transaction.Begin")
            await self._report_status()
        self._start_metering()

    async def stop_charging(self) -> None:
        """End the transaction (the EV was unplugged)."""
        for task in self._tasks[1:]:
            task.cancel()
        self._tasks = self._tasks[:1]
        self._advance()
        self.model.charging = False
        if self.version == "1.6":
            await self._call(
                call16.StopTransaction(
                    meter_stop=round(self.model.energy_wh),
                    timestamp=utc_now_iso(),
                    transaction_id=self._transaction_id,
                    reason="EVDisconnected",
                )
            )
        else:
            await self._transaction_event("Ended", "EVCommunicationLost", "Transaction.End")
        self._transaction_id = None
        await self._report_status()

    async def send_meter_values(self, context: str = "Sample.Periodic") -> None:
        """Sample now and send it: 1.6 MeterValues; 2.0.1 TransactionEvent Updated during a
        transaction, MeterValuesRequest (e.g. ``Sample.Clock``) otherwise or when asked."""
        self._advance()
        if self.version == "1.6":
            await self._call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=self._transaction_id,
                    meter_value=[self._meter_value_16(context)],
                )
            )
        elif self._transaction_id is not None and context == "Sample.Periodic":
            await self._transaction_event("Updated", "MeterValuePeriodic", context)
        else:
            await self._call(
                call201.MeterValues(evse_id=1, meter_value=[self._meter_value_201(context)])
            )

    def install(self, *, profile_id: int, stack_level: int, purpose: str, limit_a: float) -> str:
        """Apply a SetChargingProfile; the status to answer."""
        if not self.accept_profiles:
            return "Rejected"
        self._advance()
        self.model.install(InstalledProfile(profile_id, stack_level, purpose, limit_a))
        return "Accepted"

    # --- wire ---------------------------------------------------------------------------------

    async def _route(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._cp.start()

    async def _call(self, payload: Any) -> Any:
        if self._cp is None or self._connection is None:
            raise ConnectionError(f"{self.charge_point_id} is not connected")
        return await self._cp.call(payload)

    async def _boot(self) -> None:
        if self.version == "1.6":
            payload: Any = call16.BootNotification(
                charge_point_model=self.model_name,
                charge_point_vendor=self.vendor,
                charge_point_serial_number=self.serial,
                firmware_version="1.0.0",
            )
        else:
            payload = call201.BootNotification(
                charging_station={
                    "model": self.model_name,
                    "vendorName": self.vendor,
                    "serialNumber": self.serial,
                    "firmwareVersion": "1.0.0",
                },
                reason="PowerUp",
            )
        result = await self._call(payload)
        if result.status != "Accepted":
            raise ConnectionError(f"the CSMS did not accept {self.charge_point_id}: {result}")
        self._booted = True

    async def _report_status(self) -> None:
        if self.version == "1.6":
            status = "Charging" if self.model.charging else "Available"
            await self._call(
                call16.StatusNotification(connector_id=0, error_code="NoError", status="Available")
            )
            await self._call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status=status)
            )
        else:
            await self._call(
                call201.StatusNotification(
                    timestamp=utc_now_iso(),
                    connector_status="Occupied" if self.model.charging else "Available",
                    evse_id=1,
                    connector_id=1,
                )
            )

    async def _transaction_event(self, event_type: str, trigger: str, context: str) -> None:
        info: dict[str, Any] = {
            "transactionId": self._transaction_id,
            "chargingState": "Charging" if self.model.charging else "EVConnected",
        }
        if event_type == "Ended":
            info["stoppedReason"] = "EVDisconnected"
        extra: dict[str, Any] = {}
        if event_type == "Started":
            extra = {
                "evse": {"id": 1, "connectorId": 1},
                "id_token": {"idToken": self.id_tag, "type": "ISO14443"},
            }
        await self._call(
            call201.TransactionEvent(
                event_type=event_type,
                timestamp=utc_now_iso(),
                trigger_reason=trigger,
                seq_no=self._seq_no,
                transaction_info=info,
                meter_value=[self._meter_value_201(context)],
                **extra,
            )
        )
        self._seq_no += 1

    def _start_metering(self) -> None:
        if self._connection is not None and len(self._tasks) == 1:
            name = f"ocpp-sim-meter-{self.charge_point_id}"
            self._tasks.append(asyncio.create_task(self._meter_loop(), name=name))

    async def _meter_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed, ConnectionError, TimeoutError):
            while True:
                await asyncio.sleep(self.meter_interval_s)
                await self.send_meter_values()

    def _advance(self) -> None:
        now = asyncio.get_running_loop().time()
        self.model.advance(max(0.0, now - self._last_advance))
        self._last_advance = now

    # --- meter values in each version's wire format ---------------------------------------------

    def _meter_value_16(self, context: str) -> dict[str, Any]:
        m = self.model
        energy, energy_unit = (
            (m.energy_wh / 1000, "kWh") if self.kilo_units else (m.energy_wh, "Wh")
        )
        power, power_unit = (m.power_w / 1000, "kW") if self.kilo_units else (m.power_w, "W")
        sampled: list[dict[str, str]] = [
            {
                "value": f"{energy:.3f}",
                "context": context,
                "format": "Raw",
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": energy_unit,
            },
            {
                "value": f"{power:.3f}",
                "context": context,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": power_unit,
            },
        ]
        for line in range(1, m.phases + 1):
            sampled.append(
                {
                    "value": f"{m.current_a:.1f}",
                    "context": context,
                    "measurand": "Current.Import",
                    "phase": f"L{line}",
                    "location": "Outlet",
                    "unit": "A",
                }
            )
            sampled.append(
                {
                    "value": f"{m.voltage_v:.1f}",
                    "context": context,
                    "measurand": "Voltage",
                    "phase": f"L{line}-N",
                    "location": "Outlet",
                    "unit": "V",
                }
            )
        if m.soc_pct is not None:
            sampled.append(
                {
                    "value": f"{m.soc_pct:.0f}",
                    "context": context,
                    "measurand": "SoC",
                    "location": "EV",
                    "unit": "Percent",
                }
            )
        return {"timestamp": utc_now_iso(), "sampledValue": sampled}

    def _meter_value_201(self, context: str) -> dict[str, Any]:
        m = self.model
        if self.kilo_units:
            energy = {"value": round(m.energy_wh / 1000, 6), "unitOfMeasure": {"unit": "kWh"}}
            power = {
                "value": round(m.power_w / 1000, 6),
                "unitOfMeasure": {"unit": "W", "multiplier": 3},
            }
        else:
            energy = {"value": round(m.energy_wh, 3), "unitOfMeasure": {"unit": "Wh"}}
            power = {"value": round(m.power_w, 3), "unitOfMeasure": {"unit": "W"}}
        sampled: list[dict[str, Any]] = [
            {
                **energy,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
            },
            {**power, "context": context, "measurand": "Power.Active.Import", "location": "Outlet"},
        ]
        for line in range(1, m.phases + 1):
            sampled.append(
                {
                    "value": round(m.current_a, 1),
                    "context": context,
                    "measurand": "Current.Import",
                    "phase": f"L{line}",
                    "location": "Outlet",
                    "unitOfMeasure": {"unit": "A"},
                }
            )
            sampled.append(
                {
                    "value": round(m.voltage_v, 1),
                    "context": context,
                    "measurand": "Voltage",
                    "phase": f"L{line}-N",
                    "location": "Outlet",
                    "unitOfMeasure": {"unit": "V"},
                }
            )
        if m.soc_pct is not None:
            sampled.append(
                {
                    "value": round(m.soc_pct),
                    "context": context,
                    "measurand": "SoC",
                    "location": "EV",
                    "unitOfMeasure": {"unit": "Percent"},
                }
            )
        return {"timestamp": utc_now_iso(), "sampledValue": sampled}
