"""Signals leave a zome call only if it commits."""

from __future__ import annotations

import pytest

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.cell import Cell
from ioe.engine.signals import MAX_SIGNAL_BYTES, RemoteSignal, Signal
from ioe.errors import ZomeCallError
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for

DNA = core_dna()
T0 = 1_800_000_000_000_000
KEYS = KeyPair(b"\x05" * 32)
OTHER = KeyPair(b"\x06" * 32).agent


@pytest.fixture
def cell() -> Cell:
    cell = Cell(DNA, KEYS, MemoryDatabase().chain(DNA.hash, KEYS.agent))
    cell.genesis(membrane_proof_for(cell.keys), now_us=T0)
    return cell


def test_emitted_and_remote_signals_reach_the_sinks(cell: Cell) -> None:
    local: list[Signal] = []
    remote: list[RemoteSignal] = []
    cell.on_signal = lambda _cell, signal: local.append(signal)
    cell.on_remote_signal = lambda _cell, signal: remote.append(signal)
    cell.call("notify", "emit", {"kind": "hello", "body": [1, 2]}, now_us=T0 + 1)
    cell.call("notify", "send", {"to": [OTHER.to_text()], "kind": "hi", "body": None}, now_us=T0)
    assert local == [Signal("notify", KEYS.agent, {"kind": "hello", "body": [1, 2]})]
    assert remote == [RemoteSignal("notify", KEYS.agent, (OTHER,), {"kind": "hi", "body": None})]


def test_a_call_that_fails_emits_nothing(cell: Cell) -> None:
    local: list[Signal] = []
    cell.on_signal = lambda _cell, signal: local.append(signal)

    def emit_then_fail(ctx: object) -> None:
        ctx.emit_signal("notify", "never")  # type: ignore[attr-defined]
        raise ZomeCallError("after the signal")

    dna = cell.dna
    dna.coordinator("notify").functions["emit_then_fail"] = lambda ctx, _: emit_then_fail(ctx)
    try:
        with pytest.raises(ZomeCallError, match="after the signal"):
            cell.call("notify", "emit_then_fail", None, now_us=T0 + 1)
    finally:
        del dna.coordinator("notify").functions["emit_then_fail"]
    assert local == []


def test_unencodable_or_huge_signals_are_refused(cell: Cell) -> None:
    with pytest.raises(ZomeCallError, match="encodable"):
        cell.call("notify", "emit", {"kind": "x", "body": 1.5}, now_us=T0 + 1)
    with pytest.raises(ZomeCallError, match="over"):
        cell.call("notify", "emit", {"kind": "x", "body": "a" * MAX_SIGNAL_BYTES}, now_us=T0 + 1)
