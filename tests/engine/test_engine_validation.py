"""System rules (check_record), app validation (validate_app) and the ChainVerifier."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ioe.encoding import encode
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import (
    VALID,
    IntegrityHost,
    Invalid,
    Op,
    OpType,
    Outcome,
    Unresolved,
    UnresolvedDependency,
    Valid,
)
from ioe.engine.records import (
    AGENT_ENTRY_TYPE,
    AgentValidationPkg,
    AppEntryType,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    Entry,
    InitZomesComplete,
    Record,
    Update,
    Visibility,
)
from ioe.engine.schema import to_value
from ioe.engine.validation import ChainVerifier, SourceHost, check_record, validate_app
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.errors import ChainIntegrityError
from ioe.hashing import ActionHash, DnaHash
from ioe.store.memory import MemoryDatabase

MISSING = ActionHash(b"\xee" * 32)


@pytest.fixture
def writer(kit: Any) -> Any:
    """A chain with genesis and one note, record #4."""
    w = kit.ChainWriter()
    w.genesis()
    w.create(kit.Note("first"))
    return w


def check(record: Record, prev: Record | None, kit: Any, **kwargs: Any) -> str | None:
    return check_record(record, prev.signed_action if prev else None, kit.dna, **kwargs)


def test_a_good_chain_breaks_no_rule(writer: Any, kit: Any) -> None:
    writer.create(kit.Secret(42))
    note = writer.records[4]
    writer.add(
        CreateLink,
        base=note.action_hash,
        target=writer.keys.agent,
        zome_index=0,
        link_type=1,
        tag=b"t",
    )
    writer.add(
        Update,
        **writer.app_fields(kit.Note("second")),
        original_action=note.action_hash,
        original_entry=note.action.entry_hash,
    )
    writer.add(Delete, deletes_action=note.action_hash, deletes_entry=note.action.entry_hash)
    writer.add(DeleteLink, link_add=writer.records[6].action_hash, base=note.action_hash)
    prev = None
    for record in writer.records:
        assert check(record, prev, kit) is None, record.action
        prev = record
    verifier = ChainVerifier(kit.dna, app_host=SourceHost(kit.dna, MemoryDatabase()))
    for record in writer.records:
        verifier.feed(record)
    assert verifier.count == len(writer.records) == 10
    assert verifier.head == writer.records[-1].signed_action


def test_equal_timestamps_are_allowed(writer: Any, kit: Any) -> None:
    record = writer.next(
        Create, **writer.app_fields(kit.Note("x")), timestamp=writer.records[-1].action.timestamp
    )
    assert check(record, writer.records[-1], kit) is None


# --------------------------------------------------------------------------------- system rules

Make = Callable[[Any, Any], Record]  # (writer, kit) -> a bad record following writer's last one


def _genesis_prefix(n: int) -> Callable[[Make], Make]:
    """Run ``make`` on a writer holding only the first ``n`` genesis records."""

    def wrap(make: Make) -> Make:
        def run(writer: Any, kit: Any) -> Record:
            del writer.records[n:]
            return make(writer, kit)

        return run

    return wrap


BREAKS: dict[str, tuple[Make, str]] = {
    "first action is not Dna": (
        _genesis_prefix(0)(lambda w, k: w.next(AgentValidationPkg, membrane_proof=None)),
        "must start with the Dna action",
    ),
    "first action claims a previous action": (
        _genesis_prefix(0)(lambda w, k: w.next(Dna, dna_hash=k.dna.hash, prev=MISSING)),
        "first action cannot have a previous action",
    ),
    "Dna of another DNA": (
        _genesis_prefix(0)(lambda w, k: w.next(Dna, dna_hash=DnaHash(bytes(32)))),
        "another DNA",
    ),
    "genesis #1 is not AgentValidationPkg": (
        _genesis_prefix(1)(lambda w, k: w.next(InitZomesComplete)),
        "genesis record #1 must be AgentValidationPkg",
    ),
    "genesis #2 is an app entry": (
        _genesis_prefix(2)(lambda w, k: w.next(Create, **w.app_fields(k.Note("early")))),
        "genesis record #2 must create the agent key entry",
    ),
    "genesis #2 is not a Create": (
        _genesis_prefix(2)(lambda w, k: w.next(InitZomesComplete)),
        "genesis record #2 must be Create",
    ),
    "genesis agent entry is another key": (
        _genesis_prefix(2)(
            lambda w, k: w.next(
                Create,
                entry=Entry.agent(k.key_pair(9).agent),
                app_entry_type=AGENT_ENTRY_TYPE,
                created_entry=Entry.agent(k.key_pair(9).agent).hash(),
            )
        ),
        "not the author's key",
    ),
    "genesis #3 is not InitZomesComplete": (
        _genesis_prefix(3)(lambda w, k: w.next(Create, **w.app_fields(k.Note("early")))),
        "genesis record #3 must be InitZomesComplete",
    ),
    "Dna after genesis": (
        lambda w, k: w.next(Dna, dna_hash=k.dna.hash),
        "only allowed in genesis",
    ),
    "AgentValidationPkg after genesis": (
        lambda w, k: w.next(AgentValidationPkg, membrane_proof=None),
        "only allowed in genesis",
    ),
    "InitZomesComplete after genesis": (
        lambda w, k: w.next(InitZomesComplete),
        "only allowed in genesis",
    ),
    "agent entry after genesis": (
        lambda w, k: w.next(Create, **w.agent_entry_fields()),
        "agent key entries are only written at genesis",
    ),
    "prev hash mismatch": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x")), prev=w.records[-2].action_hash),
        "previous-action hash does not match",
    ),
    "seq gap": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x")), seq=6),
        "sequence number 6 does not follow 4",
    ),
    "seq repeated": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x")), seq=4),
        "sequence number 4 does not follow 4",
    ),
    "author change": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x")), keys=k.key_pair(9)),
        "author differs",
    ),
    "timestamp goes backwards": (
        lambda w, k: w.next(
            Create, **w.app_fields(k.Note("x")), timestamp=w.records[-1].action.timestamp - 1
        ),
        "earlier than the previous",
    ),
    "entry hash mismatch": (
        lambda w, k: w.next(
            Create,
            **{**w.app_fields(k.Note("x")), "created_entry": Entry.app(b"\x00").hash()},
        ),
        "entry does not match its hash",
    ),
    "entry missing": (
        lambda w, k: w.next(Create, **{**w.app_fields(k.Note("x")), "entry": None}),
        "entry is missing",
    ),
    "agent entry under an app type": (
        lambda w, k: w.next(
            Create,
            entry=Entry.agent(w.keys.agent),
            app_entry_type=k.NOTE_TYPE,
            created_entry=Entry.agent(w.keys.agent).hash(),
        ),
        "entry kind does not match",
    ),
    "undefined entry index": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x"), AppEntryType(0, 2))),
        "entry type is not defined",
    ),
    "undefined entry zome": (
        lambda w, k: w.next(Create, **w.app_fields(k.Note("x"), AppEntryType(1, 0))),
        "entry type is not defined",
    ),
    "public type committed private": (
        lambda w, k: w.next(
            Create, **w.app_fields(k.Note("x"), AppEntryType(0, 0, Visibility.PRIVATE))
        ),
        "entry type note has the wrong visibility",
    ),
    "private type committed public": (
        lambda w, k: w.next(Create, **w.app_fields(k.Secret(1), AppEntryType(0, 1))),
        "entry type secret has the wrong visibility",
    ),
    "update to a wrong visibility": (
        lambda w, k: w.next(
            Update,
            **w.app_fields(k.Note("x"), AppEntryType(0, 0, Visibility.PRIVATE)),
            original_action=w.records[4].action_hash,
            original_entry=w.records[4].action.entry_hash,
        ),
        "wrong visibility",
    ),
    "undefined link type": (
        lambda w, k: w.next(
            CreateLink, base=w.keys.agent, target=w.keys.agent, zome_index=0, link_type=2, tag=b""
        ),
        "link type is not defined",
    ),
    "link type of an undefined zome": (
        lambda w, k: w.next(
            CreateLink, base=w.keys.agent, target=w.keys.agent, zome_index=1, link_type=0, tag=b""
        ),
        "link type is not defined",
    ),
}


@pytest.mark.parametrize(("make", "reason"), BREAKS.values(), ids=BREAKS.keys())
def test_each_system_rule(writer: Any, kit: Any, make: Make, reason: str) -> None:
    bad = make(writer, kit)
    prev = writer.records[-1] if writer.records else None
    found = check(bad, prev, kit)
    assert found is not None
    assert reason in found
    verifier = ChainVerifier(kit.dna)
    for record in writer.records:
        verifier.feed(record)
    with pytest.raises(ChainIntegrityError) as caught:
        verifier.feed(bad)
    assert caught.value.seq == bad.action.seq
    assert caught.value.action_hash == bad.action_hash.to_text()
    assert reason in caught.value.reason
    assert verifier.count == len(writer.records)


def test_bad_signature(writer: Any, kit: Any) -> None:
    good = writer.next(Create, **writer.app_fields(kit.Note("x")))
    forged = dataclasses.replace(good.signed_action, signature=bytes(64))
    bad = Record(forged, good.entry)
    assert check(bad, writer.records[-1], kit) == "signature does not verify"
    assert check(bad, writer.records[-1], kit, check_signature=False) is None
    verifier = ChainVerifier(kit.dna, after=writer.records[-1].signed_action)
    with pytest.raises(ChainIntegrityError, match="signature"):
        verifier.feed(bad)
    verifier.feed(bad, check_signature=False)
    assert verifier.count == 1


def test_missing_entry_may_be_allowed(writer: Any, kit: Any) -> None:
    record = writer.next(Create, **{**writer.app_fields(kit.Note("x")), "entry": None})
    assert check(record, writer.records[-1], kit, require_entry=False) is None


def test_without_a_dna_only_dna_independent_rules_apply(writer: Any, kit: Any) -> None:
    undefined = writer.next(Create, **writer.app_fields(kit.Note("x"), AppEntryType(7, 7)))
    prev = writer.records[-1].signed_action
    assert check_record(undefined, prev, None) is None
    assert check_record(undefined, prev, kit.dna) is not None


# ------------------------------------------------------------------------------ ChainVerifier


def test_verifier_can_start_after_a_known_good_record(writer: Any, kit: Any) -> None:
    for n in range(3):
        writer.create(kit.Note(f"n{n}"))
    records = writer.records
    full = ChainVerifier(kit.dna)
    for record in records:
        full.feed(record)
    tail = ChainVerifier(kit.dna, after=records[4].signed_action)
    for record in records[5:]:
        tail.feed(record)
    assert tail.count == len(records) - 5 == 3
    assert tail.head == full.head == records[-1].signed_action
    # The record after ``after`` must follow it: starting from #4, record #6 is a gap.
    skipping = ChainVerifier(kit.dna, after=records[4].signed_action)
    with pytest.raises(ChainIntegrityError) as caught:
        skipping.feed(records[6])
    assert caught.value.seq == 6
    # Without ``after``, a mid-chain record is not a valid start.
    with pytest.raises(ChainIntegrityError, match="must start with the Dna"):
        ChainVerifier(kit.dna).feed(records[5])


def test_verifier_without_app_host_skips_app_rules(writer: Any, kit: Any) -> None:
    forbidden = writer.create(kit.Note(kit.FORBIDDEN))
    plain = ChainVerifier(kit.dna)
    for record in writer.records:
        plain.feed(record)
    strict = ChainVerifier(kit.dna, app_host=SourceHost(kit.dna, MemoryDatabase()))
    with pytest.raises(ChainIntegrityError) as caught:
        for record in writer.records:
            strict.feed(record)
    assert caught.value.seq == forbidden.action.seq
    assert caught.value.reason == "invalid: forbidden title"


def test_verifier_reports_unresolved_dependencies(writer: Any, kit: Any) -> None:
    dangling = writer.create(kit.Note("dangling", ref=MISSING))
    verifier = ChainVerifier(kit.dna, app_host=SourceHost(kit.dna, MemoryDatabase()))
    with pytest.raises(ChainIntegrityError, match="unresolved dependencies") as caught:
        for record in writer.records:
            verifier.feed(record)
    assert caught.value.seq == dangling.action.seq
    assert MISSING.short() in caught.value.reason


# ----------------------------------------------------------------------------- app validation


@pytest.fixture
def stored(writer: Any, kit: Any) -> tuple[Any, SourceHost]:
    """The writer's chain in a store, and a host reading that store."""
    db = MemoryDatabase()
    db.chain(kit.dna.hash, writer.keys.agent).append(writer.records, None)
    return writer, SourceHost(kit.dna, db)


def test_app_valid(stored: tuple[Any, SourceHost], kit: Any) -> None:
    writer, host = stored
    record = writer.next(
        Create, **writer.app_fields(kit.Note("fine", ref=writer.records[4].action_hash))
    )
    assert validate_app(record, kit.dna, host) == VALID


def test_app_invalid(stored: tuple[Any, SourceHost], kit: Any) -> None:
    writer, host = stored
    record = writer.next(Create, **writer.app_fields(kit.Note(kit.FORBIDDEN)))
    assert validate_app(record, kit.dna, host) == Invalid("forbidden title")
    link = writer.next(
        CreateLink,
        base=writer.keys.agent,
        target=writer.keys.agent,
        zome_index=0,
        link_type=0,
        tag=kit.FORBIDDEN.encode(),
    )
    assert validate_app(link, kit.dna, host) == Invalid("forbidden link tag")


def test_app_unresolved_via_must_get(stored: tuple[Any, SourceHost], kit: Any) -> None:
    writer, host = stored
    record = writer.next(Create, **writer.app_fields(kit.Note("x", ref=MISSING)))
    outcome = validate_app(record, kit.dna, host)
    assert outcome == Unresolved((MISSING,))
    assert not outcome


def test_validation_function_that_raises_is_invalid(
    stored: tuple[Any, SourceHost], kit: Any
) -> None:
    writer, host = stored
    record = writer.next(Create, **writer.app_fields(kit.Note(kit.EXPLODE)))
    outcome = validate_app(record, kit.dna, host)
    assert isinstance(outcome, Invalid)
    assert "RuntimeError" in outcome.reason
    assert "validation blew up" in outcome.reason


def test_entry_that_does_not_fit_its_type_is_invalid(
    stored: tuple[Any, SourceHost], kit: Any
) -> None:
    writer, host = stored
    # A Secret's content committed under the Note type (system rules can't see this).
    record = writer.next(Create, **writer.app_fields(kit.Secret(1), kit.NOTE_TYPE))
    assert check(record, writer.records[-1], kit) is None
    outcome = validate_app(record, kit.dna, host)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("entry does not fit its type")
    assert "Note" in outcome.reason


@dataclass(frozen=True)
class Thing:
    n: int


def one_zome_dna(validate: Callable[[Op, IntegrityHost], Any], name: str = "z") -> DnaDef:
    zome = IntegrityZome(name, "1", (EntryDef("thing", Thing),), ("l",), validate)
    return DnaDef(name="d", integrity_zomes=(zome,))


def test_validation_returning_a_non_outcome_is_invalid(kit: Any) -> None:
    dna = one_zome_dna(lambda op, host: True)
    writer = kit.ChainWriter(dna_hash=dna.hash)
    writer.genesis()
    record = writer.next(Create, **writer.app_fields(Thing(1), AppEntryType(0, 0)))
    outcome = validate_app(record, dna, SourceHost(dna, MemoryDatabase()))
    assert isinstance(outcome, Invalid)
    assert "not an Outcome" in outcome.reason


def test_ops_judged_and_which_zomes_judge_them(kit: Any) -> None:
    seen: list[tuple[str, OpType, object]] = []

    def recorder(name: str) -> Callable[[Op, IntegrityHost], Outcome]:
        def validate(op: Op, host: IntegrityHost) -> Outcome:
            seen.append((name, op.type, op.app_entry))
            return VALID

        return validate

    a = IntegrityZome("a", "1", (EntryDef("thing", Thing),), ("l",), recorder("a"))
    b = IntegrityZome("b", "1", (EntryDef("other", kit.Note),), (), recorder("b"))
    dna = DnaDef(name="two", integrity_zomes=(a, b))
    host = SourceHost(dna, MemoryDatabase())
    writer = kit.ChainWriter(dna_hash=dna.hash)
    writer.genesis()

    create = writer.add(Create, **writer.app_fields(Thing(3), AppEntryType(0, 0)))
    assert validate_app(create, dna, host) == VALID
    assert seen == [
        ("a", OpType.STORE_RECORD, Thing(3)),
        ("a", OpType.REGISTER_AGENT_ACTIVITY, None),
    ]

    seen.clear()
    link = writer.add(
        CreateLink,
        base=writer.keys.agent,
        target=writer.keys.agent,
        zome_index=1,
        link_type=0,
        tag=b"",
    )
    validate_app(link, dna, host)
    assert [name for name, _, _ in seen] == ["b", "b"]

    seen.clear()
    delete = writer.add(
        Delete, deletes_action=create.action_hash, deletes_entry=create.action.entry_hash
    )
    validate_app(delete, dna, host)
    assert [name for name, _, _ in seen] == ["a", "b", "a", "b"]

    seen.clear()
    validate_app(writer.records[2], dna, host)  # the agent entry belongs to no zome
    assert sorted(name for name, _, _ in seen) == ["a", "a", "b", "b"]


def test_first_failing_zome_decides(kit: Any) -> None:
    dna = DnaDef(
        name="two",
        integrity_zomes=(
            IntegrityZome("a", "1", validate=lambda op, host: Invalid("a says no")),
            IntegrityZome("b", "1", validate=lambda op, host: Invalid("b says no")),
        ),
    )
    writer = kit.ChainWriter(dna_hash=dna.hash)
    writer.genesis()
    outcome = validate_app(writer.records[3], dna, SourceHost(dna, MemoryDatabase()))
    assert outcome == Invalid("a says no")


def test_source_host_must_get(stored: tuple[Any, SourceHost], kit: Any) -> None:
    writer, host = stored
    note = writer.records[4]
    assert host.must_get_action(note.action_hash) == note.signed_action
    assert host.must_get_entry(note.action.entry_hash) == note.entry
    assert host.must_get_valid_record(note.action_hash) == note
    activity = host.must_get_agent_activity(writer.keys.agent, note.action_hash)
    assert [s.hash for s in activity] == [r.action_hash for r in writer.records[:5]]
    assert host.dna_properties == {"purpose": "tests"}
    assert isinstance(validate_app(note, kit.dna, host), Valid)
    with pytest.raises(UnresolvedDependency):
        host.must_get_action(MISSING)
    with pytest.raises(UnresolvedDependency):
        host.must_get_entry(Entry.app(encode(to_value(kit.Note("nowhere")))).hash())
    with pytest.raises(UnresolvedDependency):
        host.must_get_agent_activity(kit.key_pair(9).agent, note.action_hash)
