"""Zome functions of the telemetry zome."""

from __future__ import annotations

from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.schema import from_value
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash
from ioe.zomes.telemetry.entries import ReadingBatch, Sample

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
