"""Enrollment certificates: issuing, strict bytes, every refusal, and the membrane rule."""

from __future__ import annotations

import dataclasses

import pytest

from ioe.crypto.keys import KeyPair
from ioe.engine.dna import DnaDef
from ioe.engine.integrity import Invalid, Valid
from ioe.engine.zome import IntegrityZome
from ioe.errors import EncodingError
from ioe.identity.authority import AuthoritySpec, Keyset, single_owner
from ioe.identity.certificate import (
    ENROLLED_DEFAULT_POLICY,
    FACTORY_DEFAULT_POLICY,
    OWNER,
    DeviceVisibility,
    EnrollmentCertificate,
    Policy,
    bind_owner,
    certificate_problem,
    issue,
    may_control,
    membrane_check,
    policy_problem,
)
from ioe.vocabulary import DeviceType

PROPS = {"network": "ioe-core"}


def invalid(outcome: object, needle: str) -> None:
    assert isinstance(outcome, Invalid), outcome
    assert needle in outcome.reason, outcome.reason


def test_a_well_signed_certificate_is_a_membrane_proof(idkit) -> None:
    o = idkit.owner(1)
    cert = idkit.enrolled(o)
    assert certificate_problem(cert) is None
    assert cert.keyset_id == o.keyset.id and cert.owner == o.agent.agent
    assert EnrollmentCertificate.from_bytes(cert.to_bytes()) == cert
    assert membrane_check(o.device().agent, cert.to_bytes(), PROPS) == Valid()


def test_the_dna_membrane_uses_the_rule(idkit) -> None:
    zome = IntegrityZome("identity", "1", membrane=membrane_check)
    dna = DnaDef("ioe-core", (zome,), properties=PROPS)
    o = idkit.owner(1)
    cert = idkit.enrolled(o)
    assert dna.check_membrane(o.device().agent, cert.to_bytes()) == Valid()
    invalid(dna.check_membrane(o.device().agent, None), "not enrolled")
    invalid(dna.check_membrane(o.device(2).agent, cert.to_bytes()), "another agent")


def test_no_proof_or_garbage_is_refused(idkit) -> None:
    agent = idkit.owner(1).device().agent
    invalid(membrane_check(agent, None, PROPS), "not enrolled")
    invalid(membrane_check(agent, b"\xa0", PROPS), "malformed")
    invalid(membrane_check(agent, b"not cbor at all", PROPS), "malformed")


def test_a_certificate_for_another_agent_is_refused(idkit) -> None:
    o = idkit.owner(1)
    cert = idkit.enrolled(o, device=1)
    invalid(membrane_check(o.device(2).agent, cert.to_bytes(), PROPS), "another agent")


def test_a_certificate_must_name_this_network(idkit) -> None:
    o = idkit.owner(1)
    cert = idkit.enrolled(o)
    agent = o.device().agent
    invalid(membrane_check(agent, cert.to_bytes(), {"network": "ioe-market"}), "ioe-market")
    invalid(membrane_check(agent, cert.to_bytes(), {}), "no 'network' property")


def test_trusted_keysets_restrict_who_may_enroll(idkit) -> None:
    o, other = idkit.owner(1), idkit.owner(2)
    cert = idkit.enrolled(o)
    agent = o.device().agent
    ok = {**PROPS, "trusted_keysets": [bytes(o.keyset.id)]}
    assert membrane_check(agent, cert.to_bytes(), ok) == Valid()
    refused = {**PROPS, "trusted_keysets": [bytes(other.keyset.id)]}
    invalid(membrane_check(agent, cert.to_bytes(), refused), "not trusted")


def test_a_forged_certificate_is_refused(idkit) -> None:
    o, mallory = idkit.owner(1), idkit.owner(9)
    # signed by someone else's authorization key, claiming o's keyset
    forged = idkit.certificate(o.keyset, o.agent, o.device(), mallory.authz)
    assert "not authorized" in str(certificate_problem(forged))
    invalid(membrane_check(o.device().agent, forged.to_bytes(), PROPS), "not authorized")


def test_a_tampered_certificate_is_refused(idkit) -> None:
    o = idkit.owner(1)
    cert = idkit.enrolled(o)
    for change in (
        {"zone": "au/vic"},
        {"networks": ("ioe-core", "ioe-market")},
        {"policy": dataclasses.replace(cert.policy, may_trade=not cert.policy.may_trade)},
        {"visibility": DeviceVisibility.PRIVATE},
    ):
        assert "not authorized" in str(certificate_problem(dataclasses.replace(cert, **change)))


def test_a_self_signed_certificate_is_refused(idkit) -> None:
    device = idkit.owner(1).device()
    mine = Keyset(single_owner(device.agent))
    owner_agent = KeyPair(b"\x07" * 32)
    cert = idkit.certificate(mine, owner_agent, device, device)
    assert "self-signed" in str(certificate_problem(cert))
    invalid(membrane_check(device.agent, cert.to_bytes(), PROPS), "self-signed")
    # nor may the device be its own owner agent
    o = idkit.owner(2)
    cert = idkit.certificate(o.keyset, device, device, o.authz)
    assert "self-signed" in str(certificate_problem(cert))


def test_the_owner_binding_must_be_the_owners(idkit) -> None:
    o, other = idkit.owner(1), idkit.owner(2)
    cert = idkit.enrolled(o)
    wrong = dataclasses.replace(cert, owner_binding=bind_owner(other.agent, o.keyset))
    assert "bind" in str(certificate_problem(wrong.signed_by(o.authz)))
    other_keyset = dataclasses.replace(cert, owner_binding=bind_owner(o.agent, other.keyset))
    assert "bind" in str(certificate_problem(other_keyset.signed_by(o.authz)))


def test_m_of_n_enrollment(idkit) -> None:
    keyset, keys = idkit.multi_keyset(2, 3)
    o = idkit.owner(3)
    device = o.device()
    ok = idkit.certificate(keyset, o.agent, device, keys[0], keys[2])
    assert certificate_problem(ok) is None
    too_few = idkit.certificate(keyset, o.agent, device, keys[1])
    assert "1 valid signature(s) of the 2" in str(certificate_problem(too_few))
    duplicated = idkit.certificate(keyset, o.agent, device, keys[1], keys[1])
    assert certificate_problem(duplicated) is not None


def test_a_certificate_is_checked_against_the_current_spec(idkit) -> None:
    keyset, keys = idkit.multi_keyset(1, 2)
    removed = AuthoritySpec.of(1, [keys[0].agent])
    later = keyset.extended(keyset.propose(removed, idkit.T0).signed_by(keys[0]))
    o = idkit.owner(3)
    assert certificate_problem(idkit.certificate(later, o.agent, o.device(), keys[0])) is None
    stale = idkit.certificate(later, o.agent, o.device(), keys[1])
    assert "not authorized" in str(certificate_problem(stale))
    # a chain with an unauthorized change is refused as a whole
    bogus = keyset.extended(keyset.propose(removed, idkit.T0).signed_by(o.authz))
    assert "keyset change 1" in str(
        certificate_problem(idkit.certificate(bogus, o.agent, o.device(), keys[0]))
    )


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("name", "", "empty"),
        ("name", "x" * 300, "longer"),
        ("name", "bad\nname", "control"),
        ("zone", "AU/NSW", "zone segment"),
        ("networks", (), "networks"),
        ("networks", tuple(f"n{i}" for i in range(17)), "networks"),
        ("neighbourhoods", ("Not A Zone",), "neighbourhood"),
        ("serial", -1, "non-negative"),
        ("policy", Policy(False, (), grid_safety=False), "grid-safety"),
        ("policy", Policy(False, ("everyone",)), "neither an agent key"),
    ],
)
def test_malformed_fields_are_refused_when_checking_and_decoding(
    idkit, field: str, value: object, needle: str
) -> None:
    o = idkit.owner(1)
    cert = dataclasses.replace(idkit.enrolled(o), **{field: value}).signed_by(o.authz)
    assert needle in str(certificate_problem(cert))
    with pytest.raises(EncodingError, match=needle):
        EnrollmentCertificate.from_bytes(cert.to_bytes())


def test_issue_refuses_malformed_fields(idkit) -> None:
    o = idkit.owner(1)
    with pytest.raises(ValueError, match="zone"):
        issue(
            keyset=o.keyset,
            owner_agent=o.agent,
            device=o.device().agent,
            device_type=DeviceType.STORAGE,
            name="n",
            zone="Not/A/Zone",
            networks=("ioe-core",),
            issued_us=1,
            serial=1,
        )


def test_policies(idkit) -> None:
    assert FACTORY_DEFAULT_POLICY.grid_safety and FACTORY_DEFAULT_POLICY.discoverable
    assert not FACTORY_DEFAULT_POLICY.may_trade and FACTORY_DEFAULT_POLICY.remote_control == ()
    assert policy_problem(FACTORY_DEFAULT_POLICY) is None
    assert policy_problem(ENROLLED_DEFAULT_POLICY) is None
    assert ENROLLED_DEFAULT_POLICY.may_trade  # an enrolled device trades unless told not to
    o, stranger, friend = idkit.owner(1), idkit.owner(2), idkit.owner(3)
    owner_agent = o.agent.agent
    assert not may_control(FACTORY_DEFAULT_POLICY, stranger.agent.agent, None)
    assert not may_control(FACTORY_DEFAULT_POLICY, owner_agent, owner_agent)
    assert may_control(ENROLLED_DEFAULT_POLICY, owner_agent, owner_agent)
    assert not may_control(ENROLLED_DEFAULT_POLICY, stranger.agent.agent, owner_agent)
    shared = Policy(True, (OWNER, friend.agent.agent))
    assert policy_problem(shared) is None
    assert may_control(shared, friend.agent.agent, owner_agent)
    assert policy_problem(Policy(True, (OWNER, OWNER))) is not None


def test_private_certificate_round_trips_with_its_policy(idkit) -> None:
    o, friend = idkit.owner(1), idkit.owner(3)
    cert = issue(
        keyset=o.keyset,
        owner_agent=o.agent,
        device=o.device(4).agent,
        device_type=DeviceType.GENERATOR,
        name="Roof solar",
        zone="au/nsw",
        networks=("ioe-core", "ioe-market"),
        issued_us=idkit.T0,
        serial=7,
        visibility=DeviceVisibility.PRIVATE,
        policy=Policy(True, (OWNER, friend.agent.agent)),
    ).signed_by(o.authz)
    back = EnrollmentCertificate.from_bytes(cert.to_bytes())
    assert back == cert and back.visibility is DeviceVisibility.PRIVATE
    assert back.policy.remote_control == (OWNER, friend.agent.agent)
    assert certificate_problem(back) is None
