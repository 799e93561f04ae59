"""Every identity decoder, fed random bytes, mutated documents or random canonical values,
either decodes or raises EncodingError — never anything else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.encoding import decode, encode
from ioe.errors import EncodingError
from ioe.identity.authority import AuthoritySpec, Keyset, KeysetChange, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.identity.reputation import EventKind, Observation, ReputationClaim
from ioe.identity.revocation import KeyRevocation
from ioe.identity.transfer import TransferCertificate
from ioe.vocabulary import DeviceType

ALICE = OwnerAccount.from_root_seed(b"\x01" * 32)
BOB = OwnerAccount.from_root_seed(b"\x02" * 32)


def _certificate(owner: OwnerAccount, device: int) -> EnrollmentCertificate:
    authz = owner.authorization_key()
    keyset = Keyset(single_owner(authz.agent, owner.revocation_key().agent))
    keyset = keyset.extended(keyset.propose(AuthoritySpec.of(1, [authz.agent]), 5).signed_by(authz))
    return issue(
        keyset=keyset,
        owner_agent=owner.agent_key(),
        device=device_agent_key(owner.device_seed(device), 0).agent,
        device_type=DeviceType.MONITOR,
        name="Meter",
        zone="au/nsw",
        networks=("ioe-core",),
        issued_us=9,
        serial=3,
    ).signed_by(authz)


OLD, NEW = _certificate(ALICE, 1), _certificate(BOB, 2)
SAMPLES: dict[str, tuple[Callable[[bytes], object], bytes]] = {
    "certificate": (EnrollmentCertificate.from_bytes, OLD.to_bytes()),
    "keyset-change": (KeysetChange.from_bytes, OLD.keyset.changes[0].to_bytes()),
    "revocation": (
        KeyRevocation.from_bytes,
        KeyRevocation.new(OLD.keyset, OLD.device, last_valid_seq=2, issued_us=1, reason="r")
        .signed_by(ALICE.authorization_key())
        .to_bytes(),
    ),
    "transfer": (
        TransferCertificate.from_bytes,
        TransferCertificate.between(OLD, NEW, old_last_seq=4, issued_us=10)
        .signed_by_old(ALICE.authorization_key())
        .signed_by_new(BOB.authorization_key())
        .to_bytes(),
    ),
    "claim": (
        ReputationClaim.from_bytes,
        ReputationClaim.make(
            KeyPair(b"\x07" * 32), OLD.device, [Observation(OLD.device, EventKind.DR_MISSED, 1)], 2
        ).to_bytes(),
    ),
}
DECODERS = [decoder for decoder, _ in SAMPLES.values()]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_encoding_errors(decoder: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(EncodingError):
        decoder(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_decode(name: str) -> None:
    decoder, data = SAMPLES[name]
    assert decoder(data) is not None


@FUZZ
@given(st.binary(max_size=512), st.sampled_from(DECODERS))
def test_random_bytes(data: bytes, decoder: Callable[[bytes], object]) -> None:
    only_encoding_errors(decoder, data)


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_documents(name: str, data: st.DataObject) -> None:
    decoder, sample = SAMPLES[name]
    raw = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    only_encoding_errors(decoder, bytes(raw[:cut] if data.draw(st.booleans()) else raw))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=70)
    | st.text(max_size=20)
    | st.sampled_from(["owner", "public", "storage", "ioe-core", "au/nsw"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=16) | st.integers(0, 9), inner, max_size=6)
    ),
    max_leaves=40,
)


@FUZZ
@given(values, st.sampled_from(DECODERS))
def test_random_canonical_values(value: object, decoder: Callable[[bytes], object]) -> None:
    only_encoding_errors(decoder, encode(value))


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_documents_with_one_field_replaced(name: str, data: st.DataObject) -> None:
    decoder, sample = SAMPLES[name]
    value = decode(sample)
    key = data.draw(st.sampled_from(sorted(value)))
    value[key] = data.draw(values)
    only_encoding_errors(decoder, encode(value))
