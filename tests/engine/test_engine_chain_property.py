"""Property: whatever sequence of zome calls writes a chain, the chain verifies from genesis."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.engine.cell import CallContext, Cell
from ioe.engine.validation import ChainVerifier, SourceHost
from ioe.hashing import ActionHash
from ioe.store.memory import MemoryDatabase
from ioe.store.sqlite import SqliteDatabase

# Each step picks its targets by index into what exists when it runs (modulo the count).
titles = st.text(alphabet="abcxyz", max_size=4)
steps = st.one_of(
    st.tuples(st.just("create"), titles),
    st.tuples(st.just("secret"), st.integers(0, 2**32)),
    st.tuples(st.just("update"), st.integers(0, 50), titles),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("link"), st.integers(0, 50), st.integers(0, 50), st.binary(max_size=8)),
    st.tuples(st.just("unlink"), st.integers(0, 50)),
)
# Batches of steps, each one zome call, with a clock that may step back between calls.
batches = st.lists(
    st.tuples(st.lists(steps, min_size=1, max_size=6), st.integers(-5_000, 5_000)),
    min_size=1,
    max_size=8,
)


class Model:
    """What the chain should hold: entry-writing actions and live links (base -> link hashes)."""

    def __init__(self) -> None:
        self.entries: list[ActionHash] = []
        self.notes: list[ActionHash] = []
        self.links: dict[ActionHash, ActionHash] = {}  # create-link hash -> base
        self.all_links: list[ActionHash] = []

    def apply(self, ctx: CallContext, steps: list[tuple[Any, ...]], kit: Any) -> None:
        for step in steps:
            kind = step[0]
            if kind == "create":
                h = ctx.create(kit.Note(step[1]))
                self.entries.append(h)
                self.notes.append(h)
            elif kind == "secret":
                self.entries.append(ctx.create(kit.Secret(step[1])))
            elif kind == "update" and self.notes:
                h = ctx.update(self.notes[step[1] % len(self.notes)], kit.Note(step[2]))
                self.entries.append(h)
                self.notes.append(h)
            elif kind == "delete" and self.entries:
                ctx.delete(self.entries[step[1] % len(self.entries)])
            elif kind == "link" and self.notes:
                base = self.notes[step[1] % len(self.notes)]
                target = self.notes[step[2] % len(self.notes)]
                h = ctx.create_link(base, target, "related", step[3])
                self.links[h] = base
                self.all_links.append(h)
            elif kind == "unlink" and self.all_links:
                h = self.all_links[step[1] % len(self.all_links)]
                ctx.delete_link(h)
                self.links.pop(h, None)


def write(cell: Cell, plan: list[tuple[list[tuple[Any, ...]], int]], kit: Any) -> Model:
    model = Model()
    now = kit.T0
    for steps, clock_step in plan:
        now = max(0, now + clock_step)
        cell.call("notes", "run", lambda ctx, steps=steps: model.apply(ctx, steps, kit), now_us=now)
    return model


def check_against_model(cell: Cell, model: Model) -> None:
    bases = set(model.links.values())
    for base in bases:
        live = {link.create_action for link in cell.store.links(base)}
        assert live == {h for h, b in model.links.items() if b == base}
    for h in model.entries:
        assert cell.get(h) is not None


@settings(max_examples=40, deadline=None)
@given(plan=batches)
def test_any_chain_written_through_zome_calls_verifies(kit: Any, plan: Any) -> None:
    db = MemoryDatabase()
    cell = kit.new_cell(db)
    model = write(cell, plan, kit)
    verifier = ChainVerifier(kit.dna, app_host=SourceHost(kit.dna, db))
    records = list(cell.store.iter_records())
    for record in records:
        verifier.feed(record)
    assert verifier.count == len(records) == cell.head().seq + 1
    assert [r.action.seq for r in records] == list(range(len(records)))
    check_against_model(cell, model)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(plan=batches)
def test_any_sqlite_chain_verifies_after_reopening(kit: Any, plan: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ioe.db"
        with SqliteDatabase.open(path, dnas=[kit.dna]) as db:
            cell = kit.new_cell(db)
            model = write(cell, plan, kit)
            head = cell.head()
            check_against_model(cell, model)
        with SqliteDatabase.open(path) as db:  # verifies incrementally on open
            assert db.verify_all({kit.dna.hash: kit.dna}) == head.seq + 1
            assert db.chain(kit.dna.hash, cell.agent).head() == head
