"""Typed hashes: text forms, their readable prefixes, typed bytes, and what is refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.errors import EncodingError
from ioe.hashing import (
    ActionHash,
    AgentPubKey,
    DnaHash,
    EntryHash,
    ExternalHash,
    HoloHash,
    WarrantHash,
    from_typed_bytes,
    parse_hash_text,
    to_typed_bytes,
)

KINDS: list[type[HoloHash]] = [
    AgentPubKey,
    ActionHash,
    EntryHash,
    DnaHash,
    WarrantHash,
    ExternalHash,
]
PREFIXES = {
    AgentPubKey: "uagnt",
    ActionHash: "uactn",
    EntryHash: "untry",
    DnaHash: "udnah",
    WarrantHash: "uwrnt",
    ExternalHash: "uxtrn",
}
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

kinds = st.sampled_from(KINDS)
digests = st.binary(min_size=32, max_size=32)


@given(kinds, digests)
def test_text_round_trip(kind: type[HoloHash], digest: bytes) -> None:
    value = kind(digest)
    text = value.to_text()
    assert text.startswith(PREFIXES[kind])
    assert len(text) == 1 + 47  # 'u' + base64url of 35 bytes, unpadded
    assert str(value) == text
    for parsed in (kind.from_text(text), parse_hash_text(text), HoloHash.from_text(text)):
        assert type(parsed) is kind
        assert bytes(parsed) == digest


@given(kinds, digests)
def test_text_form_is_base64url_of_prefix_and_digest(kind: type[HoloHash], digest: bytes) -> None:
    raw = base64.urlsafe_b64decode(kind(digest).to_text()[1:] + "=")
    assert raw[3:] == digest
    assert base64.urlsafe_b64encode(raw[:3]).decode() == PREFIXES[kind][1:]


def test_of_is_blake2b_256() -> None:
    data = b"some bytes"
    expected = hashlib.blake2b(data, digest_size=32).digest()
    assert bytes(EntryHash.of(data)) == expected
    assert type(ActionHash.of(data)) is ActionHash


@given(kinds, kinds, digests)
def test_from_text_of_another_kind_is_refused(
    kind: type[HoloHash], other: type[HoloHash], digest: bytes
) -> None:
    text = kind(digest).to_text()
    if other is kind:
        assert other.from_text(text) == kind(digest)
    else:
        with pytest.raises(EncodingError, match="not a"):
            other.from_text(text)


@given(kinds, digests, st.integers(1, 3))
def test_non_canonical_trailing_bits_are_refused(
    kind: type[HoloHash], digest: bytes, bits: int
) -> None:
    # 47 base64 characters carry 282 bits for 280 bits of data: the last 2 bits must be zero.
    text = kind(digest).to_text()
    last = B64URL.index(text[-1])
    assert last & 3 == 0
    tampered = text[:-1] + B64URL[last | bits]
    with pytest.raises(EncodingError, match="canonical"):
        kind.from_text(tampered)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "u",
        "uactn",
        "not a hash at all",
        "x" + ActionHash(bytes(32)).to_text()[1:],  # wrong multibase tag
        ActionHash(bytes(32)).to_text()[:-1],  # too short
        ActionHash(bytes(32)).to_text() + "A",  # too long
        "uzzzz" + ActionHash(bytes(32)).to_text()[5:],  # unknown type tag
        ActionHash(bytes(32)).to_text()[:-2] + "!A",  # not base64url
        ActionHash(bytes(32)).to_text()[:-2] + "éA",  # not ASCII
    ],
)
def test_garbage_text_is_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        parse_hash_text(text)
    with pytest.raises(EncodingError):
        ActionHash.from_text(text)


def test_standard_base64_characters_are_not_an_alternative_spelling() -> None:
    # Find a digest whose text form has a '-' or '_' so the test can't pass vacuously.
    digest = bytes([0xFB, 0xFF] * 16)
    text = ActionHash(digest).to_text()
    assert "-" in text or "_" in text
    with pytest.raises(EncodingError):
        ActionHash.from_text(text.replace("-", "+").replace("_", "/"))


def test_non_string_is_refused() -> None:
    with pytest.raises(EncodingError):
        parse_hash_text(b"uactn" + bytes(48))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 31, 33, 35])
def test_digest_must_be_32_bytes(size: int) -> None:
    with pytest.raises(EncodingError, match="32 bytes"):
        ActionHash(bytes(size))


@given(kinds, digests)
def test_typed_bytes_round_trip(kind: type[HoloHash], digest: bytes) -> None:
    value = kind(digest)
    raw = to_typed_bytes(value)
    assert len(raw) == 35
    assert raw[3:] == digest
    back = from_typed_bytes(raw)
    assert type(back) is kind
    assert back == value


def test_typed_bytes_prefixes_differ_per_kind() -> None:
    digest = bytes(32)
    assert len({to_typed_bytes(kind(digest))[:3] for kind in KINDS}) == len(KINDS)


@pytest.mark.parametrize(
    "raw",
    [b"", bytes(34), bytes(36), b"\x00\x00\x00" + bytes(32)],
    ids=["empty", "short", "long", "unknown prefix"],
)
def test_bad_typed_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(EncodingError):
        from_typed_bytes(raw)


def test_short_form_is_abbreviated_text() -> None:
    value = EntryHash(bytes(range(32)))
    text = value.to_text()
    assert value.short() == f"{text[:9]}…{text[-6:]}"
    assert text in repr(value)
