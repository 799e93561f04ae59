"""Signed telemetry from any driver: read it on a schedule, commit batches to the device's chain.

:class:`TelemetryRecorder` is one named asyncio task. Every ``interval_s`` it reads the driver
and converts the values to integer telemetry (:func:`ioe.drivers.model.to_telemetry`); every
``batch_every_s`` it commits what it has through the telemetry zome
(``cell.call("telemetry", "record_batch", ...)``). A read that fails — the device is offline, or
answered garbage — is recorded as ``{"online": 0}`` and logged once, never raised. Stopping
commits the last, partial batch.

What the chain's rules would refuse is handled here rather than lost: a cumulative counter that
went down (a device reset its energy counter) starts a new batch; a sample whose time is not
after the previous one (a clock that stepped back) is dropped; a batch never exceeds the zome's
limit. If the store fails, the samples stay buffered (up to a bound) and go with the next batch.

``cell.call`` is synchronous: with the SQLite store each batch is one short transaction on the
event loop's thread, once every ``batch_every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, Self

from ioe.drivers.base import Driver
from ioe.drivers.model import (
    DeviceDescription,
    PointError,
    PointValue,
    ValueKind,
    to_telemetry,
)
from ioe.errors import ChainLocked, IoEError, ValidationError
from ioe.hashing import ActionHash
from ioe.zomes.telemetry.entries import MAX_POINTS_PER_SAMPLE, MAX_SAMPLES_PER_BATCH
from ioe.zomes.telemetry.validation import CUMULATIVE_SUFFIXES

log = logging.getLogger(__name__)

Clock = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]
MAX_BUFFERED_SAMPLES = 10 * MAX_SAMPLES_PER_BATCH
_INT64 = 2**63 - 1


class ZomeCaller(Protocol):
    """What the recorder needs of a cell (:class:`ioe.engine.cell.Cell` has it)."""

    def call(self, zome: str, function: str, payload: Any = None, *, now_us: int) -> Any: ...


Sample = dict[str, Any]


class TelemetryRecorder:
    """Reads ``driver`` every ``interval_s`` and commits a batch every ``batch_every_s``.

    ``clock`` returns µs since the Unix epoch (the samples' and commits' time); ``sleep`` waits
    between readings (``asyncio.sleep`` by default; a fake clock's ``sleep`` in tests).
    """

    def __init__(
        self,
        driver: Driver,
        cell: ZomeCaller,
        *,
        clock: Clock,
        interval_s: float = 1.0,
        batch_every_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        name: str = "telemetry-recorder",
    ) -> None:
        if not interval_s > 0 or not batch_every_s > 0:
            raise ValueError("interval and batch period must be positive")
        self.driver = driver
        self.cell = cell
        self.clock = clock
        self.interval_s = interval_s
        self.batch_every_s = batch_every_s
        self.name = name
        self._sleep = sleep
        self._description: DeviceDescription | None = None
        self._pending: list[Sample] = []
        self._last_at_us = -1
        self._task: asyncio.Task[None] | None = None
        self._was_online = True
        self.committed: list[ActionHash] = []
        self.samples_taken = 0
        self.samples_dropped = 0

    @property
    def pending(self) -> list[Sample]:
        """Samples read but not yet committed."""
        return list(self._pending)

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """End the task and commit what is buffered."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.flush()

    async def _run(self) -> None:
        next_flush_us = self.clock() + round(self.batch_every_s * 1e6)
        while True:
            started = self.clock()
            await self.sample()
            now = self.clock()
            if now >= next_flush_us or len(self._pending) >= MAX_SAMPLES_PER_BATCH:
                self.flush()
                next_flush_us = now + round(self.batch_every_s * 1e6)
            spent_s = max(self.clock() - started, 0) / 1e6  # keep to the interval, not drift
            await self._sleep(max(self.interval_s - spent_s, 0.0))

    # ------------------------------------------------------------------------------- the work

    async def sample(self) -> Sample | None:
        """Read the driver once and buffer the sample; returns it (None if it was dropped)."""
        values = await self._read()
        at_us = self.clock()
        if at_us <= self._last_at_us:
            log.warning("%s: clock did not advance (%d µs); sample dropped", self.name, at_us)
            self.samples_dropped += 1
            return None
        self._last_at_us = at_us
        sample: Sample = {"at_us": at_us, "values": values}
        self._pending.append(sample)
        self.samples_taken += 1
        if len(self._pending) > MAX_BUFFERED_SAMPLES:
            del self._pending[0]
            self.samples_dropped += 1
        return sample

    async def _read(self) -> dict[str, int]:
        try:
            if self._description is None:
                self._description = await self.driver.describe()
            raw = await self.driver.read()
            values = to_telemetry(self._description, _well_typed(self._description, raw))
        except Exception as exc:  # a driver must never stop the recording: note it as offline
            if self._was_online:
                log.warning("%s: read failed (%s: %s)", self.name, type(exc).__name__, exc)
            self._was_online = False
            return {"online": 0}
        values = {  # what a chain cannot hold: beyond 64 bits, or a counter below zero
            k: v
            for k, v in values.items()
            if abs(v) <= _INT64 and not (v < 0 and k.endswith(CUMULATIVE_SUFFIXES))
        }
        values.setdefault("online", 1 if values else 0)  # a driver that forgot to say
        online = values["online"] == 1
        if online != self._was_online:
            log.info("%s: device %s", self.name, "back online" if online else "offline")
            self._was_online = online
        if len(values) > MAX_POINTS_PER_SAMPLE:
            kept = ["online", *sorted(k for k in values if k != "online")]
            values = {k: values[k] for k in kept[:MAX_POINTS_PER_SAMPLE]}
        return values

    def flush(self) -> list[ActionHash]:
        """Commit the buffered samples now (as one batch, or several if they must be split)."""
        if not self._pending:
            return []
        batches = split_batches(self._pending)
        try:
            if len(batches) == 1:
                hashes = [
                    self.cell.call("telemetry", "record_batch", batches[0], now_us=self.clock())
                ]
            else:
                hashes = self.cell.call("telemetry", "record_batches", batches, now_us=self.clock())
        except ValidationError as exc:
            log.error(
                "%s: %d samples refused by the chain's rules: %s",
                self.name,
                len(self._pending),
                exc,
            )
            self.samples_dropped += len(self._pending)
            self._pending.clear()
            return []
        except ChainLocked as exc:  # a countersigning session for a moment: the next batch
            log.debug("%s: keeping %d samples: %s", self.name, len(self._pending), exc)
            return []
        except IoEError as exc:
            log.warning(
                "%s: commit failed, keeping %d samples: %s", self.name, len(self._pending), exc
            )
            return []
        self._pending.clear()
        self.committed.extend(hashes)
        return hashes


def _well_typed(
    description: DeviceDescription, raw: Mapping[str, PointValue]
) -> dict[str, PointValue]:
    """The values whose type fits their point (ranges are for writes: a reading outside one is
    still what the device said)."""
    kept: dict[str, PointValue] = {}
    for name, value in raw.items():
        try:
            kind = description.point(name).kind
        except PointError:
            continue
        if kind is ValueKind.BOOL:
            fits = type(value) is bool
        elif kind is ValueKind.NUMBER:
            fits = type(value) in (int, float)
        else:
            fits = isinstance(value, str)
        if fits:
            kept[name] = value
    return kept


def split_batches(samples: list[Sample]) -> list[list[Sample]]:
    """Samples cut into batches the telemetry rules accept: at most the size limit each, and a
    new batch wherever a cumulative counter went down."""
    batches: list[list[Sample]] = []
    current: list[Sample] = []
    counters: dict[str, int] = {}
    for sample in samples:
        values: dict[str, int] = sample["values"]
        reset = any(
            name.endswith(CUMULATIVE_SUFFIXES) and value < counters.get(name, -math.inf)
            for name, value in values.items()
        )
        if current and (reset or len(current) >= MAX_SAMPLES_PER_BATCH):
            batches.append(current)
            current, counters = [], {}
        current.append(sample)
        counters.update({n: v for n, v in values.items() if n.endswith(CUMULATIVE_SUFFIXES)})
    if current:
        batches.append(current)
    return batches
