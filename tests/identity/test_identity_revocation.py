"""Key revocation and rotation: who may revoke, and key state at a point in a chain."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.engine.records import InitZomesComplete, SignedAction
from ioe.errors import EncodingError
from ioe.hashing import ActionHash
from ioe.identity.revocation import (
    NOTHING_VALID,
    Cutoff,
    KeyRevocation,
    KeyState,
    action_allowed,
    key_history,
    key_state,
    revocation_problem,
)

T0 = 1_800_000_000_000_000


def chain(keys: KeyPair, length: int) -> list[SignedAction]:
    actions, prev = [], None
    for seq in range(length):
        signed = SignedAction.sign(InitZomesComplete(keys.agent, T0 + seq, seq, prev), keys)
        actions.append(signed)
        prev = signed.hash
    return actions


def revoke(idkit, o, device: KeyPair, last: int, **kwargs) -> KeyRevocation:
    return KeyRevocation.new(
        o.keyset, device.agent, last_valid_seq=last, issued_us=T0 + 100, reason="stolen", **kwargs
    )


def test_a_revoked_keys_later_actions_are_refused_and_earlier_ones_kept(idkit) -> None:
    o = idkit.owner(1)
    device = o.device()
    revocation = revoke(idkit, o, device, 4).signed_by(o.authz)
    assert revocation_problem(revocation, o.keyset, idkit.enrolled(o)) is None
    actions = chain(device, 8)
    assert [action_allowed(a, [revocation]) for a in actions] == [True] * 5 + [False] * 3
    # other agents are untouched
    assert all(action_allowed(a, [revocation]) for a in chain(o.device(2), 8))


def test_a_revocation_from_genesis_refuses_everything(idkit) -> None:
    o = idkit.owner(1)
    revocation = revoke(idkit, o, o.device(), NOTHING_VALID).signed_by(o.authz)
    assert not any(action_allowed(a, [revocation]) for a in chain(o.device(), 3))


def test_a_head_pins_the_last_valid_action(idkit) -> None:
    o = idkit.owner(1)
    device = o.device()
    actions = chain(device, 4)
    revocation = revoke(idkit, o, device, 2, head=actions[2].hash).signed_by(o.authz)
    fork = SignedAction.sign(InitZomesComplete(device.agent, T0 + 99, 2, actions[1].hash), device)
    assert action_allowed(actions[2], [revocation])
    assert not action_allowed(fork, [revocation])
    assert not action_allowed(actions[3], [revocation])


def test_the_revocation_key_alone_may_revoke(idkit) -> None:
    o = idkit.owner(1)
    revocation = revoke(idkit, o, o.device(), 3).signed_by(o.revoker)
    assert revocation_problem(revocation, o.keyset, idkit.enrolled(o)) is None


def test_the_owner_agent_may_be_revoked(idkit) -> None:
    o = idkit.owner(1)
    revocation = revoke(idkit, o, o.agent, 3).signed_by(o.authz)
    assert revocation_problem(revocation, o.keyset, idkit.enrolled(o)) is None


def test_revocations_by_anyone_else_are_refused(idkit) -> None:
    o, mallory = idkit.owner(1), idkit.owner(2)
    cert = idkit.enrolled(o)
    by_stranger = revoke(idkit, o, o.device(), 3).signed_by(mallory.authz, mallory.revoker)
    assert "not authorized" in str(revocation_problem(by_stranger, o.keyset, cert))
    by_device = revoke(idkit, o, o.device(), 3).signed_by(o.device())
    assert "not authorized" in str(revocation_problem(by_device, o.keyset, cert))
    # mallory's keyset cannot revoke o's device
    theirs = revoke(idkit, mallory, o.device(), 3).signed_by(mallory.authz)
    assert "different keysets" in str(revocation_problem(theirs, mallory.keyset, cert))
    assert "different keysets" in str(revocation_problem(theirs, o.keyset, cert))
    # nor may o revoke a key its certificate does not name
    other = revoke(idkit, o, mallory.device(), 3).signed_by(o.authz)
    assert "neither" in str(revocation_problem(other, o.keyset, cert))


def test_m_of_n_revocation(idkit) -> None:
    keyset, keys = idkit.multi_keyset(2, 3)
    o = idkit.owner(3)
    cert = idkit.certificate(keyset, o.agent, o.device(), keys[0], keys[1])
    rev = KeyRevocation.new(keyset, o.device().agent, last_valid_seq=1, issued_us=T0, reason="")
    assert revocation_problem(rev.signed_by(keys[2], keys[0]), keyset, cert) is None
    assert revocation_problem(rev.signed_by(keys[2], keys[2]), keyset, cert) is not None


def test_rotation_links_old_and_new_keys(idkit) -> None:
    o = idkit.owner(1)
    k0, k1, k2 = o.device(1, 0), o.device(1, 1), o.device(1, 2)
    first = revoke(idkit, o, k0, 5, replacement=k1.agent).signed_by(o.authz)
    second = revoke(idkit, o, k1, 9, replacement=k2.agent).signed_by(o.authz)
    assert key_state(k0.agent, [first, second]).replacement == k1.agent
    assert key_history(k0.agent, [second, first]) == (k0.agent, k1.agent, k2.agent)
    assert key_history(k2.agent, [first, second]) == (k2.agent,)


def test_key_state_at_a_point_in_time(idkit) -> None:
    agent = idkit.owner(1).device().agent
    late = Cutoff(agent, 3, None, None, T0 + 50)
    early = Cutoff(agent, 7, None, None, T0 + 10)
    assert key_state(agent, [late, early]).last_valid_seq == 3
    assert key_state(agent, [late, early], at_us=T0 + 20).last_valid_seq == 7
    assert key_state(agent, [late, early], at_us=T0) == KeyState(agent)
    assert not KeyState(agent).revoked and KeyState(agent).allows(10**9, ActionHash(bytes(32)))


def test_two_heads_at_one_sequence_number_leave_neither(idkit) -> None:
    agent = idkit.owner(1).device().agent
    h1, h2 = ActionHash(b"\x01" * 32), ActionHash(b"\x02" * 32)
    state = key_state(agent, [Cutoff(agent, 4, h1, None, T0), Cutoff(agent, 4, h2, None, T0)])
    assert state.last_valid_seq == 3 and state.head is None


def test_revocation_bytes_round_trip_and_are_strict(idkit) -> None:
    o = idkit.owner(1)
    rev = revoke(idkit, o, o.device(), 4, replacement=o.device(1, 1).agent).signed_by(o.authz)
    assert KeyRevocation.from_bytes(rev.to_bytes()) == rev
    for bad in (
        dataclasses.replace(rev, last_valid_seq=-2),
        dataclasses.replace(rev, replacement=rev.revoked),
        dataclasses.replace(rev, head=ActionHash(bytes(32)), last_valid_seq=NOTHING_VALID),
        dataclasses.replace(rev, reason="a\x00b"),
        dataclasses.replace(rev, version=9),
    ):
        with pytest.raises(EncodingError):
            KeyRevocation.from_bytes(bad.to_bytes())
        assert revocation_problem(bad, o.keyset, idkit.enrolled(o)) is not None


AGENT = KeyPair(b"\x05" * 32).agent
HEADS = [None, ActionHash(b"\x01" * 32), ActionHash(b"\x02" * 32)]
cutoffs = st.builds(
    Cutoff,
    agent=st.just(AGENT),
    last_valid_seq=st.integers(0, 6),
    head=st.sampled_from(HEADS),
    replacement=st.none(),
    issued_us=st.integers(0, 10),
)
probes = [(seq, head or ActionHash(b"\x03" * 32)) for seq in range(8) for head in HEADS]


@settings(max_examples=150, deadline=None)
@given(known=st.lists(cutoffs, max_size=4), more=st.lists(cutoffs, max_size=4))
def test_key_state_is_monotone_and_order_independent(known: list, more: list) -> None:
    before = key_state(AGENT, known)
    after = key_state(AGENT, known + more)
    assert key_state(AGENT, list(reversed(known + more))) == after
    for seq, action_hash in probes:
        if after.allows(seq, action_hash):
            assert before.allows(seq, action_hash)
    # and a state never allows anything after a cutoff it was given
    for cut in known:
        assert not before.allows(cut.last_valid_seq + 1, ActionHash(b"\x03" * 32))
