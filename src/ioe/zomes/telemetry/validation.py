"""Integrity rules of the telemetry zome (pure: no clock, no I/O)."""

from __future__ import annotations

import re

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, Outcome
from ioe.engine.records import Visibility
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.zomes.telemetry.entries import (
    MAX_POINT_NAME,
    MAX_POINTS_PER_SAMPLE,
    MAX_SAMPLES_PER_BATCH,
    ReadingBatch,
)

_POINT_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
CUMULATIVE_SUFFIXES = ("_mwh", "_wh")
_GOOD_NAMES: set[str] = set()  # names already seen to match _POINT_NAME (a pure memo)


def validate(op: Op, host: IntegrityHost) -> Outcome:
    batch = op.app_entry
    if not isinstance(batch, ReadingBatch):
        return VALID
    return check_batch(batch, op.action.timestamp)


def check_batch(batch: ReadingBatch, committed_at_us: int) -> Outcome:
    """A batch is non-empty and bounded, in time order, not from the future of its own commit,
    with well-formed point names, and cumulative counters that never go down."""
    samples = batch.samples
    if not samples:
        return Invalid("a reading batch needs at least one sample")
    if len(samples) > MAX_SAMPLES_PER_BATCH:
        return Invalid(f"more than {MAX_SAMPLES_PER_BATCH} samples in one batch")
    last_at = -1
    last_counter: dict[str, int] = {}
    for sample in samples:
        if sample.at_us <= last_at:
            return Invalid("samples must be in strictly increasing time order")
        if sample.at_us > committed_at_us:
            return Invalid("a sample is later than the action that commits it")
        last_at = sample.at_us
        if not sample.values or len(sample.values) > MAX_POINTS_PER_SAMPLE:
            return Invalid(f"a sample has 1 to {MAX_POINTS_PER_SAMPLE} points")
        for name, value in sample.values.items():
            if name not in _GOOD_NAMES:
                if len(name) > MAX_POINT_NAME or not _POINT_NAME.match(name):
                    return Invalid(f"bad point name {name[:40]!r}")
                if len(_GOOD_NAMES) < 4096:
                    _GOOD_NAMES.add(name)
            if name.endswith(CUMULATIVE_SUFFIXES):
                if value < last_counter.get(name, 0):
                    return Invalid(f"cumulative {name} went down")
                last_counter[name] = value
    return VALID


integrity = IntegrityZome(
    name="telemetry",
    version="1",
    entry_defs=(EntryDef("reading_batch", ReadingBatch, Visibility.PUBLIC),),
    link_types=(),
    validate=validate,
)
