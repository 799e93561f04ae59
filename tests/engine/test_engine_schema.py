"""Entry dataclasses to canonical values and back, and the errors that name the bad field."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.encoding import decode, encode
from ioe.engine.schema import decode_as, from_value, to_value
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey, EntryHash


class Phase(enum.IntEnum):
    ONE = 1
    THREE = 3


class Mode(enum.StrEnum):
    IMPORT = "import"
    EXPORT = "export"


@dataclass(frozen=True)
class Point:
    name: str
    value: int


@dataclass(frozen=True)
class Everything:
    count: int
    label: str
    raw: bytes
    flag: bool
    maybe: int | None
    items: list[int]
    pair_list: tuple[str, ...]
    table: dict[str, int]
    by_number: dict[int, Point]
    point: Point
    points: list[Point]
    phase: Phase
    mode: Mode
    author: AgentPubKey
    previous: ActionHash | None
    entries: list[EntryHash]
    either: int | str
    anything: Any
    nothing: None = None
    note: str = field(default="")


ints = st.integers(-(2**63), 2**63)
texts = st.text(max_size=10)
points = st.builds(Point, texts, ints)


def hashes(kind: type[Any]) -> st.SearchStrategy[Any]:
    return st.binary(min_size=32, max_size=32).map(kind)


everything = st.builds(
    Everything,
    count=ints,
    label=texts,
    raw=st.binary(max_size=10),
    flag=st.booleans(),
    maybe=st.none() | ints,
    items=st.lists(ints, max_size=4),
    pair_list=st.lists(texts, max_size=4).map(tuple),
    table=st.dictionaries(texts, ints, max_size=3),
    by_number=st.dictionaries(ints, points, max_size=3),
    point=points,
    points=st.lists(points, max_size=3),
    phase=st.sampled_from(Phase),
    mode=st.sampled_from(Mode),
    author=hashes(AgentPubKey),
    previous=st.none() | hashes(ActionHash),
    entries=st.lists(hashes(EntryHash), max_size=3),
    either=ints | texts,
    anything=st.none() | ints | texts | st.lists(ints, max_size=3),
    nothing=st.none(),
    note=texts,
)


def assert_types_match(a: Any, b: Any) -> None:
    """Same value and same types all the way down (``==`` alone says 1 == True, bytes == hash)."""
    assert type(a) is type(b)
    assert a == b
    if isinstance(a, list | tuple):
        for x, y in zip(a, b, strict=True):
            assert_types_match(x, y)
    elif isinstance(a, dict):
        for key in a:
            assert_types_match(a[key], b[key])
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            assert_types_match(getattr(a, name), getattr(b, name))


@given(everything)
def test_round_trip_through_canonical_bytes(value: Everything) -> None:
    back = from_value(Everything, decode(encode(to_value(value))))
    assert_types_match(back, value)


def test_canonical_value_is_a_map_of_plain_values() -> None:
    digest = bytes(range(32))
    value = to_value(Point("p", 1))
    assert value == {"name": "p", "value": 1}
    assert to_value(Phase.THREE) == 3
    assert type(to_value(Phase.THREE)) is int
    assert type(to_value(Mode.IMPORT)) is str
    assert type(to_value(ActionHash(digest))) is bytes
    assert to_value((Point("a", 1),)) == [{"name": "a", "value": 1}]


def good_value() -> dict[str, Any]:
    return to_value(
        Everything(
            count=1,
            label="l",
            raw=b"r",
            flag=True,
            maybe=None,
            items=[1],
            pair_list=("a",),
            table={"a": 1},
            by_number={1: Point("p", 2)},
            point=Point("q", 3),
            points=[],
            phase=Phase.ONE,
            mode=Mode.EXPORT,
            author=AgentPubKey(bytes(32)),
            previous=None,
            entries=[EntryHash(bytes(32))],
            either=5,
            anything=[1, "x"],
        )
    )


def test_good_value_converts() -> None:
    assert from_value(Everything, good_value()).point == Point("q", 3)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("count", "1"),
        ("count", True),
        ("label", b"l"),
        ("raw", "r"),
        ("flag", 1),
        ("maybe", "x"),
        ("items", [1, "2"]),
        ("items", (1,)),
        ("items", {"a": 1}),
        ("pair_list", [1]),
        ("table", {"a": "1"}),
        ("table", {1: 1}),
        ("table", [["a", 1]]),
        ("by_number", {1: {"name": "p"}}),
        ("point", {"name": "q", "value": "3"}),
        ("point", {"name": "q", "value": 3, "extra": 0}),
        ("point", ["q", 3]),
        ("phase", 2),
        ("phase", True),
        ("phase", "ONE"),
        ("mode", "IMPORT"),
        ("mode", 1),
        ("author", bytes(31)),
        ("author", "agent"),
        ("previous", bytes(33)),
        ("entries", [bytes(32), b"short"]),
        ("either", b"x"),
        ("either", None),
        ("nothing", 0),
    ],
)
def test_wrong_type_names_the_field(name: str, bad: Any) -> None:
    value = good_value()
    value[name] = bad
    with pytest.raises(EncodingError, match=rf"Everything\.{name}\b"):
        from_value(Everything, value)


def test_nested_errors_name_the_inner_field() -> None:
    value = good_value()
    value["point"] = {"name": "q", "value": "3"}
    with pytest.raises(EncodingError, match=r"Everything\.point: Point\.value"):
        from_value(Everything, value)


def test_missing_and_extra_fields_are_named() -> None:
    value = good_value()
    del value["label"]
    with pytest.raises(EncodingError, match=r"missing \['label'\]"):
        from_value(Everything, value)
    value = good_value()
    value["colour"] = "red"
    with pytest.raises(EncodingError, match=r"unexpected \['colour'\]"):
        from_value(Everything, value)
    value[0] = None  # a peer's map may mix integer and text keys: still an EncodingError
    with pytest.raises(EncodingError, match="unexpected"):
        from_value(Everything, value)


def test_defaults_do_not_make_fields_optional_on_the_wire() -> None:
    value = good_value()
    del value["note"]
    with pytest.raises(EncodingError, match="note"):
        from_value(Everything, value)


def test_top_level_must_be_a_map_and_the_class_a_dataclass() -> None:
    with pytest.raises(EncodingError, match="expected a map"):
        from_value(Point, ["p", 1])
    with pytest.raises(EncodingError, match="not a dataclass"):
        from_value(int, 1)  # type: ignore[type-var]


def test_unsupported_annotations_are_refused() -> None:
    @dataclass
    class WithFloat:
        x: float

    @dataclass
    class WithFixedTuple:
        x: tuple[int, str]

    for cls in (WithFloat, WithFixedTuple):
        with pytest.raises(EncodingError, match="support"):
            from_value(cls, {"x": 1})


# -------------------------------------------------- decode_as: one walk, every canonical check


@given(everything)
def test_decode_as_equals_decode_then_from_value(value: Everything) -> None:
    data = encode(to_value(value))
    assert_types_match(decode_as(Everything, data), from_value(Everything, decode(data)))


def test_to_value_puts_map_keys_in_canonical_order() -> None:
    value = to_value(Point("p", 1))
    assert list(value) == ["name", "value"]
    assert list(to_value({"bb": 1, "a": 2, "ccc": 3})) == ["a", "bb", "ccc"]
    assert encode(to_value(Point("p", 1))) == cbor2.dumps({"value": 1, "name": "p"}, canonical=True)


@dataclass(frozen=True)
class Loose:
    count: int
    table: dict[str, int]
    anything: Any


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"count": 1.5, "table": {}, "anything": 0}, "count"),
        ({"count": 2**64, "table": {}, "anything": 0}, "count"),
        ({"count": 1, "table": {"a": 1.0}, "anything": 0}, "table"),
        ({"count": 1, "table": {"b": 1, "a": 2}, "anything": 0}, "canonical order"),
        ({"count": 1, "table": {}, "anything": [1, 2.5]}, "anything"),
        ({"count": 1, "table": {}, "anything": {"y": 1, "x": 1}}, "canonical order"),
        ({"table": {}, "count": 1, "anything": 0}, "canonical order"),
        ({"count": 1, "table": {}}, "missing"),
    ],
)
def test_decode_as_rejects_what_decode_would(raw: dict[str, Any], problem: str) -> None:
    data = cbor2.dumps(raw)  # plain mode: keeps the (possibly wrong) key order given here
    with pytest.raises(EncodingError, match=problem):
        decode_as(Loose, data)


@given(st.binary(max_size=64))
def test_decode_as_accepts_only_canonical_bytes(data: bytes) -> None:
    """Fuzz: whatever decode_as accepts re-encodes to exactly the same bytes."""
    try:
        value = decode_as(Loose, data)
    except EncodingError:
        return
    assert encode(to_value(value)) == data


@given(st.dictionaries(st.sampled_from(["count", "table", "anything"]), st.integers(0, 3)))
def test_decode_as_on_mutated_maps_never_accepts_non_canonical(raw: dict[str, Any]) -> None:
    data = cbor2.dumps(raw)
    try:
        value = decode_as(Loose, data)
    except EncodingError:
        return
    assert encode(to_value(value)) == data


@dataclass(frozen=True)
class Phased:
    phase: Phase
    mode: Mode


@pytest.mark.parametrize(
    "raw",
    [
        {"mode": "import", "phase": cbor2.CBORSimpleValue(1)},  # equal to 1, but not an int
        {"mode": "import", "phase": True},
        {"mode": "import", "phase": "1"},
        {"mode": 1, "phase": 1},
    ],
)
def test_an_enum_field_takes_only_its_members_wire_type(raw: dict[str, Any]) -> None:
    with pytest.raises(EncodingError, match="expected a"):
        decode_as(Phased, cbor2.dumps(raw))
    assert decode_as(Phased, encode({"mode": "import", "phase": 1})) == Phased(
        Phase.ONE, Mode.IMPORT
    )
