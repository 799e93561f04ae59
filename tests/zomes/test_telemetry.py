"""Integrity rules of the telemetry zome, and its functions through a real cell."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.integrity import Invalid, Valid
from ioe.errors import ValidationError, ZomeCallError
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.telemetry.entries import MAX_SAMPLES_PER_BATCH, ReadingBatch, Sample
from ioe.zomes.telemetry.validation import check_batch

NOW = 1_800_000_000_000_000


def batch(*samples: tuple[int, dict[str, int]]) -> ReadingBatch:
    return ReadingBatch([Sample(at, values) for at, values in samples])


def test_a_well_formed_batch_is_valid() -> None:
    good = batch((NOW - 2, {"power_mw": 5, "energy_mwh": 1}), (NOW - 1, {"energy_mwh": 1}))
    assert isinstance(check_batch(good, NOW), Valid)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (batch(), "at least one sample"),
        (batch((NOW, {"a": 1}), (NOW, {"a": 1})), "increasing"),
        (batch((NOW + 1, {"a": 1})), "later than the action"),
        (batch((NOW, {})), "1 to"),
        (batch((NOW, {"Power": 1})), "bad point name"),
        (batch((NOW - 1, {"energy_mwh": 5}), (NOW, {"energy_mwh": 4})), "went down"),
        (
            ReadingBatch([Sample(i, {"a": 1}) for i in range(MAX_SAMPLES_PER_BATCH + 1)]),
            "more than",
        ),
    ],
)
def test_bad_batches_are_invalid(bad: ReadingBatch, reason: str) -> None:
    outcome = check_batch(bad, NOW)
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reason


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=50))
def test_non_decreasing_counters_always_pass(increments: list[int]) -> None:
    total, samples = 0, []
    for i, step in enumerate(increments):
        total += step
        samples.append(Sample(NOW - len(increments) + i, {"energy_mwh": total}))
    assert isinstance(check_batch(ReadingBatch(samples), NOW), Valid)


def make_cell() -> Cell:
    dna = core_dna()
    keys = KeyPair(bytes(32))
    cell = Cell(dna, keys, MemoryDatabase().chain(dna.hash, keys.agent))
    cell.genesis(membrane_proof_for(cell.keys), now_us=NOW)
    return cell


def test_record_and_read_back_batches() -> None:
    cell = make_cell()
    cell.call("telemetry", "record_batch", [{"at_us": NOW, "values": {"power_mw": 7}}], now_us=NOW)
    cell.call(
        "telemetry",
        "record_batches",
        [
            [{"at_us": NOW + 1, "values": {"power_mw": 8}}],
            [{"at_us": NOW + 2, "values": {"power_mw": 9}}],
        ],
        now_us=NOW + 5,
    )
    found = cell.call("telemetry", "batches", now_us=NOW + 6)
    assert [b.samples[0].values["power_mw"] for b in found] == [7, 8, 9]


def test_an_invalid_batch_in_a_group_commits_none_of_them() -> None:
    cell = make_cell()
    head = cell.head()
    with pytest.raises(ValidationError, match="went down"):
        cell.call(
            "telemetry",
            "record_batches",
            [
                [{"at_us": NOW, "values": {"energy_mwh": 1}}],
                [
                    {"at_us": NOW, "values": {"energy_mwh": 3}},
                    {"at_us": NOW + 1, "values": {"energy_mwh": 2}},
                ],
            ],
            now_us=NOW + 5,
        )
    assert cell.head() == head


@pytest.mark.parametrize("payload", ["nope", [{"values": {}}], [{"at_us": NOW}]])
def test_malformed_payloads_are_refused(payload: object) -> None:
    with pytest.raises(ZomeCallError):
        make_cell().call("telemetry", "record_batch", payload, now_us=NOW)


def test_a_float_reading_is_refused_and_nothing_committed() -> None:
    cell = make_cell()
    head = cell.head()
    with pytest.raises((ValidationError, ValueError)):
        cell.call(
            "telemetry", "record_batch", [{"at_us": NOW, "values": {"power_mw": 1.5}}], now_us=NOW
        )
    assert cell.head() == head
