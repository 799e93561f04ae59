"""The ownership zome's ``key_transfer`` entry: a transfer signed by both owners' keysets is
published by either owner and linked from the old key; a forged side, the wrong certificate or
garbage is refused (the node-level protocol: tests/node/test_transfer.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
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
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.revocation import key_history, key_state
from ioe.identity.transfer import TransferCertificate
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import device_certificate
from ioe.vocabulary import DeviceType
from ioe.zomes import ownership
from ioe.zomes.ownership.entries import TRANSFER_LINK, KeyTransferEntry
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
    """Owner A's device 1 (a live chain) moving to owner B's device 3; C is a stranger."""

    db: MemoryDatabase
    owner_a: OwnerAccount
    owner_b: OwnerAccount
    owner_c: OwnerAccount
    a: Cell
    b: Cell
    c: Cell
    device: Cell
    old: EnrollmentCertificate
    new: EnrollmentCertificate

    @property
    def host(self) -> SourceHost:
        return SourceHost(DNA, self.db)

    @property
    def enrolled_at(self) -> ActionHash:
        return self.device.query()[1].action_hash

    def transfer(
        self, *, old_signer: KeyPair | None = None, new_signer: KeyPair | None = None
    ) -> TransferCertificate:
        head = self.device.query()[-1]
        unsigned = TransferCertificate.between(
            self.old,
            self.new,
            old_last_seq=head.action.seq,
            old_head=head.action_hash,
            issued_us=NOW + 5,
        )
        return unsigned.signed_by_old(old_signer or self.owner_a.authorization_key()).signed_by_new(
            new_signer or self.owner_b.authorization_key()
        )

    def entry(self, transfer: TransferCertificate, **changes: Any) -> KeyTransferEntry:
        return KeyTransferEntry(
            transfer.to_bytes(),
            changes.get("old_certificate", self.old.to_bytes()),
            changes.get("new_certificate", self.new.to_bytes()),
            changes.get("old_enrolled_at", self.enrolled_at),
        )

    def payload(self, entry: KeyTransferEntry) -> dict[str, Any]:
        return {
            "transfer": entry.transfer,
            "old_certificate": entry.old_certificate,
            "new_certificate": entry.new_certificate,
            "old_enrolled_at": bytes(entry.old_enrolled_at),
        }


def world() -> World:
    db = MemoryDatabase()
    owner_a, owner_b, owner_c = (OwnerAccount(bytes([n]) * 32) for n in (7, 8, 9))
    old = device_certificate(owner_a, 1, now_us=NOW)
    new = device_certificate(owner_b, 3, now_us=NOW + 1)

    def cell(keys: Any, proof: bytes | None) -> Cell:
        made = Cell(DNA, keys, db.chain(DNA.hash, keys.agent))
        made.reader = db
        made.genesis(proof, now_us=NOW)
        return made

    a, b, c = (cell(o.agent_key(), None) for o in (owner_a, owner_b, owner_c))
    device = cell(device_agent_key(owner_a.device_seed(1), 0), old.to_bytes())
    return World(db, owner_a, owner_b, owner_c, a, b, c, device, old, new)


def force(cell: Cell, entry: KeyTransferEntry, link_from: AgentPubKey | None = None) -> Any:
    """Commit ``entry`` (and a link to it) without the coordinator's own checks."""

    def write(ctx: CallContext) -> ActionHash:
        action = ctx.create(entry)
        if link_from is not None:
            ctx.create_link(link_from, action, TRANSFER_LINK)
        return action

    return cell.call("forge", "run", write, now_us=NOW + 20)


# ------------------------------------------------------------------------------ accepted


def test_the_new_owner_publishes_the_transfer_and_the_old_key_links_to_it() -> None:
    w = world()
    transfer = w.transfer()
    entry = w.entry(transfer)
    action = w.b.call("ownership", "record_transfer", w.payload(entry), now_us=NOW + 20)
    found = w.b.call("ownership", "transfers_of", bytes(w.device.agent), now_us=NOW + 30)
    assert found == [transfer.to_bytes()]
    record = w.db.get_record(action)
    assert record is not None
    op = Op(OpType.STORE_RECORD, record.signed_action, record.entry, entry)
    assert validate(op, w.host) == Valid()
    checked = entry.checked()
    assert not isinstance(checked, str)
    assert key_history(w.device.agent, [checked.transfer]) == (w.device.agent, w.new.device)
    state = key_state(w.device.agent, [checked.transfer])
    assert state.last_valid_seq == w.device.query()[-1].action.seq


def test_the_old_owner_may_publish_it_too() -> None:
    w = world()
    w.a.call("ownership", "record_transfer", w.payload(w.entry(w.transfer())), now_us=NOW + 20)


# ------------------------------------------------------------------------------ refused


def test_a_forged_new_side_is_refused() -> None:
    w = world()
    forged = w.transfer(new_signer=w.owner_c.authorization_key())
    with pytest.raises(ValidationError, match="new owner did not sign"):
        force(w.b, w.entry(forged))
    with pytest.raises(ZomeCallError, match="new owner did not sign"):
        w.b.call("ownership", "record_transfer", w.payload(w.entry(forged)), now_us=NOW + 20)


def test_a_forged_old_side_is_refused() -> None:
    w = world()
    for signer in (w.owner_b.authorization_key(), w.owner_a.revocation_key()):
        forged = w.transfer(old_signer=signer)  # the revoker alone does not transfer
        with pytest.raises(ValidationError, match="old owner did not sign"):
            force(w.b, w.entry(forged))


def test_the_wrong_certificate_is_refused() -> None:
    w = world()
    transfer = w.transfer()
    other = device_certificate(w.owner_b, 4, now_us=NOW + 1)
    with pytest.raises(ValidationError, match="does not name the new certificate"):
        force(w.b, w.entry(transfer, new_certificate=other.to_bytes()))
    storage = device_certificate(w.owner_b, 3, now_us=NOW + 1, device_type=DeviceType.STORAGE)
    retyped = TransferCertificate.between(w.old, storage, old_last_seq=2, issued_us=NOW + 5)
    retyped = retyped.signed_by_old(w.owner_a.authorization_key()).signed_by_new(
        w.owner_b.authorization_key()
    )
    with pytest.raises(ValidationError, match="another type of device"):
        force(w.b, w.entry(retyped, new_certificate=storage.to_bytes()))


def test_the_old_certificate_must_be_the_one_the_old_key_joined_with() -> None:
    w = world()
    with pytest.raises(ValidationError, match="old_enrolled_at"):
        force(w.b, w.entry(w.transfer(), old_enrolled_at=w.a.query()[1].action_hash))


def test_a_stranger_does_not_publish_a_transfer() -> None:
    w = world()
    with pytest.raises(ValidationError, match="only the old or the new owner"):
        force(w.c, w.entry(w.transfer()))


def test_a_link_from_another_key_than_the_old_one_is_refused() -> None:
    w = world()
    with pytest.raises(ValidationError, match="from the key its target transfers"):
        force(w.b, w.entry(w.transfer()), link_from=w.a.agent)


def test_a_transfer_within_one_keyset_is_refused() -> None:
    w = world()
    own = device_certificate(w.owner_a, 2, now_us=NOW + 1)
    transfer = TransferCertificate.between(w.old, own, old_last_seq=2, issued_us=NOW + 5)
    transfer = transfer.signed_by_old(w.owner_a.authorization_key()).signed_by_new(
        w.owner_a.authorization_key()
    )
    with pytest.raises(ValidationError, match="rotate instead"):
        force(w.a, w.entry(transfer, new_certificate=own.to_bytes()))


def test_malformed_documents_are_refused() -> None:
    w = world()
    good = w.entry(w.transfer())
    for bad in (
        replace(good, transfer=b"\x00junk"),
        replace(good, old_certificate=b""),
        replace(good, new_certificate=os.urandom(40)),
        replace(good, old_keyset_changes=(b"\xa0",)),
    ):
        with pytest.raises(ValidationError, match="malformed"):
            force(w.b, bad)
    with pytest.raises(ZomeCallError, match="bad payload"):
        w.b.call("ownership", "record_transfer", {"transfer": b""}, now_us=NOW + 20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    junk=st.binary(max_size=400),
    field=st.sampled_from(["transfer", "old_certificate", "new_certificate"]),
)
def test_garbage_documents_are_invalid_never_an_error(junk: bytes, field: str) -> None:
    w = WORLD
    bad = replace(GOOD, **{field: junk})  # type: ignore[arg-type]
    assert isinstance(bad.checked(), str)
    record = w.device.query()[0]
    outcome = validate(Op(OpType.STORE_ENTRY, record.signed_action, None, bad), w.host)
    assert isinstance(outcome, Invalid)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_of_the_transfer_never_passes_for_it(position: int, flip: int) -> None:
    data = bytearray(GOOD.transfer)
    data[position % len(data)] ^= flip
    assert isinstance(replace(GOOD, transfer=bytes(data)).checked(), str)


WORLD = world()
GOOD = WORLD.entry(WORLD.transfer())
