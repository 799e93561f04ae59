"""Readable descriptions of chains, for ``ioe chain show`` and the demo."""

from __future__ import annotations

from datetime import UTC, datetime

from ioe.engine.dna import DnaDef
from ioe.engine.ports import ChainStore
from ioe.engine.records import (
    AgentValidationPkg,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    Record,
    Update,
)
from ioe.engine.schema import to_value
from ioe.engine.validation import decode_app_entry
from ioe.errors import EncodingError


def format_time(timestamp_us: int) -> str:
    when = datetime.fromtimestamp(timestamp_us / 1e6, tz=UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def describe_record(record: Record, dna: DnaDef | None) -> str:
    action = record.action
    head = (
        f"#{action.seq:<5} {type(action).__name__:<18} {format_time(action.timestamp)} "
        f"{record.action_hash.short()}"
    )
    return f"{head}  {_details(record, dna)}".rstrip()


def _details(record: Record, dna: DnaDef | None) -> str:
    action = record.action
    if isinstance(action, Dna):
        return f"dna {action.dna_hash.short()}"
    if isinstance(action, AgentValidationPkg):
        proof = action.membrane_proof
        return "no membrane proof" if proof is None else f"membrane proof, {len(proof)} bytes"
    if isinstance(action, CreateLink):
        return f"link {action.base.short()} -> {action.target.short()} type {action.link_type}"
    if isinstance(action, DeleteLink):
        return f"removes link {action.link_add.short()}"
    if isinstance(action, Delete):
        return f"deletes {action.deletes_action.short()}"
    entry_type = action.entry_type
    if entry_type is None:
        return ""
    prefix = f"updates {action.original_action.short()} " if isinstance(action, Update) else ""
    entry_def = dna.entry_def(entry_type) if dna is not None else None
    name = (
        entry_def.name if entry_def else f"entry {entry_type.zome_index}:{entry_type.entry_index}"
    )
    if entry_type.zome_index == 255:
        return prefix + "agent key " + (action.author.short())
    if record.entry is None:
        return f"{prefix}{name} (entry not held)"
    try:
        value = decode_app_entry(dna, record) if dna is not None else record.entry.app_value()
    except EncodingError as exc:
        return f"{prefix}{name} (undecodable: {exc})"
    text = repr(to_value(value))
    return f"{prefix}{name} {text[:100]}{'…' if len(text) > 100 else ''}"


def describe_chain(store: ChainStore, dna: DnaDef | None, *, limit: int | None = None) -> list[str]:
    lines = []
    for count, record in enumerate(store.iter_records()):
        if limit is not None and count >= limit:
            lines.append("…")
            break
        lines.append(describe_record(record, dna))
    return lines
