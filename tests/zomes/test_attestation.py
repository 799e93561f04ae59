"""Attestation: a meter vouches for (or disputes) another device's signed readings.

Two cells — a device and its meter — share one in-memory database, so each sees the other's
records through ``must_get_*`` as an authority holding both would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import CORE_DNA_NAME
from ioe.drivers.sim import FakeClock, SimDriver, SimMeter, SimPvInverter
from ioe.encoding import Value
from ioe.engine.cell import CallContext, Cell
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Unresolved, Valid
from ioe.engine.validation import SourceHost, validate_app
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ValidationError, ZomeCallError
from ioe.hashing import ActionHash
from ioe.services.recorder import TelemetryRecorder
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes import telemetry
from ioe.zomes.telemetry.api import AttestationRecord
from ioe.zomes.telemetry.entries import Attestation, Sample
from ioe.zomes.telemetry.validation import (
    BATCH_ATTESTATIONS,
    DEFAULT_TOLERANCE_MWH,
    energies_agree,
    window_energy_mwh,
)

NOW = 1_800_000_000_000_000
S = 1_000_000  # µs per second
MINUTE = 60 * S

forge = CoordinatorZome("forge")


@forge.function
def run(ctx: CallContext, fn: Any) -> Any:
    """Run ``fn(ctx)``: writes what the honest zome functions never would."""
    return fn(ctx)


def dna(properties: dict[str, Value] | None = None) -> DnaDef:
    return DnaDef(
        name=CORE_DNA_NAME,
        integrity_zomes=(telemetry.integrity,),
        coordinator_zomes=(telemetry.coordinator, forge),
        properties=properties or {},
    )


class Site:
    """A device, its meter and a bystander on one database."""

    def __init__(self, properties: dict[str, Value] | None = None) -> None:
        self.db = MemoryDatabase()
        self.dna = dna(properties)
        self.device, self.meter, self.other = (self.cell(n) for n in (1, 2, 3))

    def cell(self, n: int) -> Cell:
        keys = KeyPair(bytes([n]) * 32)
        cell = Cell(self.dna, keys, self.db.chain(self.dna.hash, keys.agent))
        cell.genesis(membrane_proof_for(cell.keys), now_us=NOW - 3600 * S)
        return cell


def constant_power(cell: Cell, power_mw: int, *, every_s: int = 10, minutes: int = 10) -> Any:
    """Commit a batch of readings of a constant power from NOW for ``minutes``."""
    samples = [
        {"at_us": NOW + i * every_s * S, "values": {"power_mw": power_mw, "online": 1}}
        for i in range(minutes * 60 // every_s + 1)
    ]
    return cell.call("telemetry", "record_batch", samples, now_us=NOW + minutes * MINUTE)


LATER = NOW + 20 * MINUTE
WINDOW = {"start_us": NOW, "end_us": NOW + 10 * MINUTE}
KW_FOR_10_MIN_MWH = 166_667  # 1 kW for 1/6 h = 166.667 Wh


def forged(site: Site, batch: ActionHash, **changes: Any) -> Attestation:
    """An honest attestation of ``batch`` by the meter (1 kW claimed, 1 kW measured), changed."""
    honest = Attestation(
        subject=site.device.agent,
        batch=batch,
        measured_mwh=KW_FOR_10_MIN_MWH,
        claimed_mwh=KW_FOR_10_MIN_MWH,
        agrees=True,
        **WINDOW,
    )
    return replace(honest, **changes)


def commit(cell: Cell, write: Callable[[CallContext], Any]) -> Any:
    return cell.call("forge", "run", write, now_us=LATER)


# ----------------------------------------------------------------------------- honest flow


def test_a_meter_attests_a_batch_from_its_own_readings_and_anyone_finds_it() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    constant_power(site.meter, 1_020_000, every_s=5)  # the meter sees 2 % more
    made = site.meter.call("telemetry", "attest", {"batch": batch, **WINDOW}, now_us=LATER)
    for cell in (site.device, site.meter, site.other):
        (found,) = cell.call("telemetry", "attestations_for", batch, now_us=LATER)
        assert found == AttestationRecord(site.meter.agent, made, found.attestation)
        attestation = found.attestation
        assert attestation.subject == site.device.agent and attestation.batch == batch
        assert attestation.claimed_mwh == KW_FOR_10_MIN_MWH
        assert attestation.measured_mwh == 170_000
        assert attestation.agrees is True
    by_text = site.device.call("telemetry", "attestations_for", batch.to_text(), now_us=LATER)
    assert [r.action_hash for r in by_text] == [made]


def test_a_measurement_outside_the_tolerance_is_recorded_as_disagreeing() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    site.meter.call(
        "telemetry",
        "attest",
        {"batch": batch.to_text(), "measured_mwh": 120_000, **WINDOW},
        now_us=LATER,
    )
    (found,) = site.other.call("telemetry", "attestations_for", batch, now_us=LATER)
    assert found.attestation.agrees is False
    assert found.attestation.claimed_mwh == KW_FOR_10_MIN_MWH


def test_the_tolerance_comes_from_the_dna_properties() -> None:
    loose = Site({"attestation_tolerance_ppm": 400_000})
    batch = constant_power(loose.device, 1_000_000)
    loose.meter.call(
        "telemetry", "attest", {"batch": batch, "measured_mwh": 120_000, **WINDOW}, now_us=LATER
    )
    (found,) = loose.meter.call("telemetry", "attestations_for", batch, now_us=LATER)
    assert found.attestation.agrees is True  # 28 % apart, 40 % allowed
    # the honest zome function would have said so too; a forger cannot say otherwise
    with pytest.raises(ValidationError, match="agreement flag"):
        commit(loose.meter, lambda ctx: ctx.create(forged(loose, batch, measured_mwh=1)))


def test_a_window_of_a_few_samples_uses_the_absolute_floor() -> None:
    assert energies_agree({}, 0, DEFAULT_TOLERANCE_MWH)
    assert not energies_agree({}, 0, DEFAULT_TOLERANCE_MWH + 1)
    assert energies_agree({}, 1_000_000, 1_049_000) and not energies_agree({}, 1_000_000, 1_060_000)
    assert energies_agree({"attestation_tolerance_mwh": 0, "attestation_tolerance_ppm": 0}, 7, 7)


@pytest.mark.parametrize("bad", [-1, "5%", True])
def test_a_bad_tolerance_property_is_refused(bad: Value) -> None:
    site = Site({"attestation_tolerance_ppm": bad})
    batch = constant_power(site.device, 1_000_000)
    with pytest.raises(ZomeCallError, match="attestation_tolerance_ppm"):
        site.meter.call(
            "telemetry", "attest", {"batch": batch, "measured_mwh": 1, **WINDOW}, now_us=LATER
        )
    with pytest.raises(ValidationError, match="attestation_tolerance_ppm"):
        commit(site.meter, lambda ctx: ctx.create(forged(site, batch)))


@pytest.mark.parametrize(
    "payload",
    [
        "not a map",
        {"batch": "uactnXXXX", "start_us": 0, "end_us": 1, "measured_mwh": 1},
        {"batch": 7, "start_us": 0, "end_us": 1},
        {"start_us": 0, "end_us": 1, "measured_mwh": 1},
    ],
)
def test_malformed_attest_calls_are_refused(payload: Any) -> None:
    with pytest.raises(ZomeCallError):
        Site().meter.call("telemetry", "attest", payload, now_us=LATER)


def test_attest_needs_a_reading_batch_and_readings_of_its_own() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    not_a_batch = site.device.query()[2]  # the device's agent-key entry
    with pytest.raises(ZomeCallError, match="no reading batch"):
        site.meter.call(
            "telemetry",
            "attest",
            {"batch": not_a_batch.action_hash, "measured_mwh": 1, **WINDOW},
            now_us=LATER,
        )
    with pytest.raises(ZomeCallError, match="own readings do not cover"):
        site.meter.call("telemetry", "attest", {"batch": batch, **WINDOW}, now_us=LATER)
    with pytest.raises(ZomeCallError, match="measured_mwh must be an integer"):
        site.meter.call(
            "telemetry", "attest", {"batch": batch, "measured_mwh": 1.5, **WINDOW}, now_us=LATER
        )


# ------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"agrees": False}, "agreement flag"),
        ({"measured_mwh": 100_000}, "agreement flag"),
        ({"claimed_mwh": 100_000, "measured_mwh": 100_000}, "not what the batch shows"),
        ({"start_us": NOW - 1}, "within the batch's samples"),
        ({"end_us": NOW + 10 * MINUTE + 1}, "within the batch's samples"),
        ({"start_us": NOW + MINUTE, "end_us": NOW + MINUTE}, "end after it starts"),
    ],
)
def test_numbers_that_do_not_follow_from_the_batch_are_invalid(
    changes: dict[str, Any], reason: str
) -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    head = site.meter.head()
    with pytest.raises(ValidationError, match=reason):
        commit(site.meter, lambda ctx: ctx.create(forged(site, batch, **changes)))
    assert site.meter.head() == head
    commit(site.meter, lambda ctx: ctx.create(forged(site, batch)))  # the honest one is valid


def test_only_another_agent_can_attest_and_only_the_batch_author_is_the_subject() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    own = constant_power(site.meter, 1_000_000)
    with pytest.raises(ValidationError, match="cannot attest its own"):
        commit(site.meter, lambda ctx: ctx.create(forged(site, own, subject=site.meter.agent)))
    with pytest.raises(ValidationError, match="not created by the subject"):
        commit(site.meter, lambda ctx: ctx.create(forged(site, batch, subject=site.other.agent)))


def test_the_attested_action_must_be_a_reading_batch() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    attestation = commit(site.meter, lambda ctx: ctx.create(forged(site, batch)))
    genesis = site.device.query()[2].action_hash  # the device's agent-key entry
    for not_a_batch, subject in ((genesis, site.device.agent), (attestation, site.meter.agent)):
        with pytest.raises(ValidationError, match="not a reading batch"):
            commit(
                site.other,
                lambda ctx, b=not_a_batch, s=subject: ctx.create(forged(site, b, subject=s)),
            )


def test_a_batch_not_yet_seen_leaves_the_attestation_unresolved() -> None:
    site = Site()
    missing = ActionHash(b"\x07" * 32)
    with pytest.raises(ValidationError, match=f"missing dependencies: {missing.to_text()}"):
        commit(site.meter, lambda ctx: ctx.create(forged(site, missing)))
    # an authority holding the attestation but not (yet) the batch defers judgement
    batch = constant_power(site.device, 1_000_000)
    made = commit(site.meter, lambda ctx: ctx.create(forged(site, batch)))
    record = site.meter.get(made)
    assert record is not None
    elsewhere = MemoryDatabase()
    outcome = validate_app(record, site.dna, SourceHost(site.dna, elsewhere))
    assert outcome == Unresolved((batch,))
    assert isinstance(validate_app(record, site.dna, SourceHost(site.dna, site.db)), Valid)


def test_links_go_from_the_attested_batch_to_the_attesters_own_attestation() -> None:
    site = Site()
    batch = constant_power(site.device, 1_000_000)
    other_batch = constant_power(site.device, 2_000_000)
    made = commit(site.meter, lambda ctx: ctx.create(forged(site, batch)))
    cases: list[tuple[Cell, Any, Any, str]] = [
        (site.meter, other_batch, made, "not the attested batch"),
        (site.meter, batch, other_batch, "not an attestation"),
        (site.other, batch, made, "only the attester"),
        (site.meter, site.device.agent, made, "from a batch's action"),
    ]
    for cell, base, target, reason in cases:
        with pytest.raises(ValidationError, match=reason):
            commit(cell, lambda ctx, b=base, t=target: ctx.create_link(b, t, BATCH_ATTESTATIONS))
    commit(site.meter, lambda ctx: ctx.create_link(batch, made, BATCH_ATTESTATIONS))
    assert len(site.device.call("telemetry", "attestations_for", batch, now_us=LATER)) == 1
    assert site.device.call("telemetry", "attestations_for", other_batch, now_us=LATER) == []


# ---------------------------------------------------------------------- energy from samples


def samples(*points: tuple[int, int | None]) -> list[Sample]:
    return [
        Sample(at, {"online": 1} if power is None else {"power_mw": power}) for at, power in points
    ]


def test_window_energy_is_the_trapezoidal_integral_of_power() -> None:
    hour = 3600 * S
    ramp = samples((0, 0), (hour, 2_000))  # 0 → 2 W over an hour: 1 Wh
    assert window_energy_mwh(ramp, 0, hour) == 1_000
    assert window_energy_mwh(ramp, 0, hour // 2) == 250  # the first half of the ramp
    assert window_energy_mwh(ramp, hour // 2, hour) == 750
    generation = samples((0, -3_000_000), (hour, -3_000_000))
    assert window_energy_mwh(generation, 0, hour) == -3_000_000  # export is negative
    gap = samples((0, 1_000), (hour, None), (2 * hour, 1_000), (3 * hour, 1_000))
    assert window_energy_mwh(gap, 0, 3 * hour) == 1_000  # offline intervals count as zero
    assert window_energy_mwh(ramp, hour, 2 * hour) == 0


@given(
    st.lists(st.tuples(st.integers(1, 600 * S), st.integers(-(10**7), 10**7)), min_size=2),
    st.data(),
)
def test_window_energy_adds_up_over_split_windows_and_matches_a_float_integral(
    steps: list[tuple[int, int]], data: st.DataObject
) -> None:
    at, points = 0, []
    for gap, power in steps:
        at += gap
        points.append((at, power))
    series = samples(*points)
    first, last = points[0][0], points[-1][0]
    start, middle, end = sorted(data.draw(st.integers(first, last)) for _ in range(3))
    whole = window_energy_mwh(series, start, end)
    parts = window_energy_mwh(series, start, middle) + window_energy_mwh(series, middle, end)
    assert abs(whole - parts) <= 1
    reference = 0.0
    for (t0, p0), (t1, p1) in pairwise(points):
        low, high = max(t0, start), min(t1, end)
        if high > low:
            slope = (p1 - p0) / (t1 - t0)
            reference += (high - low) * (p0 + slope * (low - t0) + p0 + slope * (high - t0)) / 2
    assert abs(whole - reference / 3.6e9) <= 1 + len(points) * 1e-6


# ------------------------------------------------------------------ simulated site, end to end


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_simulated_meter_attests_a_simulated_pv_inverter() -> None:
    site = Site()
    clock = FakeClock(1_673_928_000_000_000)  # 2023-01-17 14:00 NEM time: the sun is up
    pv = SimPvInverter(5.0, start_us=clock())
    meter = SimMeter([pv], start_us=clock())
    pv_recorder = TelemetryRecorder(SimDriver(pv, clock), site.device, clock=clock)
    meter_recorder = TelemetryRecorder(SimDriver(meter, clock), site.meter, clock=clock)
    start = clock()
    for second in range(301):
        await pv_recorder.sample()
        if second % 3 == 0:  # the meter reads less often
            await meter_recorder.sample()
        clock.advance(1)
    (batch,) = pv_recorder.flush()
    meter_recorder.flush()
    window = {"start_us": start + 30 * S, "end_us": start + 270 * S}
    site.meter.call("telemetry", "attest", {"batch": batch, **window}, now_us=clock())
    (found,) = site.device.call("telemetry", "attestations_for", batch, now_us=clock())
    attestation = found.attestation
    assert attestation.claimed_mwh < -100_000  # about 4 minutes of several kW of generation
    assert attestation.agrees is True
    assert abs(attestation.measured_mwh - attestation.claimed_mwh) < 1_000
    record = site.meter.get(found.action_hash)
    assert record is not None
    assert isinstance(validate_app(record, site.dna, SourceHost(site.dna, site.db)), Valid)
