"""App entry types as frozen dataclasses, converted to and from canonical values.

A zome declares each entry type as a dataclass whose fields are canonical types (``int``, ``str``,
``bytes``, ``bool``, ``None``-able, ``list[T]``, ``tuple[T, ...]``, ``dict[K, T]``, typed hashes,
``IntEnum`` / ``StrEnum``, ``Any``, or another such dataclass). The canonical value of an instance
is a map from field name to value; decoding checks every field against its annotation, so a
validation function receives a well-typed object or the op is rejected before it runs.

Each type's converter is built once from its annotations and cached: validation decodes every
entry it sees, so this sits on the hot path. :func:`decode_as` walks an entry once: the
converters check exact types, 64-bit integer ranges and the canonical order of map keys
themselves, so the generic canonical check of :func:`ioe.encoding.decode` is not repeated.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from ioe.encoding import MAX_INT, MIN_INT, Value, check_decoded, decode_structure, key_rank
from ioe.errors import EncodingError
from ioe.hashing import HoloHash

T = TypeVar("T")
Converter = Callable[[Any], Any]


def to_value(obj: object) -> Value:
    """The canonical value of a dataclass instance (recursively), maps in canonical key order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {name: to_value(getattr(obj, name)) for name in _wire_order(type(obj))}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, HoloHash):
        return bytes(obj)
    if isinstance(obj, list | tuple):
        return [to_value(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_value(obj[key]) for key in sorted(obj, key=key_rank)}
    return obj


@cache
def _wire_order(cls: type) -> list[str]:
    return sorted((f.name for f in dataclasses.fields(cls)), key=key_rank)


def from_value(cls: type[T], value: Value) -> T:
    """Build an instance of dataclass ``cls`` from its canonical value, checking every type."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise EncodingError(f"{cls!r} is not a dataclass")
    return typing.cast(T, converter(cls)(value))


def decode_as(cls: type[T], data: bytes) -> T:
    """Decode canonical bytes straight into an instance of dataclass ``cls``."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise EncodingError(f"{cls!r} is not a dataclass")
    return typing.cast(T, converter(cls)(decode_structure(data)))


def _any(value: Any) -> Any:
    check_decoded(value)
    return value


def _int(value: Any) -> Any:
    if type(value) is not int:
        raise EncodingError(f"expected int, got {type(value).__name__}")
    if not MIN_INT <= value <= MAX_INT:
        raise EncodingError(f"integer out of the 64-bit range: {value}")
    return value


def _exact(kind: type) -> Converter:
    name = kind.__name__

    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise EncodingError(f"expected {name}, got {type(value).__name__}")
        return value

    return convert


@cache
def converter(annotation: Any) -> Converter:
    """A function checking a canonical value against ``annotation`` and building the object."""
    origin = get_origin(annotation)
    if annotation is Any:
        return _any
    if origin is Union or origin is types.UnionType:
        return _union(get_args(annotation))
    if annotation is type(None) or annotation is None:
        return _exact(type(None))
    if origin is list or origin is tuple:
        return _sequence(annotation, origin)
    if origin is dict:
        key_type, item_type = get_args(annotation) or (Any, Any)
        return _mapping(converter(key_type), converter(item_type))
    if isinstance(annotation, type):
        if dataclasses.is_dataclass(annotation):
            return _dataclass(annotation)
        if issubclass(annotation, HoloHash):
            return _hash(annotation)
        if issubclass(annotation, enum.Enum):
            return _enum(annotation)
        if annotation is int:
            return _int
        if annotation in (bool, str, bytes):
            return _exact(annotation)
    raise EncodingError(f"unsupported field type {annotation!r}")


def _union(options: tuple[Any, ...]) -> Converter:
    if len(options) == 2 and type(None) in options:
        inner = converter(next(o for o in options if o is not type(None)))

        def optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return optional
    converters = [converter(option) for option in options]

    def first_match(value: Any) -> Any:
        for convert in converters:
            try:
                return convert(value)
            except EncodingError:
                continue
        raise EncodingError(f"{value!r:.40} matches none of {options}")

    return first_match


def _sequence(annotation: Any, origin: type) -> Converter:
    args = get_args(annotation)
    if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        raise EncodingError(f"only tuple[T, ...] is supported, not {annotation!r}")
    item = converter(args[0]) if args else _any
    make_tuple = origin is tuple

    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise EncodingError(f"expected a list, got {type(value).__name__}")
        try:
            items = [item(x) for x in value]
        except EncodingError as exc:
            raise EncodingError(f"[item]: {exc}") from None
        return tuple(items) if make_tuple else items

    return convert


def _mapping(key: Converter, item: Converter) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise EncodingError(f"expected a map, got {type(value).__name__}")
        converted = {}
        previous: tuple[int, bytes] | None = None
        try:
            for k, x in value.items():
                rank = key_rank(k)
                if previous is not None and rank <= previous:
                    raise EncodingError("map keys are not in canonical order")
                previous = rank
                converted[key(k)] = item(x)
        except EncodingError as exc:
            raise EncodingError(f"[entry]: {exc}") from None
        return converted

    return convert


def _dataclass(cls: type) -> Converter:
    hints = get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    converters = [(f.name, converter(hints[f.name])) for f in fields]
    names = [f.name for f in fields]
    wire_order = sorted(names, key=key_rank)
    positional = all(not f.kw_only for f in fields)
    label = cls.__name__

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise EncodingError(f"{label}: expected a map, got {type(value).__name__}")
        if list(value) != wire_order:
            names = set(wire_order)
            missing, extra = names - value.keys(), value.keys() - names
            if missing or extra:
                raise EncodingError(
                    f"{label}: missing {sorted(missing)}, "
                    f"unexpected {sorted(extra, key=_any_order)[:8]}"
                )
            raise EncodingError(f"{label}: map keys are not in canonical order")
        args = []
        for name, convert_field in converters:
            try:
                args.append(convert_field(value[name]))
            except EncodingError as exc:
                raise EncodingError(f"{label}.{name}: {exc}") from None
        if positional:
            return cls(*args)
        return cls(**dict(zip(names, args, strict=True)))

    return convert


def _any_order(key: object) -> tuple[str, str]:
    """Sorts map keys of mixed types (a peer's map may mix text and integers) for messages."""
    return type(key).__name__, repr(key)


def _hash(kind: type[HoloHash]) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is not bytes or len(value) != 32:
            raise EncodingError(f"expected a 32-byte {kind.KIND}")
        return kind(value)

    return convert


def _enum(kind: type[enum.Enum]) -> Converter:
    wire_types = {type(member.value) for member in kind}

    def convert(value: Any) -> Any:
        # Exactly the members' wire type: not a bool, nor a CBOR simple value that compares
        # equal to an integer (either would decode from bytes that do not re-encode the same).
        if type(value) not in wire_types:
            raise EncodingError(f"expected a {kind.__name__} value, got {type(value).__name__}")
        try:
            return kind(value)
        except ValueError as exc:
            raise EncodingError(str(exc)) from None

    return convert
