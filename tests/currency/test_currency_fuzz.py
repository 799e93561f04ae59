"""Fuzz: whatever bytes reach the decoder of a currency entry (a transfer, a claim, an
attestation, a receipt, a price), it raises EncodingError or returns a well-typed value
(validation then judges it); nothing else escapes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.encoding import encode
from ioe.engine.schema import decode_as, to_value
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.entries import (
    ClaimAttestation,
    ConsumptionReceipt,
    FeeKind,
    GenerationClaim,
    Kind,
    Party,
    PriceRecord,
    Provenance,
    ReductionClaim,
    Source,
    Terms,
    Transfer,
)
from ioe.zomes.currency.value import Verification

A, B = (KeyPair(bytes([i + 120]) * 32).agent for i in range(2))
SAMPLE = Transfer(
    amount_mc=1_500,
    kind=Kind.TRADE,
    spender=Party(A, ActionHash(b"\x05" * 32), 200, -1_300),
    receiver=Party(B, None, 0, 1_500),
    provenance=Provenance(3_000, Source.SOLAR, True, "au/nsw", Verification.METER_ATTESTED),
    memo="3 kWh",
)
VALID_BYTES = encode(to_value(SAMPLE))


def decodes_or_refuses(data: bytes) -> None:
    try:
        value = decode_as(Transfer, data)
    except EncodingError:
        return
    assert isinstance(value, Transfer)
    assert isinstance(value.kind, Kind) and isinstance(value.amount_mc, int)
    assert isinstance(value.spender.agent, AgentPubKey)
    assert encode(to_value(value)) == data  # only canonical bytes decode


def test_a_transfer_round_trips() -> None:
    assert decode_as(Transfer, VALID_BYTES) == SAMPLE


@settings(max_examples=400)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_encoding_errors(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=400)
@given(st.data())
def test_mutated_transfers_only_raise_encoding_errors(data: st.DataObject) -> None:
    raw = bytearray(VALID_BYTES)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    decodes_or_refuses(bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw))


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=7)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(values)
def test_well_formed_cbor_of_the_wrong_shape_only_raises_encoding_errors(value: object) -> None:
    try:
        data = encode(value)  # type: ignore[arg-type]
    except EncodingError:
        return
    decodes_or_refuses(data)


H = ActionHash(b"\x09" * 32)
ISSUANCE = [
    GenerationClaim(5_000, Source.SOLAR, True, "au/nsw/x", 10, 20, (H,)),
    ReductionClaim(1_200, "au/nsw/x", 10, 20, 27_390, 9_000),
    ClaimAttestation(H, 4_000, Verification.SUBSTATION_ATTESTED, ("au/nsw/x", "au/nsw"), 5, 30),
    ConsumptionReceipt(H, H, A, B, 1_000, "au/nsw/y", -250),
    PriceRecord("au/nsw", 0, 300_000_000, -5_629),
    Transfer(10, Kind.FEE, SAMPLE.spender, SAMPLE.receiver, terms=Terms(H, FeeKind.DISTRIBUTOR)),
]


@settings(max_examples=300)
@given(st.sampled_from(ISSUANCE), st.data())
def test_mutated_issuance_entries_only_raise_encoding_errors(
    sample: object, data: st.DataObject
) -> None:
    cls = type(sample)
    valid = encode(to_value(sample))
    assert decode_as(cls, valid) == sample
    raw = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    try:
        value = decode_as(cls, mutated)
    except EncodingError:
        return
    assert isinstance(value, cls)
    assert encode(to_value(value)) == mutated
