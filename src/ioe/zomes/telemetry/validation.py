"""Integrity rules of the telemetry zome (pure: no clock, no I/O).

Version 2 adds attestations: a monitor (a meter) states what it measured over a window of
another device's reading batch, and whether that agrees with what the batch shows. Every number
in an attestation that can be recomputed is recomputed here, so an attestation can be wrong only
in the monitor's own measurement, which it signs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise

from ioe.encoding import Value
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import AppEntryType, Create, CreateLink, EntryKind, Visibility
from ioe.engine.schema import decode_as
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.zomes.telemetry.entries import (
    MAX_POINT_NAME,
    MAX_POINTS_PER_SAMPLE,
    MAX_SAMPLES_PER_BATCH,
    Attestation,
    ReadingBatch,
    Sample,
)

_POINT_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
CUMULATIVE_SUFFIXES = ("_mwh", "_wh")
_GOOD_NAMES: set[str] = set()  # names already seen to match _POINT_NAME (a pure memo)

ENTRY_DEFS = (
    EntryDef("reading_batch", ReadingBatch, Visibility.PUBLIC),
    EntryDef("attestation", Attestation, Visibility.PUBLIC),
)
READING_BATCH_INDEX, ATTESTATION_INDEX = 0, 1
BATCH_ATTESTATIONS = "batch_attestations"
"""Link type: from a reading batch's action hash to each attestation of it."""
LINK_TYPES = (BATCH_ATTESTATIONS,)
BATCH_ATTESTATIONS_INDEX = LINK_TYPES.index(BATCH_ATTESTATIONS)

TOLERANCE_PPM_PROPERTY = "attestation_tolerance_ppm"
TOLERANCE_MWH_PROPERTY = "attestation_tolerance_mwh"
DEFAULT_TOLERANCE_PPM = 50_000  # 5 % of the larger of the two energies ...
DEFAULT_TOLERANCE_MWH = 100  # ... but never less than 0.1 Wh (short windows, sampling)
POWER_POINT = "power_mw"
MW_US_PER_MWH = 3_600_000_000  # 1 mWh = 1 mW for 3600 s


def validate(op: Op, host: IntegrityHost) -> Outcome:
    entry = op.app_entry
    if isinstance(entry, ReadingBatch):
        return check_batch(entry, op.action.timestamp)
    if isinstance(entry, Attestation):
        return check_attestation(entry, op, host)
    action = op.action
    if (
        isinstance(action, CreateLink)
        and action.link_type == BATCH_ATTESTATIONS_INDEX
        and op.type in (OpType.STORE_RECORD, OpType.REGISTER_ADD_LINK)
    ):
        return check_attestation_link(action, host)
    return VALID


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


# ------------------------------------------------------------------------------- attestations


def _div_round(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def window_energy_mwh(samples: Sequence[Sample], start_us: int, end_us: int) -> int:
    """The energy (mWh, signed like power) that ``samples`` show between two times.

    ``power_mw`` is taken to change linearly between consecutive samples (the trapezoidal rule);
    an interval where either end lacks ``power_mw`` (the device was offline) counts as zero.
    Integer arithmetic only, so every peer computes the same number.
    """
    total_mw_us = 0
    for before, after in pairwise(samples):
        if before.at_us >= end_us:
            break
        low, high = max(before.at_us, start_us), min(after.at_us, end_us)
        p0, p1 = before.values.get(POWER_POINT), after.values.get(POWER_POINT)
        if high <= low or p0 is None or p1 is None:
            continue
        span = after.at_us - before.at_us
        # power × span at `low` and `high`, exact: p(t)·span = p0·span + (p1 − p0)·(t − t0)
        at_low = p0 * span + (p1 - p0) * (low - before.at_us)
        at_high = p0 * span + (p1 - p0) * (high - before.at_us)
        total_mw_us += _div_round((high - low) * (at_low + at_high), 2 * span)
    return _div_round(total_mw_us, MW_US_PER_MWH)


def _non_negative_int(properties: Mapping[str, Value], name: str, default: int) -> int:
    value = properties.get(name, default)
    if type(value) is not int or value < 0:
        raise ValueError(f"DNA property {name} must be a non-negative integer, not {value!r}")
    return value


def tolerance_mwh(properties: Mapping[str, Value], measured_mwh: int, claimed_mwh: int) -> int:
    """How far apart the two energies may be and still agree: a share (ppm) of the larger one,
    at least an absolute floor; both from the DNA properties or the defaults."""
    ppm = _non_negative_int(properties, TOLERANCE_PPM_PROPERTY, DEFAULT_TOLERANCE_PPM)
    floor = _non_negative_int(properties, TOLERANCE_MWH_PROPERTY, DEFAULT_TOLERANCE_MWH)
    larger = max(abs(measured_mwh), abs(claimed_mwh))
    return max(floor, larger * ppm // 1_000_000)


def energies_agree(properties: Mapping[str, Value], measured_mwh: int, claimed_mwh: int) -> bool:
    return abs(measured_mwh - claimed_mwh) <= tolerance_mwh(properties, measured_mwh, claimed_mwh)


def _entry_type(zome_index: int, entry_index: int) -> AppEntryType:
    return AppEntryType(zome_index, entry_index, Visibility.PUBLIC)


def check_attestation(attestation: Attestation, op: Op, host: IntegrityHost) -> Outcome:
    """The attested action exists (else Unresolved), is a reading batch by the subject (who is
    not the attester), the window lies within its samples, and ``claimed_mwh`` and ``agrees``
    are what the batch, the measurement and the tolerance give."""
    action = op.action
    own_type = action.entry_type
    if own_type is None:
        return Invalid("an attestation must be written by an action with an entry type")
    if attestation.subject == action.author:
        return Invalid("a device cannot attest its own readings")
    if attestation.start_us >= attestation.end_us:
        return Invalid("the attested window must end after it starts")
    batch_action = host.must_get_action(attestation.batch).action
    if not isinstance(batch_action, Create) or batch_action.app_entry_type != _entry_type(
        own_type.zome_index, READING_BATCH_INDEX
    ):
        return Invalid("the attested action is not a reading batch")
    if batch_action.author != attestation.subject:
        return Invalid("the attested batch was not created by the subject")
    entry = host.must_get_entry(batch_action.created_entry)
    if entry.kind is not EntryKind.APP:
        return Invalid("the attested batch has no app entry")
    try:
        samples = decode_as(ReadingBatch, entry.payload).samples
    except EncodingError as exc:
        return Invalid(f"the attested batch does not decode: {exc}")
    if not samples or not (
        samples[0].at_us <= attestation.start_us and attestation.end_us <= samples[-1].at_us
    ):
        return Invalid("the attested window must lie within the batch's samples")
    claimed = window_energy_mwh(samples, attestation.start_us, attestation.end_us)
    if attestation.claimed_mwh != claimed:
        return Invalid(
            f"claimed_mwh {attestation.claimed_mwh} is not what the batch shows ({claimed})"
        )
    try:
        agrees = energies_agree(host.dna_properties, attestation.measured_mwh, claimed)
    except ValueError as exc:
        return Invalid(str(exc))
    if attestation.agrees != agrees:
        return Invalid("the agreement flag does not follow from the energies and the tolerance")
    return VALID


def check_attestation_link(action: CreateLink, host: IntegrityHost) -> Outcome:
    """A batch → attestation link is made by the attester, from the batch it attests."""
    if not isinstance(action.base, ActionHash) or not isinstance(action.target, ActionHash):
        return Invalid("an attestation link goes from a batch's action to an attestation's")
    record = host.must_get_valid_record(action.target)
    target = record.action
    if not isinstance(target, Create) or target.app_entry_type != _entry_type(
        action.zome_index, ATTESTATION_INDEX
    ):
        return Invalid("the link target is not an attestation")
    if target.author != action.author:
        return Invalid("only the attester may link its attestation")
    if record.entry is None or record.entry.kind is not EntryKind.APP:
        return Invalid("the linked attestation has no entry")
    try:
        attestation = decode_as(Attestation, record.entry.payload)
    except EncodingError as exc:
        return Invalid(f"the linked attestation does not decode: {exc}")
    if attestation.batch != action.base:
        return Invalid("the link's base is not the attested batch")
    return VALID


integrity = IntegrityZome(
    name="telemetry",
    version="2",
    entry_defs=ENTRY_DEFS,
    link_types=LINK_TYPES,
    validate=validate,
)
