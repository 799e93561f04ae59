"""Hostile inputs from a seeded random generator: random bytes, byte-level mutations of valid
samples, and value-level mutations of samples that are CBOR or JSON.

Valid samples matter: random bytes rarely get past a parser's first check, while a sample with
one field changed reaches the checks deep inside (a signature over the right bytes, a hash of
the wrong length, an integer one past the range). The tokens below are the values parsers get
wrong most often: lengths that announce gigabytes, nesting past every limit, integers just
outside 64 bits, numbers that are not finite, text that is not UTF-8.

Everything here is pure: the same ``random.Random`` state gives the same inputs, so a crash
found once can be found again from its seed and input number.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import cbor2

Mutator = Callable[[random.Random, bytes, Sequence[bytes]], bytes]

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x17, 0x18, 0x1F, 0x20, 0x9F, 0xBF, 0xF6)
CBOR_TOKENS = (
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # a byte string announcing 2**64 - 1 bytes
    b"\x7b\x00\x00\x00\x01\x00\x00\x00\x00",  # a text string of 4 GiB
    b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff",  # an array of 4 billion items
    b"\xbb\x00\x00\x00\x00\xff\xff\xff\xff",  # a map of 4 billion pairs
    b"\x9f" * 40,  # indefinite arrays, nested
    b"\x81" * 100,  # arrays nested 100 deep
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",  # 2**64 - 1
    b"\x3b\xff\xff\xff\xff\xff\xff\xff\xff",  # -(2**64)
    b"\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # a bignum tag: 2**64
    b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # NaN
    b"\xf9\x7c\x00",  # half-precision infinity
    b"\xd8\x1e\x82\x01\x00",  # a rational tag dividing by zero
    b"\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",  # a timestamp of infinity
    b"\x62\xc3\x28",  # text that is not UTF-8
    b"\xf7",  # undefined
    b"\xff",  # a break outside an indefinite item
)
JSON_TOKENS = (
    b"1e999999",
    b"-1e999999",
    b"NaN",
    b"Infinity",
    b"-0",
    b"1" * 5000,  # more digits than int() takes from text
    b"18446744073709551616",
    b"-9223372036854775809",
    b'"\\ud800"',  # a lone surrogate
    b'"\\u0000"',
    b'"\xff\xfe"',
    b"[" * 200,
    b"{" * 200,
    b"[" * 3000,  # past the recursion limit of a recursive decoder
    b'{"a":' * 1500,
    b'{"a":' * 60 + b"1" + b"}" * 60,
    b"null",
    b"true",
    b"[]",
    b"{}",
    b'""',
    b"0.1",
    b'"' + b"x" * 70000 + b'"',
)


def _nested(depth: int) -> list[Any]:
    """Lists nested ``depth`` deep: past every depth limit of the decoders."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**64),
    -(2**64) - 1,
    "",
    "x" * 300,
    "\u202e\x00",
    b"",
    b"\x00" * 31,
    b"\x00" * 32,
    b"\x00" * 33,
    b"\x84\x20\x24" + b"\x00" * 36,
    [],
    {},
    _nested(40),
    {"": None},
    {1: 2},
)


def _has_int_keys(value: Any) -> bool:
    return isinstance(value, dict) and any(not isinstance(k, str) for k in value)


ODD_JSON_VALUES: tuple[Any, ...] = (
    *(v for v in _ODD_VALUES if not isinstance(v, bytes) and not _has_int_keys(v)),
    1.5,
    -0.0,
    1e308,
    "uhCAk" + "A" * 48,
    "au/nsw/newtown",
)


# --------------------------------------------------------------------------- random bytes


def random_bytes(rng: random.Random, max_size: int) -> bytes:
    """Random bytes, mostly short (where parsers decide what they are looking at)."""
    limit = rng.choice((4, 16, 64, 256, max_size))
    return rng.randbytes(rng.randint(0, min(limit, max_size)))


# ------------------------------------------------------------------------ byte mutations


def _flip_bit(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([1 << rng.randrange(8)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _set_byte(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    value = rng.choice(INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    if not data:
        return bytes([value])
    i = rng.randrange(len(data))
    return data[:i] + bytes([value]) + data[i + 1 :]


def _insert(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    i = rng.randint(0, len(data))
    return data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i:]


def _delete(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, min(16, len(data) - i)) :]


def _duplicate(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = rng.randint(i + 1, min(len(data), i + 64))
    return data[:j] + data[i:j] * rng.randint(1, 4) + data[j:]


def _truncate(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
    return data[: rng.randint(0, len(data))]


def _splice(rng: random.Random, data: bytes, samples: Sequence[bytes]) -> bytes:
    other = rng.choice(samples) if samples else data
    return data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]


def _token(tokens: Sequence[bytes]) -> Mutator:
    def insert_token(rng: random.Random, data: bytes, _: Sequence[bytes]) -> bytes:
        i = rng.randint(0, len(data))
        token = rng.choice(tokens)
        if rng.random() < 0.5:  # in place of what was there
            return data[:i] + token + data[i + len(token) :]
        return data[:i] + token + data[i:]

    return insert_token


BYTE_MUTATORS: tuple[Mutator, ...] = (
    _flip_bit,
    _set_byte,
    _insert,
    _delete,
    _duplicate,
    _truncate,
    _splice,
)
CBOR_MUTATORS = (*BYTE_MUTATORS, _token(CBOR_TOKENS))
JSON_MUTATORS = (*BYTE_MUTATORS, _token(JSON_TOKENS))


def mutate_bytes(
    rng: random.Random, sample: bytes, samples: Sequence[bytes], mutators: Sequence[Mutator]
) -> bytes:
    """``sample`` after one to eight mutations drawn from ``mutators``."""
    data = sample
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        data = rng.choice(mutators)(rng, data, samples)
    return data


# ----------------------------------------------------------------------- value mutations


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    """Every place in a decoded value (the root included), to depth 8."""
    found = [prefix]
    if depth >= 8:
        return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i), depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key), depth + 1)
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy_list = list(value)
        copy_list[head] = _replaced(value[head], rest, new)
        return copy_list
    copy_dict = dict(value)
    copy_dict[head] = _replaced(value[head], rest, new)
    return copy_dict


def _changed(rng: random.Random, old: Any, pool: Sequence[Any], everything: list[Any]) -> Any:
    """Something to put where ``old`` was."""
    choice = rng.random()
    if choice < 0.35:
        return rng.choice(pool)
    if choice < 0.5 and everything:
        return rng.choice(everything)  # a value from elsewhere in the sample: the wrong field
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return old + rng.choice((-1, 1, 2**32, -(2**63), 2**64))
    if isinstance(old, bytes):
        cut = rng.randint(0, len(old))
        return old[:cut] + old[cut + 1 :] if rng.random() < 0.5 else old + old[:1]
    if isinstance(old, str):
        cut = rng.randint(0, len(old))
        return old[:cut] + old[cut + 1 :] if rng.random() < 0.5 else old + old[:1]
    if isinstance(old, list):
        if old and rng.random() < 0.5:
            return old[:-1]
        return [*old, rng.choice(pool)]
    if isinstance(old, dict):
        keys = list(old)
        if keys and rng.random() < 0.5:
            return {k: v for k, v in old.items() if k != rng.choice(keys)}  # a field missing
        return {**old, rng.choice(("x", "from", "sig", "kind", 0)): rng.choice(pool)}
    return rng.choice(pool)


def mutate_value(rng: random.Random, value: Any, pool: Sequence[Any]) -> Any:
    """``value`` with one to three places changed (a field dropped, added, retyped, swapped
    for another field's value, or pushed past its range)."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = _paths(value)
        everything = [_get(value, p) for p in paths]
        path = rng.choice(paths)
        value = _replaced(value, path, _changed(rng, _get(value, path), pool, everything))
    return value


def mutate_cbor(rng: random.Random, sample: bytes) -> bytes | None:
    """A value-level mutation of a CBOR ``sample``, re-encoded (canonically or not); None if
    the sample is not CBOR."""
    try:
        value = cbor2.loads(sample)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError):
        return None
    if isinstance(value, bytes) and value[:1] and rng.random() < 0.5:
        inner = mutate_cbor(rng, value)  # a byte string that holds CBOR itself (a body)
        if inner is not None:
            return cbor2.dumps(inner)
    new = mutate_value(rng, value, _ODD_VALUES)
    try:
        return cbor2.dumps(new, canonical=rng.random() < 0.8)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError):
        return None


def mutate_json(rng: random.Random, sample: bytes) -> bytes | None:
    """A value-level mutation of a JSON ``sample``, re-encoded; None if it is not JSON."""
    try:
        value = json.loads(sample)
    except (ValueError, RecursionError):
        return None
    new = mutate_value(rng, value, ODD_JSON_VALUES)
    try:
        text = json.dumps(new, allow_nan=True, separators=rng.choice(((",", ":"), (", ", ": "))))
    except (ValueError, TypeError, RecursionError):
        return None
    return text.encode("utf-8", "surrogatepass")
