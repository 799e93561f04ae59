"""The fuzz loop finds what it is meant to find: an undocumented exception, an input that
allocates without bound, one that never ends; and its inputs are the same for the same seed."""

from __future__ import annotations

import itertools
import random

import pytest

from ioe.check import fuzz, mutate, oversize, parsers
from ioe.check.fuzz import Bounds, Format, Target
from ioe.errors import EncodingError


def _strict(data: bytes) -> None:
    if data[:1] == b"\xff":
        raise KeyError("deep inside")
    if data[:1] == b"\x00":
        raise EncodingError("refused")


def test_an_undocumented_exception_is_a_crash_and_a_documented_one_is_not() -> None:
    target = Target("strict", _strict, (EncodingError,), (b"\x00", b"\x01"), Format.BYTES)
    stats = fuzz.fuzz(target, 3000, seed=1)
    assert stats.inputs == 3000
    assert stats.refused > 0 and stats.accepted > 0
    assert stats.crashes > 0
    assert stats.accepted + stats.refused + stats.crashes == stats.inputs
    assert "KeyError: 'deep inside' on ff" in stats.first_crashes[0]


def test_an_allocation_past_the_bound_is_a_crash() -> None:
    def hungry(data: bytes) -> None:
        if len(data) > 8:
            bytearray(4 * 1024 * 1024)

    target = Target("hungry", hungry, (), (b"x" * 16,), Format.BYTES)
    stats = fuzz.fuzz(target, 200, bounds=Bounds(memory_bytes=1024 * 1024))
    assert stats.crashes > 0
    assert "allocated" in stats.first_crashes[0]
    assert stats.peak_kib >= 4096


def test_an_input_that_never_ends_is_stopped_and_counted() -> None:
    def spin(data: bytes) -> None:
        while data == b"spin":
            pass

    target = Target("spin", spin, (), (b"spin",), Format.BYTES)
    stats = fuzz.fuzz(target, 40, seed=3, bounds=Bounds(hang_s=0.2, time_s=5.0))
    assert stats.crashes >= 1
    assert "no answer after 0.2 s of CPU" in stats.first_crashes[0]


def test_the_same_seed_gives_the_same_inputs() -> None:
    target = Target("any", lambda data: None, (), (b'{"a": [1, 2]}',), Format.JSON)

    def first(seed: int) -> list[bytes]:
        return list(itertools.islice(fuzz.inputs(target, random.Random(seed)), 200))

    assert first(7) == first(7) != first(8)


def test_value_mutations_keep_a_prefix() -> None:
    target = Target("api", lambda data: None, (), (b"\x05" + b'{"a": 1}',), Format.JSON, prefix=1)
    inputs = list(itertools.islice(fuzz.inputs(target, random.Random(2)), 400))
    mutated = [i for i in inputs if i[:1] == b"\x05" and i != target.samples[0]]
    assert len(mutated) > 100


def test_shares_follow_weights_and_add_up() -> None:
    targets = [
        Target("a", print, (), (), weight=3),
        Target("b", print, (), (), weight=1),
        Target("c", print, (), (), weight=1),
    ]
    shares = fuzz.split(1000, targets)
    assert sum(shares.values()) == 1000
    assert shares["b"] == shares["c"] == 200 and shares["a"] == 600


def test_value_mutation_changes_a_decoded_value() -> None:
    rng = random.Random(4)
    value = {"a": [1, 2, {"b": b"x"}], "c": "text"}
    changed = [mutate.mutate_value(rng, value, (None, 0, "")) for _ in range(50)]
    assert value == {"a": [1, 2, {"b": b"x"}], "c": "text"}  # the sample is left alone
    assert sum(c != value for c in changed) > 40


def test_every_target_accepts_its_own_samples() -> None:
    for target in parsers.targets():
        for sample in target.samples:
            target.parse(sample)  # no refusal, no crash


@pytest.mark.parametrize("probe", oversize.PROBES, ids=lambda p: p.name)
def test_every_oversized_input_is_refused_for_its_size(probe: oversize.Probe) -> None:
    assert oversize.run_probe(probe) is None


def test_a_parser_that_parses_first_fails_its_probe() -> None:
    def parses_first() -> None:
        raise EncodingError("not a list")

    probe = oversize.Probe("late", parses_first, EncodingError)
    assert "another reason" in str(oversize.run_probe(probe))
