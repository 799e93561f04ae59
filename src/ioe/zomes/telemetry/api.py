"""Zome functions of the telemetry zome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.schema import from_value
from ioe.engine.zome import CoordinatorZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.telemetry.entries import Attestation, ReadingBatch, Sample
from ioe.zomes.telemetry.validation import (
    BATCH_ATTESTATIONS,
    energies_agree,
    window_energy_mwh,
)

coordinator = CoordinatorZome("telemetry")


def _batch(payload: Any) -> ReadingBatch:
    if not isinstance(payload, list):
        raise ZomeCallError("a batch is a list of samples")
    try:
        return ReadingBatch([Sample(s["at_us"], dict(s["values"])) for s in payload])
    except (KeyError, TypeError, ValueError) as exc:
        raise ZomeCallError(f"bad sample: {exc}") from exc


@coordinator.function
def record_batch(ctx: CallContext, payload: Any) -> ActionHash:
    """Commit readings: ``[{"at_us": int, "values": {name: int}}, ...]``, oldest first."""
    return ctx.create(_batch(payload))


@coordinator.function
def record_batches(ctx: CallContext, payload: Any) -> list[ActionHash]:
    """Commit several batches at once (all or none), e.g. what a device buffered offline."""
    if not isinstance(payload, list):
        raise ZomeCallError("record_batches takes a list of batches")
    return [ctx.create(_batch(batch)) for batch in payload]


@coordinator.function
def batches(ctx: CallContext, payload: Any = None) -> list[ReadingBatch]:
    """Every reading batch on this chain, oldest first."""
    return [
        from_value(ReadingBatch, record.entry.app_value())
        for record in ctx.query(ReadingBatch)
        if record.entry is not None
    ]


# ------------------------------------------------------------------------------- attestations


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """An attestation as found from its batch: who made it, where, and what it says."""

    attester: AgentPubKey
    action_hash: ActionHash
    attestation: Attestation


def _action_hash(value: Any) -> ActionHash:
    if isinstance(value, ActionHash):
        return value
    if isinstance(value, str):
        try:
            return ActionHash.from_text(value)
        except EncodingError as exc:
            raise ZomeCallError(f"not an action hash: {exc}") from exc
    raise ZomeCallError("expected an action hash (or its text form)")


def _int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int:
        raise ZomeCallError(f"{name} must be an integer, not {value!r}")
    return value


def _reading_batch(ctx: CallContext, action_hash: ActionHash) -> tuple[AgentPubKey, ReadingBatch]:
    record = ctx.get(action_hash)
    batch_type = ctx.dna.entry_type_for(ReadingBatch)[0]
    if record is None or record.entry is None or record.action.entry_type != batch_type:
        raise ZomeCallError(f"no reading batch {action_hash.short()}")
    return record.action.author, from_value(ReadingBatch, record.entry.app_value())


def _own_measurement(ctx: CallContext, start_us: int, end_us: int) -> int:
    """The energy this chain's own readings show over the window (across batch boundaries)."""
    samples = [
        sample
        for record in ctx.query(ReadingBatch)
        if record.entry is not None
        for sample in from_value(ReadingBatch, record.entry.app_value()).samples
    ]
    if not samples or samples[0].at_us > start_us or samples[-1].at_us < end_us:
        raise ZomeCallError("this chain's own readings do not cover the window")
    return window_energy_mwh(samples, start_us, end_us)


@coordinator.function
def attest(ctx: CallContext, payload: Any) -> ActionHash:
    """Attest another device's batch over a window, as its monitor (e.g. the meter in front of
    it): ``{"batch": action hash, "start_us": int, "end_us": int, "measured_mwh": int}``.

    Without ``measured_mwh`` the measurement is taken from this chain's own reading batches
    (their ``power_mw`` over the window). The claimed energy and the agreement flag are
    computed here as validation will recompute them. Returns the attestation's action hash.
    """
    if not isinstance(payload, dict):
        raise ZomeCallError("attest takes a map")
    batch_hash = _action_hash(payload.get("batch"))
    start_us, end_us = _int(payload, "start_us"), _int(payload, "end_us")
    subject, batch = _reading_batch(ctx, batch_hash)
    if "measured_mwh" in payload:
        measured = _int(payload, "measured_mwh")
    else:
        measured = _own_measurement(ctx, start_us, end_us)
    claimed = window_energy_mwh(batch.samples, start_us, end_us)
    try:
        agrees = energies_agree(ctx.dna.properties, measured, claimed)
    except ValueError as exc:
        raise ZomeCallError(str(exc)) from exc
    attestation = Attestation(
        subject=subject,
        batch=batch_hash,
        start_us=start_us,
        end_us=end_us,
        measured_mwh=measured,
        claimed_mwh=claimed,
        agrees=agrees,
    )
    action_hash = ctx.create(attestation)
    ctx.create_link(batch_hash, action_hash, BATCH_ATTESTATIONS)
    return action_hash


@coordinator.function
def attestations_for(ctx: CallContext, payload: Any) -> list[AttestationRecord]:
    """Every attestation of a batch (by any monitor whose records this node holds), oldest
    first."""
    batch_hash = _action_hash(payload)
    found: list[AttestationRecord] = []
    for link in ctx.get_links(batch_hash, BATCH_ATTESTATIONS):
        if not isinstance(link.target, ActionHash):  # validation allows no other target
            continue
        attestation = ctx.get_value(link.target, Attestation)
        if attestation is not None:
            found.append(AttestationRecord(link.author, link.target, attestation))
    return found
