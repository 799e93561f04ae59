"""Owner memberships and the core DNA's membrane rule: who may join, every refusal, and a fuzzed
decoder (any bytes: a valid document or EncodingError)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import decode, encode
from ioe.engine.integrity import Invalid, Outcome, Valid
from ioe.errors import EncodingError
from ioe.identity.authority import AuthoritySpec, Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, membrane_check
from ioe.identity.membership import (
    MAX_OWNER_MEMBERSHIP_BYTES,
    NO_PROOF,
    OwnerMembership,
    core_membrane,
    is_certificate,
    owner_membership,
    owner_membership_problem,
)

T0 = 1_800_000_000_000_000
PROPS = {"network": "ioe-core"}


def invalid(outcome: Outcome, fragment: str) -> None:
    assert isinstance(outcome, Invalid), outcome
    assert fragment in outcome.reason, outcome.reason


def membership(idkit, n: int = 1) -> OwnerMembership:  # type: ignore[no-untyped-def]
    o = idkit.owner(n)
    return owner_membership(o.keyset, o.agent, T0).signed_by(o.authz)


# ----------------------------------------------------------------------------- the document


def test_a_signed_owner_membership_admits_its_owner_agent(idkit) -> None:
    doc = membership(idkit)
    assert owner_membership_problem(doc) is None
    assert core_membrane(idkit.owner(1).agent.agent, doc.to_bytes(), PROPS) == Valid()


def test_bytes_round_trip_and_the_id_ignores_signatures(idkit) -> None:
    doc = membership(idkit)
    assert OwnerMembership.from_bytes(doc.to_bytes()) == doc
    o = idkit.owner(1)
    assert doc.id == replace(doc, signatures=()).signed_by(o.revoker).id
    assert doc.id != replace(doc, issued_us=T0 + 1).id


def test_another_agent_is_refused(idkit) -> None:
    doc = membership(idkit)
    invalid(core_membrane(idkit.owner(2).agent.agent, doc.to_bytes(), PROPS), "another agent")
    invalid(core_membrane(idkit.owner(1).device().agent, doc.to_bytes(), PROPS), "another agent")


def test_unsigned_or_signed_by_a_stranger_is_not_authorized(idkit) -> None:
    o = idkit.owner(1)
    unsigned = owner_membership(o.keyset, o.agent, T0)
    invalid(core_membrane(o.agent.agent, unsigned.to_bytes(), PROPS), "not authorized")
    stranger = unsigned.signed_by(idkit.owner(2).authz)
    assert "not authorized" in (owner_membership_problem(stranger) or "")
    # the revoker is an emergency key: it does not sign memberships
    by_revoker = unsigned.signed_by(o.revoker)
    assert "not authorized" in (owner_membership_problem(by_revoker) or "")


def test_a_forged_owner_binding_is_refused(idkit) -> None:
    o, mallory = idkit.owner(1), idkit.owner(2)
    # Mallory's agent claims Alice's keyset, with a binding it made itself, the body signed by
    # Mallory's key (which is not Alice's): refused for the binding and the signatures.
    forged = owner_membership(o.keyset, mallory.agent, T0)
    invalid(
        core_membrane(mallory.agent.agent, forged.signed_by(mallory.authz).to_bytes(), {}),
        "not authorized",
    )
    # Alice's keyset signs a membership naming Mallory, but Mallory's binding is junk.
    junk = replace(owner_membership(o.keyset, mallory.agent, T0), owner_binding=bytes(64))
    invalid(
        core_membrane(mallory.agent.agent, junk.signed_by(o.authz).to_bytes(), PROPS),
        "did not bind itself",
    )
    # A binding of another keyset does not carry over.
    other = owner_membership(mallory.keyset, o.agent, T0)
    moved = replace(owner_membership(o.keyset, o.agent, T0), owner_binding=other.owner_binding)
    invalid(
        core_membrane(o.agent.agent, moved.signed_by(o.authz).to_bytes(), PROPS),
        "did not bind itself",
    )


def test_an_owner_agent_that_is_its_own_keyset_key_is_self_signed(idkit) -> None:
    me = KeyPair(b"\x09" * 32)
    doc = owner_membership(Keyset(single_owner(me.agent)), me, T0).signed_by(me)
    invalid(core_membrane(me.agent, doc.to_bytes(), PROPS), "self-signed")
    revoker = owner_membership(Keyset(single_owner(idkit.signer(1).agent, me.agent)), me, T0)
    invalid(
        core_membrane(me.agent, revoker.signed_by(idkit.signer(1)).to_bytes(), PROPS),
        "self-signed",
    )


def test_m_of_n_keysets_need_m_signatures(idkit) -> None:
    keyset, keys = idkit.multi_keyset(2, 3)
    agent = KeyPair(b"\x0a" * 32)
    one = owner_membership(keyset, agent, T0).signed_by(keys[0])
    invalid(core_membrane(agent.agent, one.to_bytes(), PROPS), "1 valid signature(s) of the 2")
    assert core_membrane(agent.agent, one.signed_by(keys[2]).to_bytes(), PROPS) == Valid()
    repeated = one.signed_by(keys[0])
    invalid(core_membrane(agent.agent, repeated.to_bytes(), PROPS), "not authorized")


def test_a_rotated_keyset_signs_with_its_current_spec(idkit) -> None:
    o = idkit.owner(1)
    new_authz = idkit.signer(5)
    change = o.keyset.propose(AuthoritySpec.of(1, [new_authz.agent], o.revoker.agent), T0)
    keyset = o.keyset.extended(change.signed_by(o.authz))
    old = owner_membership(keyset, o.agent, T0).signed_by(o.authz)
    invalid(core_membrane(o.agent.agent, old.to_bytes(), PROPS), "not authorized")
    new = owner_membership(keyset, o.agent, T0).signed_by(new_authz)
    assert core_membrane(o.agent.agent, new.to_bytes(), PROPS) == Valid()
    broken = replace(new, keyset=o.keyset.extended(change))  # the change itself unsigned
    invalid(core_membrane(o.agent.agent, broken.to_bytes(), PROPS), "keyset change 1")


def test_trusted_keysets_admit_only_their_owners(idkit) -> None:
    doc = membership(idkit)
    agent = idkit.owner(1).agent.agent
    trusted = {**PROPS, "trusted_keysets": [bytes(doc.keyset_id)]}
    assert core_membrane(agent, doc.to_bytes(), trusted) == Valid()
    others = {**PROPS, "trusted_keysets": [bytes(idkit.owner(2).keyset.id)]}
    invalid(core_membrane(agent, doc.to_bytes(), others), "not trusted")
    invalid(core_membrane(agent, doc.to_bytes(), {"trusted_keysets": "junk"}), "not trusted")


# ----------------------------------------------------------------------------- the rule


def test_no_proof_is_refused_with_a_clear_reason() -> None:
    invalid(core_membrane(KeyPair(b"\x01" * 32).agent, None, PROPS), NO_PROOF)
    assert "enrollment certificate or an owner membership" in NO_PROOF


@pytest.mark.parametrize("junk", [b"", b"\xa0", b"not cbor at all", encode({"device": 1})])
def test_garbage_is_refused(junk: bytes) -> None:
    invalid(core_membrane(KeyPair(b"\x01" * 32).agent, junk, PROPS), "malformed")


def test_certificates_are_judged_as_membrane_check_judges_them(idkit) -> None:
    o = idkit.owner(1)
    cert = idkit.enrolled(o)
    device = o.device().agent
    assert is_certificate(cert.to_bytes())
    assert not is_certificate(membership(idkit).to_bytes())
    assert core_membrane(device, cert.to_bytes(), PROPS) == Valid()
    invalid(core_membrane(o.device(2).agent, cert.to_bytes(), PROPS), "another agent")
    invalid(core_membrane(device, cert.to_bytes(), {"network": "ioe-market"}), "ioe-market")
    others = {**PROPS, "trusted_keysets": [bytes(idkit.owner(2).keyset.id)]}
    invalid(core_membrane(device, cert.to_bytes(), others), "not trusted")
    forged = idkit.certificate(o.keyset, o.agent, o.device(), idkit.owner(2).authz)
    invalid(core_membrane(device, forged.to_bytes(), PROPS), "not authorized")
    for proof in (forged.to_bytes(), cert.to_bytes()):
        assert core_membrane(device, proof, PROPS) == membrane_check(device, proof, PROPS)


def test_a_self_signed_certificate_is_refused(idkit) -> None:
    device = KeyPair(b"\x0b" * 32)
    keyset = Keyset(single_owner(device.agent))
    cert = idkit.certificate(keyset, idkit.owner(1).agent, device, device)
    invalid(core_membrane(device.agent, cert.to_bytes(), PROPS), "self-signed")


def test_a_membership_does_not_pass_as_a_certificate_or_the_reverse(idkit) -> None:
    doc, cert = membership(idkit), idkit.enrolled(idkit.owner(1))
    with pytest.raises(EncodingError):
        EnrollmentCertificate.from_bytes(doc.to_bytes())
    with pytest.raises(EncodingError):
        OwnerMembership.from_bytes(cert.to_bytes())


def test_the_core_dna_carries_the_rule(idkit) -> None:
    dna = core_dna()
    o = idkit.owner(1)
    assert dna.properties["network"] == "ioe-core"
    assert dna.check_membrane(o.agent.agent, membership(idkit).to_bytes()) == Valid()
    assert dna.check_membrane(o.device().agent, idkit.enrolled(o).to_bytes()) == Valid()
    invalid(dna.check_membrane(o.agent.agent, None), NO_PROOF)
    market = core_dna({"network": "ioe-market"})
    invalid(market.check_membrane(o.device().agent, idkit.enrolled(o).to_bytes()), "ioe-market")
    assert market.check_membrane(o.agent.agent, membership(idkit).to_bytes()) == Valid()


# ----------------------------------------------------------------------------- decoding


def test_oversized_and_odd_shapes_are_encoding_errors(idkit) -> None:
    doc = membership(idkit)
    with pytest.raises(EncodingError):
        OwnerMembership.from_bytes(bytes(MAX_OWNER_MEMBERSHIP_BYTES + 1))
    with pytest.raises(EncodingError):
        OwnerMembership.from_bytes(bytearray(doc.to_bytes()))  # type: ignore[arg-type]
    value = decode(doc.to_bytes())
    for key, bad in (("version", 2), ("owner_binding", bytes(63)), ("issued_us", -1)):
        with pytest.raises(EncodingError):
            OwnerMembership.from_bytes(encode({**value, key: bad}))
    with pytest.raises(EncodingError):
        OwnerMembership.from_bytes(encode({**value, "extra": 1}))


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=70)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=16), inner),
    max_leaves=30,
)


def _decodes_or_encoding_error(data: bytes) -> None:
    with contextlib.suppress(EncodingError):
        doc = OwnerMembership.from_bytes(data)
        assert doc.to_bytes() == data  # what decodes is canonical: the same bytes again


def _rule_answers(data: bytes) -> None:
    outcome = core_membrane(KeyPair(b"\x01" * 32).agent, data, PROPS)
    assert isinstance(outcome, Valid | Invalid)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_encoding_error(data: bytes) -> None:
    _decodes_or_encoding_error(data)
    _rule_answers(data)


@FUZZ
@given(st.data())
def test_mutated_memberships_decode_or_raise_encoding_error(data: st.DataObject) -> None:
    o = KeyPair(b"\x03" * 32)
    authz = KeyPair(b"\x04" * 32)
    raw = bytearray(
        owner_membership(Keyset(single_owner(authz.agent)), o, T0).signed_by(authz).to_bytes()
    )
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut] if data.draw(st.booleans()) else raw)
    _decodes_or_encoding_error(mutated)
    _rule_answers(mutated)


@FUZZ
@given(st.data())
def test_memberships_with_one_field_replaced(data: st.DataObject) -> None:
    o = KeyPair(b"\x03" * 32)
    authz = KeyPair(b"\x04" * 32)
    value = decode(
        owner_membership(Keyset(single_owner(authz.agent)), o, T0).signed_by(authz).to_bytes()
    )
    key = data.draw(st.sampled_from(sorted(value)))
    value[key] = data.draw(values)
    _decodes_or_encoding_error(encode(value))
    _rule_answers(encode(value))
