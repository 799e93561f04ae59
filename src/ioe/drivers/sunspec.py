"""SunSpec inverters, batteries and meters over Modbus TCP.

The driver scans the device's SunSpec map once (``SunS`` marker, then the chain of models) and
describes the device by the models it finds (see :func:`ioe.drivers.sunspec_maps.profile`):

* a storage model (124, or 802/713 for state of charge only) makes a **storage** device:
  ``soc_pct`` and the writable ``charge_power_w`` (+ charge, - discharge), set through model
  124's ``InWRte``/``OutWRte``/``StorCtl_Mod`` with its scale factors, within ±``WChaMax``;
* else an inverter model (101-103, 111-113) makes a **generator**: ``power_w`` (negative: the
  AC power it feeds out), ``energy_wh`` (lifetime AC energy), ``voltage_v``, ``current_a``,
  ``temperature_c``; a hybrid inverter with storage is a storage device with these points too;
* else a meter model (201-204, 211-214) makes a **monitor**: ``power_w`` (positive = import),
  ``energy_wh`` (imported), ``energy_export_wh``, ``voltage_v``, ``current_a``.

pymodbus's asyncio client does the Modbus; the SunSpec layouts come from pysunspec2's model
definitions (:mod:`ioe.drivers.sunspec_maps`). pysunspec2's own client is not used: it is blocking
(every call would need a worker thread, which a cancelled call leaves running on its socket) and
it turns every problem into one exception type, where we must tell an unreachable device from a
misbehaving one.

Errors: unreachable (connection refused, no answer within ``timeout_s``, a gateway reporting
its device absent) → ``read`` gives ``online: false`` and a write raises :class:`DeviceOffline`;
the next call connects again, so the device comes back without a restart. A Modbus exception
answer or a map that breaks the standard → :class:`DeviceProtocolError`. A value outside its
point's range is logged and left out of the reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from ioe.drivers import sunspec_maps as maps
from ioe.drivers.base import Driver
from ioe.drivers.model import (
    DeviceDescription,
    DeviceOffline,
    DeviceProtocolError,
    PointError,
    PointValue,
)

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")

_OFFLINE_CODES = frozenset(
    {ExcCodes.DEVICE_BUSY, ExcCodes.GATEWAY_PATH_UNAVIABLE, ExcCodes.GATEWAY_NO_RESPONSE}
)
_CONTROL_POINTS = ("StorCtl_Mod", "OutWRte", "InWRte")


# read holding registers, write multiple registers, and the exception answers to both
_ANSWERS = frozenset({0x03, 0x10, 0x83, 0x90})


def frame_problem(buffer: bytes, unit_id: int) -> str | None:
    """Why the Modbus/TCP frames at the start of ``buffer`` are not answers this driver can take,
    or None if they are (or are still incomplete).

    pymodbus raises from inside asyncio's ``data_received`` when it cannot decode a frame, which
    only reaches the event loop's exception handler while our request waits for its timeout; so
    frames are checked here first, and a device that sends garbage is told apart from a silent one.
    """
    while len(buffer) >= 8:
        protocol = int.from_bytes(buffer[2:4], "big")
        length = int.from_bytes(buffer[4:6], "big")
        if protocol != 0:
            return f"protocol id {protocol} (Modbus is 0) in {buffer[:16].hex(' ')}"
        if not 2 <= length <= 254:
            return f"frame length {length} in {buffer[:16].hex(' ')}"
        if len(buffer) < 6 + length:
            return None
        unit, function, body = buffer[6], buffer[7], buffer[8 : 6 + length]
        if unit_id and unit != unit_id:
            return f"an answer from unit {unit}, not {unit_id}"
        if function not in _ANSWERS:
            return f"function code {function:#04x}, not an answer to our requests"
        if function == 0x03 and (not body or body[0] != len(body) - 1 or body[0] % 2):
            return f"a register read answer of {len(body)} bytes with byte count {body[:1].hex()}"
        if function == 0x10 and len(body) != 4:
            return f"a register write answer of {len(body)} bytes"
        if function > 0x80 and len(body) != 1:
            return f"an exception answer of {len(body)} bytes"
        buffer = buffer[6 + length :]
    return None


class _Refused(DeviceProtocolError):
    """The device answered with a Modbus exception."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Scan:
    profile: maps.Profile
    description: DeviceDescription


class SunSpecDriver(Driver):
    """One SunSpec device (one Modbus unit id) on a Modbus TCP server."""

    name = "sunspec"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit_id: int = 1,
        base_address: int | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        super().__init__()
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} is not 0-255")
        if base_address is not None and not 0 <= base_address <= 0xFFFF - 4:
            raise ValueError(f"base address {base_address} is not a register address")
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.base_address = base_address
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._scan: _Scan | None = None
        self._online: bool | None = None
        self._snapshot: dict[str, int] | None = None  # control registers before our first write
        self._garbage: str | None = None  # what the device sent that is not a Modbus answer
        self._lost = asyncio.Event()  # set when the device closes the current connection

    def __repr__(self) -> str:
        return f"SunSpecDriver({self.host}:{self.port} unit {self.unit_id})"

    # -- Driver interface -----------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            try:
                await self._scanned()
            except DeviceOffline as exc:
                self._set_online(False, str(exc))
            except DeviceProtocolError as exc:
                log.warning("%r: not usable yet: %s", self, exc)

    async def close(self) -> None:
        async with self._lock:
            self._disconnect()

    async def describe(self) -> DeviceDescription:
        async with self._lock:
            return (await self._scanned()).description

    async def read(self) -> dict[str, PointValue]:
        async with self._lock:
            try:
                scan = await self._scanned()
                blocks = {h.address: await self._read_block(h) for h in scan.profile.models}
            except DeviceOffline as exc:
                self._set_online(False, str(exc))
                return {"online": False}
            self._set_online(True)
        values: dict[str, PointValue] = {}
        for name, value in scan.profile.values(blocks).items():
            try:
                values[name] = scan.description.point(name).check(value)
            except PointError as exc:
                log.warning("%r: ignoring a value the device should not give: %s", self, exc)
        values["online"] = True
        return values

    async def _write(self, point: str, value: PointValue) -> None:
        if point != maps.CHARGE_POWER.name or not isinstance(value, int | float):
            raise PointError(f"{point} cannot be written on a SunSpec device")
        async with self._lock:
            header, block = await self._control_block()
            control = maps.storage_control(block)
            if control is None:
                raise DeviceProtocolError(f"{self!r}: model 124 no longer offers rate control")
            try:
                registers = control.encode(value)
            except ValueError as exc:
                raise PointError(str(exc)) from None
            if self._snapshot is None:
                self._snapshot = {
                    name: raw for name in _CONTROL_POINTS if isinstance(raw := block.raw(name), int)
                }
            await self._write_points(header, registers)

    async def revert(self) -> None:
        """Give model 124's control registers back the values they had before our first write,
        the device's own mode included (a set point alone could not express that)."""
        self._originals.clear()
        if self._snapshot is None:
            return
        async with self._lock:
            header, _ = await self._control_block()
            snapshot = self._snapshot
            # the mode first: the device takes its own control back before the limits change
            restore = {name: snapshot[name] for name in _CONTROL_POINTS if name in snapshot}
            await self._write_points(header, restore)
            self._snapshot = None

    # -- the map ----------------------------------------------------------------------------------

    async def _scanned(self) -> _Scan:
        if self._scan is None:
            self._scan = await self._scan_map()
            log.info("%r: %s", self, self._scan.description.describe())
        return self._scan

    async def _scan_map(self) -> _Scan:
        base = await self._find_base()
        headers: list[maps.ModelHeader] = []
        address = base + 2
        for _ in range(maps.MAX_MODELS):
            try:
                model_id, length = await self._read_registers(address, 2)
            except _Refused:
                if not headers:
                    raise
                log.warning("%r: map ends at %d without the end model", self, address)
                break
            if model_id == maps.END_MODEL_ID:
                break
            header = maps.ModelHeader(model_id, address, length)
            headers.append(header)
            address = self._map_call(maps.next_model_address, header)
        else:
            raise DeviceProtocolError(f"{self!r}: more than {maps.MAX_MODELS} models in the map")
        profile = self._map_call(maps.profile, headers)
        identity = {"Mn": "", "Md": "", "SN": ""}
        if profile.common is not None:
            common = await self._read_block(profile.common)
            for point in identity:
                text = common.raw(point)
                identity[point] = text if isinstance(text, str) else ""
        control = None
        if profile.control_model is not None:
            control = maps.storage_control(await self._read_block(profile.control_model))
        description = DeviceDescription(
            device_type=profile.device_type,
            points=profile.points(control),
            driver=self.name,
            manufacturer=identity["Mn"],
            model=identity["Md"],
            serial=identity["SN"],
        )
        return _Scan(profile=profile, description=description)

    async def _find_base(self) -> int:
        candidates = maps.BASE_ADDRESSES if self.base_address is None else (self.base_address,)
        refused = ""
        for base in candidates:
            try:
                marker = await self._read_registers(base, 2)
            except _Refused as exc:  # ILLEGAL ADDRESS, usually: no map there
                refused = f"; last answer: {exc}"
                continue
            if maps.is_marker(marker):
                return base
        where = ", ".join(str(b) for b in candidates)
        raise DeviceProtocolError(f"{self!r}: no SunSpec map (no 'SunS' at {where}){refused}")

    async def _read_block(self, header: maps.ModelHeader) -> maps.ModelBlock:
        registers: list[int] = []
        while len(registers) < header.registers:
            count = min(maps.MAX_READ, header.registers - len(registers))
            registers += await self._read_registers(header.address + len(registers), count)
        try:
            return maps.ModelBlock(header, tuple(registers))
        except maps.MapError as exc:
            self._scan = None  # the device's map changed under us: scan again next time
            raise DeviceProtocolError(f"{self!r}: {exc}") from None

    async def _control_block(self) -> tuple[maps.ModelHeader, maps.ModelBlock]:
        header = (await self._scanned()).profile.control_model
        if header is None:
            raise PointError("this SunSpec device has no storage control (model 124)")
        return header, await self._read_block(header)

    async def _write_points(self, header: maps.ModelHeader, values: Mapping[str, int]) -> None:
        for address, registers in self._map_call(maps.write_requests, header, values):
            await self._write_registers(address, registers)

    def _map_call(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``function(...)``, with a broken map reported as the device's protocol error."""
        try:
            return function(*args, **kwargs)
        except maps.MapError as exc:
            raise DeviceProtocolError(f"{self!r}: {exc}") from None

    # -- Modbus -----------------------------------------------------------------------------------

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._disconnect()
        lost = asyncio.Event()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,  # we connect again on the next call, not in the background
            name=f"sunspec {self.host}:{self.port}",
            trace_packet=self._screen_packet,
            trace_connect=lambda connected: None if connected else lost.set(),
        )
        if not await client.connect():
            client.close()
            raise DeviceOffline(f"{self!r}: cannot connect")
        self._client, self._lost = client, lost
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _screen_packet(self, sending: bool, data: bytes) -> bytes:
        """Hold back received bytes pymodbus could not decode (see :func:`frame_problem`)."""
        if sending:
            return data
        problem = frame_problem(data, self.unit_id)
        if problem is None:
            return data
        self._garbage = problem
        self._lost.set()  # no need to wait for the timeout: this connection is done for
        return b""

    async def _answer(self, request: Awaitable[ModbusPDU]) -> ModbusPDU:
        """The answer to ``request``; ConnectionException as soon as the device drops the
        connection (pymodbus alone would wait for the timeout)."""
        answer = asyncio.ensure_future(request)
        dropped = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait((answer, dropped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
            if not answer.done():  # dropped, or we were cancelled: a late answer must not be
                answer.cancel()  # taken for the next request's, so the connection goes
                self._disconnect()
        if answer in done:
            return answer.result()
        raise ConnectionException("the device closed the connection")

    async def _execute(self, what: str, request: Awaitable[ModbusPDU]) -> ModbusPDU:
        self._garbage = None
        try:
            response = await self._answer(request)
        except ModbusIOException as exc:
            self._disconnect()
            if self._garbage is not None:
                raise DeviceProtocolError(f"{self!r}: {what}: answered {self._garbage}") from None
            if "No response" in str(exc):
                raise DeviceOffline(f"{self!r}: {what}: no answer") from None
            raise DeviceProtocolError(f"{self!r}: {what}: {exc}") from None
        except ConnectionException as exc:
            self._disconnect()
            if self._garbage is not None:
                raise DeviceProtocolError(f"{self!r}: {what}: answered {self._garbage}") from None
            raise DeviceOffline(f"{self!r}: {what}: connection lost ({exc})") from None
        except ModbusException as exc:
            self._disconnect()
            raise DeviceProtocolError(f"{self!r}: {what}: {exc}") from None
        if response.isError():
            code = response.exception_code
            try:
                name = ExcCodes(code).name
            except ValueError:
                name = f"code {code}"
            message = f"{self!r}: {what}: Modbus exception {name}"
            if code in _OFFLINE_CODES:
                raise DeviceOffline(message)
            raise _Refused(message, code)
        return response

    async def _read_registers(self, address: int, count: int) -> list[int]:
        client = await self._connected()
        what = f"reading {count} registers at {address}"
        response = await self._execute(
            what, client.read_holding_registers(address, count=count, device_id=self.unit_id)
        )
        registers = list(response.registers)
        if len(registers) != count:
            self._disconnect()
            raise DeviceProtocolError(f"{self!r}: {what}: got {len(registers)} registers")
        return registers

    async def _write_registers(self, address: int, registers: list[int]) -> None:
        client = await self._connected()
        what = f"writing {registers} at {address}"
        response = await self._execute(
            what, client.write_registers(address, registers, device_id=self.unit_id)
        )
        if response.address != address or response.count != len(registers):
            self._disconnect()
            raise DeviceProtocolError(f"{self!r}: {what}: the answer confirms something else")

    def _set_online(self, online: bool, reason: str = "") -> None:
        if online != self._online:
            if online:
                log.info("%r: online", self)
            else:
                log.warning("%s (offline)", reason)
        self._online = online
