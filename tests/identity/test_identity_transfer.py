"""Ownership transfer: both owners sign, the old key is cut off, history links the keys."""

from __future__ import annotations

import dataclasses

import pytest

from ioe.engine.records import InitZomesComplete, SignedAction
from ioe.errors import EncodingError
from ioe.identity.revocation import action_allowed, key_history
from ioe.identity.transfer import (
    TransferCertificate,
    certificate_superseded,
    transfer_problem,
)
from ioe.vocabulary import DeviceType


def setup(idkit):
    alice, bob = idkit.owner(1), idkit.owner(2)
    old = idkit.enrolled(alice, device=3)
    # the same physical device, re-keyed from bob's seed
    new = idkit.certificate(bob.keyset, bob.agent, bob.device(7), bob.authz, issued_us=idkit.T0 + 5)
    transfer = TransferCertificate.between(old, new, old_last_seq=10, issued_us=idkit.T0 + 9)
    return alice, bob, old, new, transfer


def test_a_transfer_signed_by_both_owners_stands(idkit) -> None:
    alice, bob, old, new, transfer = setup(idkit)
    signed = transfer.signed_by_old(alice.authz).signed_by_new(bob.authz)
    assert transfer_problem(signed, old, new) is None
    assert TransferCertificate.from_bytes(signed.to_bytes()) == signed
    assert certificate_superseded(old, [signed]) and not certificate_superseded(new, [signed])


def test_a_transfer_missing_either_side_is_refused(idkit) -> None:
    alice, bob, old, new, transfer = setup(idkit)
    assert "old owner" in str(transfer_problem(transfer.signed_by_new(bob.authz), old, new))
    assert "new owner" in str(transfer_problem(transfer.signed_by_old(alice.authz), old, new))
    # one owner signing both sides does not count for the other
    both_alice = transfer.signed_by_old(alice.authz).signed_by_new(alice.authz)
    assert "new owner" in str(transfer_problem(both_alice, old, new))
    both_bob = transfer.signed_by_old(bob.authz).signed_by_new(bob.authz)
    assert "old owner" in str(transfer_problem(both_bob, old, new))


def test_a_transfer_cuts_off_the_old_key_and_links_the_new(idkit) -> None:
    alice, bob, _, _, transfer = setup(idkit)
    signed = transfer.signed_by_old(alice.authz).signed_by_new(bob.authz)
    old_key = alice.device(3)
    prev = None
    allowed = []
    for seq in range(13):
        action = SignedAction.sign(InitZomesComplete(old_key.agent, seq, seq, prev), old_key)
        allowed.append(action_allowed(action, [signed]))
        prev = action.hash
    assert allowed == [True] * 11 + [False] * 2
    assert key_history(old_key.agent, [signed]) == (old_key.agent, bob.device(7).agent)


def test_m_of_n_transfer(idkit) -> None:
    keyset, keys = idkit.multi_keyset(2, 3)
    corp, bob = idkit.owner(4), idkit.owner(2)
    old = idkit.certificate(keyset, corp.agent, corp.device(), keys[0], keys[1])
    new = idkit.certificate(bob.keyset, bob.agent, bob.device(), bob.authz)
    transfer = TransferCertificate.between(old, new, old_last_seq=3, issued_us=idkit.T0)
    assert (
        transfer_problem(
            transfer.signed_by_old(keys[2], keys[1]).signed_by_new(bob.authz), old, new
        )
        is None
    )
    one = transfer.signed_by_old(keys[2], keys[2]).signed_by_new(bob.authz)
    assert "old owner" in str(transfer_problem(one, old, new))


def test_a_transfer_must_name_its_certificates_and_re_key(idkit) -> None:
    alice, bob, old, new, transfer = setup(idkit)
    other = idkit.enrolled(alice, device=4)
    sign = lambda t: t.signed_by_old(alice.authz).signed_by_new(bob.authz)  # noqa: E731
    assert "old certificate" in str(transfer_problem(sign(transfer), other, new))
    assert "new certificate" in str(transfer_problem(sign(transfer), old, other))
    same_keyset = idkit.enrolled(alice, device=5)
    t = TransferCertificate.between(old, same_keyset, old_last_seq=1, issued_us=idkit.T0)
    assert "another keyset" in str(
        transfer_problem(t.signed_by_old(alice.authz).signed_by_new(alice.authz), old, same_keyset)
    )
    generator = idkit.certificate(
        bob.keyset, bob.agent, bob.device(8), bob.authz, device_type=DeviceType.GENERATOR
    )
    t = TransferCertificate.between(old, generator, old_last_seq=1, issued_us=idkit.T0)
    assert "type of device" in str(transfer_problem(sign(t), old, generator))
    with pytest.raises(EncodingError, match="re-keyed"):
        TransferCertificate.from_bytes(
            dataclasses.replace(transfer, new_device=transfer.old_device).to_bytes()
        )


def test_a_forged_new_certificate_is_refused(idkit) -> None:
    alice, bob, old, new, _ = setup(idkit)
    forged_new = dataclasses.replace(new, signatures=())
    t = TransferCertificate.between(old, forged_new, old_last_seq=1, issued_us=idkit.T0)
    signed = t.signed_by_old(alice.authz).signed_by_new(bob.authz)
    assert "not authorized" in str(transfer_problem(signed, old, forged_new))


def test_the_old_keyset_may_have_moved_on(idkit) -> None:
    keyset, keys = idkit.multi_keyset(1, 2)
    corp, bob = idkit.owner(4), idkit.owner(2)
    old = idkit.certificate(keyset, corp.agent, corp.device(), keys[0])
    new = idkit.certificate(bob.keyset, bob.agent, bob.device(), bob.authz)
    later = keyset.extended(
        keyset.propose(dataclasses.replace(keyset.genesis, signers=(keys[1].agent,)), 1).signed_by(
            keys[0]
        )
    )
    t = TransferCertificate.between(old, new, old_last_seq=1, issued_us=idkit.T0)
    by_removed = t.signed_by_old(keys[0]).signed_by_new(bob.authz)
    assert transfer_problem(by_removed, old, new) is None  # as far as the certificate knows
    assert "old owner" in str(transfer_problem(by_removed, old, new, later))
    assert (
        transfer_problem(t.signed_by_old(keys[1]).signed_by_new(bob.authz), old, new, later) is None
    )
