"""The telemetry recorder: driver readings onto a device's chain, batch by batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import anyio
import pytest

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.drivers.base import Driver
from ioe.drivers.model import (
    POINTS,
    DeviceDescription,
    DeviceProtocolError,
    PointValue,
    to_telemetry,
)
from ioe.drivers.sim import FakeClock, SimDriver, SimPlug
from ioe.engine.cell import Cell
from ioe.errors import StoreError, ValidationError
from ioe.services.recorder import TelemetryRecorder, split_batches
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.vocabulary import DeviceType
from ioe.zomes.telemetry.entries import MAX_SAMPLES_PER_BATCH, ReadingBatch

T0 = 1_700_000_000_000_000

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_cell() -> Cell:
    dna = core_dna()
    keys = KeyPair(bytes([3]) * 32)
    cell = Cell(dna, keys, MemoryDatabase().chain(dna.hash, keys.agent))
    cell.genesis(membrane_proof_for(cell.keys), now_us=T0 - 1)
    return cell


def chain_batches(cell: Cell) -> list[ReadingBatch]:
    return list(cell.call("telemetry", "batches", now_us=T0 + 10**12))


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0)


class ScriptedDriver(Driver):
    """Answers reads from a script: a dict is a reading, an exception is raised."""

    name = "scripted"

    def __init__(self, script: list[dict[str, PointValue] | Exception]) -> None:
        super().__init__()
        self.script = list(script)

    async def describe(self) -> DeviceDescription:
        return DeviceDescription(
            device_type=DeviceType.CONSUMPTION,
            driver=self.name,
            points=(POINTS["switch"], POINTS["power_w"], POINTS["energy_wh"]),
        )

    async def read(self) -> dict[str, PointValue]:
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def _write(self, point: str, value: PointValue) -> None:
        raise NotImplementedError


async def test_a_sim_plug_is_recorded_in_batches_and_stop_commits_the_rest() -> None:
    clock = FakeClock(T0)
    plug = SimPlug("fridge", start_us=T0)
    driver = SimDriver(plug, clock)
    cell = make_cell()
    recorder = TelemetryRecorder(
        driver, cell, clock=clock, interval_s=1.0, batch_every_s=10.0, sleep=clock.sleep
    )
    async with recorder:
        await wait_until(lambda: recorder.samples_taken >= 35)
        assert len(recorder.committed) == 3  # at 10, 20 and 30 simulated seconds
        assert recorder.pending  # the last few seconds are not committed yet
    assert not recorder.pending
    batches = chain_batches(cell)
    assert len(batches) == 4 == len(recorder.committed)
    samples = [s for b in batches for s in b.samples]
    assert len(samples) == recorder.samples_taken
    times = [s.at_us for s in samples]
    assert times == sorted(set(times)) and times[0] == T0
    assert all(b - a == 1_000_000 for a, b in pairwise(times))
    description = await driver.describe()
    for sample in samples:
        assert sample.values.keys() == {
            "switch",
            "power_mw",
            "energy_mwh",
            "voltage_mv",
            "current_ma",
            "online",
        }
        assert sample.values["online"] == 1 and sample.values["switch"] == 1
    twin = SimPlug("fridge", start_us=T0)  # each sample is what the plug read at its time
    for sample in samples:
        twin.step(sample.at_us)
        assert sample.values == to_telemetry(description, {**twin.values(), "online": True})
    energy = [s.values["energy_mwh"] for s in samples]
    assert energy == sorted(energy) and energy[-1] > 0


async def test_an_offline_device_is_recorded_as_offline_and_recording_goes_on() -> None:
    clock = FakeClock(T0)
    plug = SimPlug("fridge", start_us=T0)
    cell = make_cell()
    recorder = TelemetryRecorder(SimDriver(plug, clock), cell, clock=clock)
    for online in (True, True, False, False, True):
        plug.online = online
        await recorder.sample()
        clock.advance(1)
    recorder.flush()
    (batch,) = chain_batches(cell)
    assert [s.values["online"] for s in batch.samples] == [1, 1, 0, 0, 1]
    assert batch.samples[2].values == {"online": 0}
    assert "power_mw" in batch.samples[4].values


async def test_a_driver_that_raises_or_answers_garbage_is_noted_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(T0)
    script: list[dict[str, PointValue] | Exception] = [
        {"power_w": 10.0, "online": True},
        DeviceProtocolError("bad JSON from the plug"),
        RuntimeError("a bug in the driver"),
        {"power_w": float("nan"), "energy_wh": -5.0, "bogus": 1, "online": True},
        {"power_w": 1e30, "switch": "yes", "online": True},
        {"power_w": 12.5, "online": True},
    ]
    cell = make_cell()
    recorder = TelemetryRecorder(ScriptedDriver(script), cell, clock=clock)
    with caplog.at_level(logging.INFO, logger="ioe.services.recorder"):
        for _ in range(6):
            await recorder.sample()
            clock.advance(1)
        recorder.flush()
    (batch,) = chain_batches(cell)
    assert [s.values for s in batch.samples] == [
        {"power_mw": 10_000, "online": 1},
        {"online": 0},
        {"online": 0},
        {"online": 1},  # NaN, a negative counter and an unknown name are left out
        {"online": 1},  # so are a power beyond 64 bits and a non-boolean switch
        {"power_mw": 12_500, "online": 1},
    ]
    warnings = [r for r in caplog.records if "read failed" in r.getMessage()]
    assert len(warnings) == 1  # once when it went away, not on every failed read
    assert any("back online" in r.getMessage() for r in caplog.records)


async def test_a_counter_reset_starts_a_new_batch_instead_of_losing_the_readings() -> None:
    clock = FakeClock(T0)
    energies = [5.0, 6.0, 1.0, 2.0]  # the device rebooted and restarted its counter
    script: list[dict[str, PointValue] | Exception] = [
        {"energy_wh": e, "online": True} for e in energies
    ]
    cell = make_cell()
    recorder = TelemetryRecorder(ScriptedDriver(script), cell, clock=clock)
    for _ in energies:
        await recorder.sample()
        clock.advance(1)
    assert len(recorder.flush()) == 2
    batches = chain_batches(cell)
    assert [[s.values["energy_mwh"] for s in b.samples] for b in batches] == [
        [5000, 6000],
        [1000, 2000],
    ]


def test_batches_are_split_at_the_size_limit() -> None:
    samples: list[dict[str, Any]] = [
        {"at_us": i, "values": {"energy_mwh": i}} for i in range(MAX_SAMPLES_PER_BATCH + 5)
    ]
    sizes = [len(b) for b in split_batches(samples)]
    assert sizes == [MAX_SAMPLES_PER_BATCH, 5]


async def test_a_clock_that_does_not_advance_drops_the_repeated_sample() -> None:
    clock = FakeClock(T0)
    recorder = TelemetryRecorder(
        SimDriver(SimPlug("tv", start_us=T0), clock), make_cell(), clock=clock
    )
    assert await recorder.sample() is not None
    assert await recorder.sample() is None
    clock.now_us -= 5
    assert await recorder.sample() is None
    assert recorder.samples_taken == 1 and recorder.samples_dropped == 2


class FlakyCell:
    """A cell whose store fails the first ``failures`` calls, or whose rules refuse everything."""

    def __init__(self, cell: Cell, failures: int = 0, refuse: bool = False) -> None:
        self.cell = cell
        self.failures = failures
        self.refuse = refuse

    def call(self, zome: str, function: str, payload: Any = None, *, now_us: int) -> Any:
        if self.refuse:
            raise ValidationError("refused")
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return self.cell.call(zome, function, payload, now_us=now_us)


async def test_samples_are_kept_when_the_store_fails_and_committed_later() -> None:
    clock = FakeClock(T0)
    cell = make_cell()
    recorder = TelemetryRecorder(
        SimDriver(SimPlug("tv", start_us=T0), clock), FlakyCell(cell, failures=1), clock=clock
    )
    for _ in range(3):
        await recorder.sample()
        clock.advance(1)
    assert recorder.flush() == [] and len(recorder.pending) == 3
    for _ in range(2):
        await recorder.sample()
        clock.advance(1)
    assert len(recorder.flush()) == 1
    assert [len(b.samples) for b in chain_batches(cell)] == [5]


async def test_samples_refused_by_the_rules_are_dropped_without_stopping_the_recorder() -> None:
    clock = FakeClock(T0)
    recorder = TelemetryRecorder(
        SimDriver(SimPlug("tv", start_us=T0), clock),
        FlakyCell(make_cell(), refuse=True),
        clock=clock,
        batch_every_s=2,
        sleep=clock.sleep,
    )
    async with recorder:
        await wait_until(lambda: recorder.samples_dropped >= 6)
    assert recorder.committed == [] and not recorder.pending


def test_bad_periods_are_refused() -> None:
    clock = FakeClock(T0)
    driver = SimDriver(SimPlug("tv", start_us=T0), clock)
    with pytest.raises(ValueError):
        TelemetryRecorder(driver, make_cell(), clock=clock, interval_s=0)
