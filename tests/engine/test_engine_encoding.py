"""Canonical encoding: round trips, agreement with cbor2's canonical mode, and every rejection."""

from __future__ import annotations

import enum
from typing import Any

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ioe.encoding import DEFAULT_MAX_SIZE, MAX_DEPTH, MAX_INT, MIN_INT, decode, encode
from ioe.errors import EncodingError
from ioe.hashing import ActionHash

ints = st.integers(MIN_INT, MAX_INT)
scalars = st.none() | st.booleans() | ints | st.binary(max_size=40) | st.text(max_size=20)
keys = st.text(max_size=6) | ints
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells 1 from True (plain == does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        typed_keys = {(type(k), k) for k in a}
        return typed_keys == {(type(k), k) for k in b} and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def in_subset(value: Any) -> bool:
    """Whether ``value`` is made only of the canonical types (exact types, not subclasses)."""
    kind = type(value)
    if kind is int:
        return MIN_INT <= value <= MAX_INT
    if kind in (type(None), bool, bytes, str):
        return True
    if kind is list:
        return all(in_subset(item) for item in value)
    if kind is dict:
        return all(
            (type(k) is str or (type(k) is int and in_subset(k))) and in_subset(v)
            for k, v in value.items()
        )
    return False


def nested(depth: int) -> list[Any]:
    """``depth`` arrays, each inside the next."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@given(values)
def test_round_trip(value: Any) -> None:
    decoded = decode(encode(value))
    assert same(decoded, value)
    assert in_subset(decoded)


@given(values)
def test_encode_is_cbor2_canonical(value: Any) -> None:
    assert encode(value) == cbor2.dumps(value, canonical=True)


@given(st.lists(values, max_size=4))
def test_tuples_encode_as_arrays(items: list[Any]) -> None:
    assert encode(tuple(items)) == encode(items)


def test_typed_hashes_and_enums_encode_as_their_plain_values() -> None:
    class Colour(enum.IntEnum):
        RED = 7

    class Mode(enum.StrEnum):
        FAST = "fast"

    digest = bytes(range(32))
    assert encode(ActionHash(digest)) == encode(digest)
    assert encode({"c": Colour.RED, "m": Mode.FAST}) == encode({"c": 7, "m": "fast"})
    assert same(decode(encode([Colour.RED])), [7])


def test_integer_range_edges() -> None:
    assert decode(encode(MAX_INT)) == MAX_INT
    assert decode(encode(MIN_INT)) == MIN_INT
    assert encode(MAX_INT) == b"\x1b" + b"\xff" * 8
    assert encode(MIN_INT) == b"\x3b" + b"\xff" * 8


def test_map_keys_sort_length_first() -> None:
    # Bytewise, "aa" < "b"; canonical CBOR orders by encoded length first.
    assert encode({"aa": 1, "b": 2}) == b"\xa2\x61b\x02\x62aa\x01"
    assert encode({100: 0, "a": 0, 1: 0}) == b"\xa3\x01\x00\x18\x64\x00\x61a\x00"


def test_nesting_limit_is_the_same_both_ways() -> None:
    deepest = nested(MAX_DEPTH)
    assert decode(encode(deepest)) == deepest
    with pytest.raises(EncodingError, match="deeper"):
        encode(nested(MAX_DEPTH + 1))
    with pytest.raises(EncodingError, match="deeper"):
        encode({"a": nested(MAX_DEPTH)})
    with pytest.raises(EncodingError):
        decode(cbor2.dumps(nested(MAX_DEPTH + 1)))
    with pytest.raises(EncodingError):
        decode(b"\x81" * 1000 + b"\x80")  # far deeper than cbor2's own limit


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        0.0,
        [1, 2.0],
        {"a": float("nan")},
        MAX_INT + 1,
        MIN_INT - 1,
        [2**100],
        {b"k": 1},
        {(1, 2): 1},
        {None: 1},
        {True: 1},
        {1.0: 1},
        {1, 2},
        frozenset({1}),
        cbor2.CBORTag(100, 1),
        cbor2.undefined,
        cbor2.CBORSimpleValue(16),
        bytearray(b"x"),
        object(),
    ],
    # an object's repr holds its address, which differs between test workers
    ids=lambda value: "object()" if type(value) is object else repr(value),
)
def test_encode_rejects_values_outside_the_subset(value: Any) -> None:
    with pytest.raises(EncodingError):
        encode(value)


@pytest.mark.parametrize("cached", [1, 0])
def test_bool_and_float_keys_are_rejected_even_when_the_equal_int_key_was_seen(
    cached: int,
) -> None:
    # True == 1 and 1.0 == 1 hash alike, so a key-rank cache keyed on the value alone would let
    # them through once the integer key had been encoded.
    encode({cached: "x"})
    for key in (bool(cached), float(cached)):
        with pytest.raises(EncodingError):
            encode({key: "x"})
        with pytest.raises(EncodingError):
            decode(cbor2.dumps({key: "x"}))
        with pytest.raises(EncodingError):
            decode(cbor2.dumps({key: "x"}, canonical=True))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xf9\x3c\x00", id="half float"),
        pytest.param(b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", id="double float"),
        pytest.param(b"\xf7", id="undefined"),
        pytest.param(b"\xf0", id="simple value"),
        pytest.param(b"\xc2\x41\x01", id="bignum tag for 1"),
        pytest.param(cbor2.dumps(2**64), id="bignum over range"),
        pytest.param(cbor2.dumps(-(2**64) - 1), id="negative bignum over range"),
        pytest.param(b"\xd8\x64\x01", id="tag 100"),
        pytest.param(cbor2.dumps({1, 2}), id="set"),
        pytest.param(b"\x01\x00", id="trailing byte"),
        pytest.param(encode([1, 2]) + b"\x80", id="trailing array"),
        pytest.param(b"\x18\x01", id="non-minimal int"),
        pytest.param(b"\x19\x00\x17", id="non-minimal int 16-bit"),
        pytest.param(b"\x38\x00", id="non-minimal negative int"),
        pytest.param(b"\x58\x01x", id="non-minimal bytes length"),
        pytest.param(b"\x79\x00\x01a", id="non-minimal text length"),
        pytest.param(b"\x98\x01\x01", id="non-minimal array length"),
        pytest.param(b"\xa2\x61b\x01\x61a\x02", id="unsorted keys"),
        pytest.param(b"\xa2\x62aa\x01\x61b\x02", id="keys sorted bytewise not length-first"),
        pytest.param(b"\xa2\x18\x64\x00\x01\x00", id="unsorted int keys"),
        pytest.param(b"\xa2\x61a\x01\x61a\x02", id="duplicate keys"),
        pytest.param(b"\x9f\x01\xff", id="indefinite array"),
        pytest.param(b"\xbf\x61a\x01\xff", id="indefinite map"),
        pytest.param(b"\x5f\x41a\xff", id="indefinite bytes"),
        pytest.param(b"\x7f\x61a\xff", id="indefinite text"),
        pytest.param(b"\xa1\x41k\x01", id="bytes key"),
        pytest.param(b"\xa1\x81\x01\x01", id="array key"),
        pytest.param(b"\xa1\xf6\x01", id="null key"),
        pytest.param(b"\x61\xff", id="invalid utf-8"),
        pytest.param(b"\x82\x01", id="truncated array"),
        pytest.param(b"\x5a\xff\xff\xff\xff", id="truncated long bytes"),
        pytest.param(b"\xff", id="lone break"),
    ],
)
def test_decode_rejects_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(EncodingError):
        decode(data)


def test_decode_size_limit() -> None:
    data = encode(b"x" * 100)
    assert decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(EncodingError, match="limit"):
        decode(data, max_size=len(data) - 1)
    big = encode(b"\x00" * DEFAULT_MAX_SIZE)  # over the default by its 5-byte header
    with pytest.raises(EncodingError, match="limit"):
        decode(big)


def test_decode_accepts_buffer_types() -> None:
    data = encode({"a": [1, b"2"]})
    assert decode(bytearray(data)) == {"a": [1, b"2"]}
    assert decode(memoryview(data)) == {"a": [1, b"2"]}


def _mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(values)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


mutated = st.composite(_mutations)()


@settings(max_examples=300)
@given(st.binary(max_size=64) | mutated)
@example(b"\xa1\xf5\x00")  # {true: 0}
@example(b"\xa1\xf9\x3c\x00\x00")  # {1.0: 0}
def test_decode_fuzz_returns_canonical_values_or_raises_encoding_error(data: bytes) -> None:
    try:
        value = decode(data)
    except EncodingError:
        return
    assert in_subset(value)
    assert encode(value) == data
