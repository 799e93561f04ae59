"""Canonical encoding: the one byte form of everything that is hashed or signed.

The encoding is CBOR (RFC 8949) restricted to a deterministic subset:

* types: ``None``, ``bool``, integers in [-2**64, 2**64 - 1], byte strings, text strings,
  arrays (lists or tuples) and maps whose keys are text strings or integers;
* no floats, tags, undefined, simple values or indefinite lengths — energy is integer Wh,
  money integer milli-credits, time integer microseconds;
* shortest-form lengths and integers, map keys sorted length-first then bytewise
  (the "canonical CBOR" of RFC 7049 §3.9, which cbor2 produces), no duplicate keys.

:func:`decode` accepts exactly the bytes :func:`encode` produces: it decodes, checks the types and
the order of every map's keys, and re-encodes, so any other spelling of the same value (trailing
bytes, long-form integers or lengths, unsorted keys) is an :class:`~ioe.errors.EncodingError`.
Hashes and keys are plain byte strings here; their type comes from their position in a structure.

Both directions sort or check map keys in Python and let cbor2 write in plain mode: cbor2's own
canonical mode costs several times more on maps, and this sits on every validation.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import cbor2

from ioe.errors import EncodingError

Value: TypeAlias = Any
"""A canonical value: None | bool | int | bytes | str | list[Value] | dict[str | int, Value]."""

MAX_INT = 2**64 - 1
MIN_INT = -(2**64)
MAX_DEPTH = 32
DEFAULT_MAX_SIZE = 4 * 1024 * 1024


_SCALARS = frozenset({bytes, str, bool, type(None)})
_KEY_CACHE: dict[str | int, tuple[int, bytes]] = {}
_KEY_CACHE_LIMIT = 65536


def key_rank(key: str | int) -> tuple[int, bytes]:
    """Canonical order of a map key: length of its encoding, then the encoding's bytes."""
    key_kind = type(key)
    if key_kind is not str and key_kind is not int:  # before the cache: True == 1 == 1.0
        raise EncodingError(f"map key of type {key_kind.__name__}; only str or int")
    rank = _KEY_CACHE.get(key)
    if rank is None:
        if isinstance(key, int):
            _check_int(key)
        encoded = cbor2.dumps(key)
        rank = (len(encoded), encoded)
        if len(_KEY_CACHE) >= _KEY_CACHE_LIMIT:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = rank
    return rank


def _check_int(value: int) -> None:
    if not MIN_INT <= value <= MAX_INT:
        raise EncodingError(f"integer out of the 64-bit range: {value}")


def _canonical(value: Any, depth: int) -> Any:
    """``value`` checked against the subset, with every map's keys in canonical order."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        _check_int(value)
        return value
    if depth >= MAX_DEPTH and (kind is list or kind is tuple or kind is dict):
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if kind is list or kind is tuple:
        return [_canonical(item, depth + 1) for item in value]
    if kind is dict:
        keys = sorted(value, key=key_rank)
        return {key: _canonical(value[key], depth + 1) for key in keys}
    if isinstance(value, bytes):  # typed hashes and keys are bytes subclasses
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):  # IntEnum
        return _canonical(int(value), depth)
    if isinstance(value, str):  # StrEnum
        return str(value)
    raise EncodingError(f"type {type(value).__name__} cannot be canonically encoded")


def _check_decoded(value: Any, depth: int) -> None:
    """Raise unless a freshly decoded value lies in the subset with keys in canonical order.

    Hot path (every validation decodes): scalars inside containers are checked inline rather
    than by a call each.
    """
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        _check_int(value)
        return
    if depth >= MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if kind is list:
        for item in value:
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is int and MIN_INT <= item <= MAX_INT):
                continue
            _check_decoded(item, depth + 1)
        return
    if kind is dict:
        previous: tuple[int, bytes] | None = None
        for key, item in value.items():
            rank = key_rank(key)
            if previous is not None and rank <= previous:
                raise EncodingError("map keys are not in canonical order")
            previous = rank
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is int and MIN_INT <= item <= MAX_INT):
                continue
            _check_decoded(item, depth + 1)
        return
    raise EncodingError(f"type {type(value).__name__} is not allowed in canonical encoding")


def encode(value: Value) -> bytes:
    """Encode ``value`` canonically; :class:`EncodingError` for anything outside the subset."""
    try:
        return cbor2.dumps(_canonical(value, 0))
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, EncodingError):
            raise
        raise EncodingError(f"cannot encode: {exc}") from exc


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Decode canonical bytes, rejecting anything :func:`encode` would not have produced."""
    value = decode_structure(data, max_size=max_size)
    check_decoded(value)
    return value


def check_decoded(value: Value) -> None:
    """Raise :class:`EncodingError` unless a value from :func:`decode_structure` lies in the
    canonical subset: allowed types only, 64-bit integers, map keys in canonical order."""
    _check_decoded(value, 0)


def decode_structure(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Decode and check that ``data`` is the shortest encoding of its value, with no trailing
    bytes — but *not* the types or the order of map keys.

    Only for callers that check every type and key order themselves while converting the value
    (``ioe.engine.schema.decode_as`` does, so an entry is walked once instead of twice);
    everyone else uses :func:`decode`.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise EncodingError(f"{len(data)} bytes is over the limit of {max_size}")
    if not data:
        raise EncodingError("empty input")
    try:
        value = cbor2.loads(
            data,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            max_depth=MAX_DEPTH + 1,
        )
        again = cbor2.dumps(value)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EncodingError(f"not valid CBOR: {exc}") from exc
    if again != data:
        raise EncodingError("not in canonical form (or trailing bytes)")
    return value
