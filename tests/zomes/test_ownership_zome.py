"""The ownership zome: an owner publishes the revocation of a device key it enrolled; nobody
else can, and no malformed or misdirected revocation is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.dnas import CORE_DNA_NAME
from ioe.engine.cell import CallContext, Cell
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Valid
from ioe.engine.ops import Op, OpType
from ioe.engine.validation import SourceHost
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ValidationError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.identity.revocation import KeyRevocation
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import device_certificate
from ioe.vocabulary import DeviceType
from ioe.zomes import ownership
from ioe.zomes.ownership.entries import REVOCATION_LINK, KeyRevocationEntry
from ioe.zomes.ownership.validation import validate

NOW = 1_800_000_000_000_000
forge = CoordinatorZome("forge")


@forge.function
def run(ctx: CallContext, fn: Any) -> Any:
    """Run ``fn(ctx)``: writes the honest zome functions never would."""
    return fn(ctx)


DNA = DnaDef(
    name=CORE_DNA_NAME,
    integrity_zomes=(ownership.integrity,),
    coordinator_zomes=(ownership.coordinator, forge),
)


@dataclass
class World:
    """Owner A with its device 1, owner B, all on one database (each reads the others)."""

    db: MemoryDatabase
    owner_a: OwnerAccount
    owner_b: OwnerAccount
    a: Cell
    b: Cell
    device: Cell
    certificate: EnrollmentCertificate

    @property
    def host(self) -> SourceHost:
        return SourceHost(DNA, self.db)

    @property
    def enrolled_at(self) -> ActionHash:
        return self.device.query()[1].action_hash

    def revocation(self, **changes: Any) -> KeyRevocation:
        return KeyRevocation.new(
            self.certificate.keyset,
            changes.pop("revoked", self.device.agent),
            last_valid_seq=changes.pop("last_valid_seq", 3),
            issued_us=NOW + 10,
            reason="stolen",
        ).signed_by(changes.pop("signer", self.owner_a.authorization_key()))

    def payload(self, revocation: KeyRevocation, **changes: Any) -> dict[str, Any]:
        return {
            "revocation": revocation.to_bytes(),
            "certificate": changes.get("certificate", self.certificate.to_bytes()),
            "enrolled_at": bytes(changes.get("enrolled_at", self.enrolled_at)),
        }


def world() -> World:
    db = MemoryDatabase()
    owner_a = OwnerAccount(bytes([7]) * 32)
    owner_b = OwnerAccount(bytes([8]) * 32)
    certificate = device_certificate(owner_a, 1, now_us=NOW)

    def cell(keys: Any, proof: bytes | None) -> Cell:
        cell = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
        cell.reader = db
        cell.genesis(proof, now_us=NOW)
        return cell

    a, b = cell(owner_a.agent_key(), None), cell(owner_b.agent_key(), None)
    device = cell(device_agent_key(owner_a.device_seed(1), 0), certificate.to_bytes())
    return World(db, owner_a, owner_b, a, b, device, certificate)


def force(cell: Cell, entry: KeyRevocationEntry, link_from: AgentPubKey | None = None) -> Any:
    """Commit ``entry`` (and a link to it) without the coordinator's own checks."""

    def write(ctx: CallContext) -> ActionHash:
        action = ctx.create(entry)
        if link_from is not None:
            ctx.create_link(link_from, action, REVOCATION_LINK)
        return action

    return cell.call("forge", "run", write, now_us=NOW + 20)


def entry_of(w: World, revocation: KeyRevocation, **changes: Any) -> KeyRevocationEntry:
    payload = w.payload(revocation, **changes)
    return KeyRevocationEntry(
        payload["revocation"], payload["certificate"], ActionHash(payload["enrolled_at"])
    )


# ------------------------------------------------------------------------------ accepted


def test_an_owner_revokes_its_device_and_the_link_finds_it() -> None:
    w = world()
    revocation = w.revocation()
    action = w.a.call("ownership", "revoke", w.payload(revocation), now_us=NOW + 20)
    assert w.a.call("ownership", "revocations_of", bytes(w.device.agent), now_us=NOW + 30) == [
        revocation.to_bytes()
    ]
    record = w.db.get_record(action)
    assert record is not None
    entry = KeyRevocationEntry(revocation.to_bytes(), w.certificate.to_bytes(), w.enrolled_at)
    op = Op(OpType.STORE_RECORD, record.signed_action, record.entry, entry)
    assert validate(op, SourceHost(DNA, w.db)) == Valid()


def test_the_revokers_signature_alone_is_enough() -> None:
    w = world()
    revocation = w.revocation(signer=w.owner_a.revocation_key(), last_valid_seq=-1)
    w.a.call("ownership", "revoke", w.payload(revocation), now_us=NOW + 20)


# ------------------------------------------------------------------------------ refused


def test_a_stranger_cannot_sign_the_revocation_of_someone_elses_device() -> None:
    w = world()
    revocation = w.revocation(signer=w.owner_b.authorization_key())
    with pytest.raises(ValidationError, match="not authorized"):
        force(w.b, entry_of(w, revocation))


def test_only_the_owner_agent_publishes_even_a_properly_signed_revocation() -> None:
    w = world()
    with pytest.raises(ValidationError, match="only the owner agent"):
        force(w.b, entry_of(w, w.revocation()))
    with pytest.raises(ValidationError, match="only the owner agent"):
        force(w.device, entry_of(w, w.revocation()))


def test_an_owner_cannot_certify_someone_elses_key_after_the_fact_to_revoke_it() -> None:
    w = world()
    keyset = Keyset(
        single_owner(w.owner_b.authorization_key().agent, w.owner_b.revocation_key().agent)
    )
    bogus = issue(
        keyset=keyset,
        owner_agent=w.owner_b.agent_key(),
        device=w.device.agent,
        device_type=DeviceType.CONSUMPTION,
        name="not mine",
        zone="unassigned",
        networks=(CORE_DNA_NAME,),
        issued_us=NOW,
        serial=1,
    ).signed_by(w.owner_b.authorization_key())
    revocation = KeyRevocation.new(
        keyset, w.device.agent, last_valid_seq=-1, issued_us=NOW, reason=""
    ).signed_by(w.owner_b.authorization_key())
    with pytest.raises(ValidationError, match="enrolled_at is not the revoked key"):
        force(w.b, entry_of(w, revocation, certificate=bogus.to_bytes()))
    with pytest.raises(ZomeCallError):  # the honest function checks before writing
        w.b.call(
            "ownership",
            "revoke",
            w.payload(w.revocation(signer=w.owner_b.authorization_key())),
            now_us=NOW + 20,
        )


def test_enrolled_at_must_be_the_revoked_keys_own_membrane_proof() -> None:
    w = world()
    other_pkg = w.a.query()[1].action_hash
    with pytest.raises(ValidationError, match="enrolled_at"):
        force(w.a, entry_of(w, w.revocation(), enrolled_at=other_pkg))


def test_owner_agents_are_not_revoked_by_this_entry() -> None:
    w = world()
    revocation = w.revocation(revoked=w.a.agent)
    with pytest.raises(ValidationError, match="revokes a device key"):
        force(w.a, entry_of(w, revocation))


def test_a_link_from_another_key_than_the_revoked_one_is_refused() -> None:
    w = world()
    with pytest.raises(ValidationError, match="from the key its target revokes"):
        force(w.a, entry_of(w, w.revocation()), link_from=w.b.agent)


def test_malformed_documents_are_refused() -> None:
    w = world()
    good = entry_of(w, w.revocation())
    for bad in (
        KeyRevocationEntry(b"\x00junk", good.certificate, good.enrolled_at),
        KeyRevocationEntry(good.revocation, b"", good.enrolled_at),
        KeyRevocationEntry(good.revocation, good.certificate, good.enrolled_at, (b"\xa0",)),
    ):
        with pytest.raises(ValidationError, match="malformed"):
            force(w.a, bad)
    with pytest.raises(ZomeCallError, match="bad payload"):
        w.a.call("ownership", "revoke", {"revocation": b""}, now_us=NOW + 20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.binary(max_size=300), field=st.sampled_from(["revocation", "certificate"]))
def test_garbage_documents_are_invalid_never_an_error(junk: bytes, field: str) -> None:
    w = WORLD
    good = entry_of(w, w.revocation())
    bad = KeyRevocationEntry(
        junk if field == "revocation" else good.revocation,
        junk if field == "certificate" else good.certificate,
        good.enrolled_at,
    )
    problem = bad.checked()
    assert isinstance(problem, str)
    record = w.device.query()[0]
    outcome = validate(Op(OpType.STORE_ENTRY, record.signed_action, None, bad), w.host)
    assert isinstance(outcome, Invalid)


WORLD = world()
