"""The reputation zome: an agent publishes its own signed view of another agent, linked from the
subject; nobody publishes a claim in someone else's name, about itself, or as garbage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import CORE_DNA_NAME
from ioe.engine.cell import CallContext, Cell
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Valid
from ioe.engine.ops import Op, OpType
from ioe.engine.validation import SourceHost
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.reputation import EventKind, Observation, ReputationClaim
from ioe.store.memory import MemoryDatabase
from ioe.zomes import reputation
from ioe.zomes.reputation.entries import CLAIM_LINK, ReputationClaimEntry
from ioe.zomes.reputation.validation import validate

NOW = 1_800_000_000_000_000
forge = CoordinatorZome("forge")


@forge.function
def run(ctx: CallContext, fn: Any) -> Any:
    """Run ``fn(ctx)``: writes the honest zome functions never would."""
    return fn(ctx)


DNA = DnaDef(
    name=CORE_DNA_NAME,
    integrity_zomes=(reputation.integrity,),
    coordinator_zomes=(reputation.coordinator, forge),
)


def cells() -> tuple[MemoryDatabase, Cell, Cell, Cell]:
    db = MemoryDatabase()
    made = []
    for seed in (1, 2, 3):
        keys = KeyPair(bytes([seed]) * 32)
        cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
        cell.reader = db
        cell.genesis(None, now_us=NOW)
        made.append(cell)
    return db, made[0], made[1], made[2]


def claim_by(cell: Cell, subject: AgentPubKey, kept: int = 3) -> ReputationClaim:
    seen = [Observation(subject, EventKind.COMMITMENT_KEPT, NOW)] * kept
    return ReputationClaim.make(cell.keys, subject, seen, NOW)


def force(cell: Cell, entry: ReputationClaimEntry, link_from: AgentPubKey | None = None) -> Any:
    """Commit ``entry`` (and a link to it) without the coordinator's own checks."""

    def write(ctx: CallContext) -> ActionHash:
        action = ctx.create(entry)
        if link_from is not None:
            ctx.create_link(link_from, action, CLAIM_LINK)
        return action

    return cell.call("forge", "run", write, now_us=NOW + 20)


def test_a_claimant_publishes_its_view_and_the_subject_link_finds_it() -> None:
    db, alice, bob, _ = cells()
    claim = claim_by(alice, bob.agent)
    action = alice.call("reputation", "publish", claim.to_bytes(), now_us=NOW + 10)
    assert alice.call("reputation", "claims_about", bytes(bob.agent), now_us=NOW + 20) == [
        claim.to_bytes()
    ]
    record = db.get_record(action)
    assert record is not None
    op = Op(
        OpType.STORE_RECORD,
        record.signed_action,
        record.entry,
        ReputationClaimEntry(claim.to_bytes()),
    )
    assert validate(op, SourceHost(DNA, db)) == Valid()
    assert claim.score == 1030  # three kept commitments, +10 each, not yet faded


def test_a_claim_published_by_someone_other_than_its_claimant_is_refused() -> None:
    _, alice, bob, carol = cells()
    claim = claim_by(alice, bob.agent)
    with pytest.raises(ZomeCallError, match="published by its own claimant"):
        carol.call("reputation", "publish", claim.to_bytes(), now_us=NOW + 10)
    with pytest.raises(ValidationError, match="published by its own claimant"):
        force(carol, ReputationClaimEntry(claim.to_bytes()))


def test_a_self_claim_is_refused() -> None:
    _, alice, _, _ = cells()
    claim = claim_by(alice, alice.agent)
    with pytest.raises(ValidationError, match="cannot vouch for itself"):
        force(alice, ReputationClaimEntry(claim.to_bytes()))
    with pytest.raises(ZomeCallError, match="cannot vouch for itself"):
        alice.call("reputation", "publish", claim.to_bytes(), now_us=NOW + 10)


def test_a_claim_with_a_changed_score_is_not_signed_by_its_claimant() -> None:
    _, alice, bob, _ = cells()
    claim = replace(claim_by(alice, bob.agent), score=2000)
    with pytest.raises(ValidationError, match="not signed by its claimant"):
        force(alice, ReputationClaimEntry(claim.to_bytes()))


def test_malformed_bytes_are_refused() -> None:
    _, alice, _, _ = cells()
    for bad in (b"", b"\x00junk", b"\xa0"):
        with pytest.raises(ValidationError, match="malformed"):
            force(alice, ReputationClaimEntry(bad))
    with pytest.raises(ZomeCallError, match="wire bytes"):
        alice.call("reputation", "publish", "not bytes", now_us=NOW + 10)


def test_a_link_from_another_agent_than_the_subject_is_refused() -> None:
    _, alice, bob, carol = cells()
    claim = claim_by(alice, bob.agent)
    with pytest.raises(ValidationError, match="from the subject"):
        force(alice, ReputationClaimEntry(claim.to_bytes()), link_from=carol.agent)


WORLD = cells()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    junk=st.one_of(
        st.binary(max_size=1200),
        st.builds(
            lambda good, at, cut: good[:at] + cut + good[at + len(cut) :],
            st.just(claim_by(WORLD[1], WORLD[2].agent).to_bytes()),
            st.integers(0, 200),
            st.binary(min_size=1, max_size=8),
        ),
    )
)
def test_garbage_claim_bytes_are_invalid_never_an_error(junk: bytes) -> None:
    db, alice, bob, _ = WORLD
    good = claim_by(alice, bob.agent).to_bytes()
    entry = ReputationClaimEntry(junk)
    decoded = entry.decoded()
    record = alice.query()[0]
    outcome = validate(
        Op(OpType.STORE_ENTRY, record.signed_action, None, entry), SourceHost(DNA, db)
    )
    if junk == good:
        assert outcome == Valid()
    else:
        assert isinstance(outcome, Invalid)  # any change breaks the shape or the signature
        if isinstance(decoded, str):
            assert decoded.startswith("malformed")
