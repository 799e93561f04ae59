"""A SunSpec device on loopback: a pymodbus TCP server serving a real SunSpec register map.

The map is laid out by pysunspec2's own model classes from the SunSpec model definitions
(``sunspec2.device.Model``), independently of the driver's layout code, so the driver and this
server agree only if both read the standard the same way. Points not given a value hold the
standard's "not implemented" sentinel, as on a real device::

    inverter = SunSpecMap([
        (1, {"Mn": "ACME", "Md": "Hybrid 5", "SN": "A-1"}),
        (103, {"W": 4200, "W_SF": 0, ...}),
        (124, {"WChaMax": 500, "WChaMax_SF": 1, ...}),
    ])
    async with SunSpecServer({1: inverter}) as server:
        driver = SunSpecDriver("127.0.0.1", server.port)

Tests change values with :meth:`SunSpecMap.set` (raw register values, before scaling), read what
the driver wrote with :meth:`SunSpecMap.get` and :attr:`SunSpecServer.writes`, make every request
fail with a Modbus exception (:attr:`SunSpecServer.fail_reads` / ``fail_writes``), slow the
answers down (:attr:`SunSpecServer.delay_s`), and take the device offline and back with
:meth:`SunSpecServer.stop` / :meth:`SunSpecServer.start` (same port). A write to a register that
is not part of a writable point is refused with ILLEGAL ADDRESS, as devices do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import sunspec2.device
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

RawValue = int | float | str | None

_MARKER = [0x5375, 0x6E53]  # "SunS"
_END = [0xFFFF, 0]


@dataclass(frozen=True, slots=True)
class Write:
    """One write request the server accepted."""

    unit: int
    address: int
    registers: tuple[int, ...]


class SunSpecMap:
    """The holding registers of one unit: ``SunS``, the models in order, the end model."""

    def __init__(
        self,
        models: Sequence[tuple[int, Mapping[str, RawValue]]],
        *,
        base_address: int = 40000,
    ) -> None:
        self.base_address = base_address
        self._models: list[tuple[int, Any]] = []  # (address, sunspec2 Model)
        self.registers: list[int] = list(_MARKER)
        self._writable: set[int] = set()
        for model_id, values in models:
            address = base_address + len(self.registers)
            model = sunspec2.device.Model(model_id=model_id)
            if model.error_info:
                raise ValueError(f"model {model_id}: {model.error_info.strip()}")
            for name, value in values.items():
                self._point(model, name).set_value(value)
            data = model.get_mb()
            self.registers.extend(int.from_bytes(data[i : i + 2]) for i in range(0, len(data), 2))
            for point in model.points.values():
                if point.pdef.get("access") == "RW":
                    self._writable.update(
                        range(address + point.offset, address + point.offset + point.len)
                    )
            self._models.append((address, model))
        self.registers.extend(_END)

    @staticmethod
    def _point(model: Any, name: str) -> Any:
        try:
            return model.points[name]
        except KeyError:
            raise KeyError(f"model {model.model_id} has no point {name!r}") from None

    def _find(self, model_id: int, index: int) -> tuple[int, Any]:
        found = [(a, m) for a, m in self._models if m.model_id == model_id]
        if len(found) <= index:
            raise KeyError(f"no model {model_id} #{index} in this map")
        return found[index]

    def model_address(self, model_id: int, index: int = 0) -> int:
        """Address of the model's ID register."""
        return self._find(model_id, index)[0]

    def address(self, model_id: int, point: str, index: int = 0) -> int:
        """Address of a point's first register."""
        address, model = self._find(model_id, index)
        return int(address + self._point(model, point).offset)

    def get(self, model_id: int, point: str, index: int = 0) -> RawValue:
        """A point's raw value as the registers hold it now (None when "not implemented")."""
        address, model = self._find(model_id, index)
        p = self._point(model, point)
        start = address + p.offset - self.base_address
        data = b"".join(r.to_bytes(2, "big") for r in self.registers[start : start + p.len])
        value = p.info.data_to(data)
        return value if p.info.is_impl(value) else None

    def set(self, model_id: int, point: str, value: RawValue, index: int = 0) -> None:
        """Give a point a raw value (None: "not implemented"), as the device would."""
        address, model = self._find(model_id, index)
        p = self._point(model, point)
        p.set_value(value)
        data = p.get_mb()
        start = address + p.offset - self.base_address
        self.registers[start : start + p.len] = [
            int.from_bytes(data[i : i + 2]) for i in range(0, len(data), 2)
        ]

    def set_registers(self, address: int, registers: Sequence[int]) -> None:
        """Overwrite registers with anything at all (to serve a broken map)."""
        start = address - self.base_address
        if start < 0 or start + len(registers) > len(self.registers):
            raise IndexError("outside the map")
        self.registers[start : start + len(registers)] = list(registers)

    def writable(self, address: int, count: int) -> bool:
        return all(a in self._writable for a in range(address, address + count))


class SunSpecServer:
    """A pymodbus TCP server on a free 127.0.0.1 port, one :class:`SunSpecMap` per unit id."""

    def __init__(self, units: Mapping[int, SunSpecMap], *, host: str = "127.0.0.1") -> None:
        self.units = dict(units)
        self.host = host
        self.port = 0
        self.writes: list[Write] = []
        self.fail_reads: ExcCodes | None = None
        self.fail_writes: ExcCodes | None = None
        self.delay_s = 0.0  # how long the device takes to answer
        self._server: ModbusTcpServer | None = None

    def map(self, unit: int = 1) -> SunSpecMap:
        return self.units[unit]

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is not None:
            return
        devices = [
            SimDevice(
                id=unit,
                simdata=[
                    SimData(
                        address=unit_map.base_address,
                        values=list(unit_map.registers),
                        datatype=DataType.REGISTERS,
                    )
                ],
                action=self._action_for(unit),
            )
            for unit, unit_map in self.units.items()
        ]
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        listener = server.transport
        assert isinstance(listener, asyncio.Server)
        self.port = listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (the device is offline)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
            await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _action_for(self, unit: int) -> Any:
        unit_map = self.units[unit]

        async def action(  # noqa: PLR0917 - the signature pymodbus calls
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            del function_code
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if set_values is None:
                if self.fail_reads is not None:
                    return self.fail_reads
                first = address - unit_map.base_address
                registers[address - start_address : address - start_address + count] = (
                    unit_map.registers[first : first + count]
                )
                return None
            if self.fail_writes is not None:
                return self.fail_writes
            if not unit_map.writable(address, count):
                return ExcCodes.ILLEGAL_ADDRESS
            values = [int(v) for v in set_values]
            unit_map.set_registers(address, values)
            self.writes.append(Write(unit, address, tuple(values)))
            return None

        return action
