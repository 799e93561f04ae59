"""The fuzz loop: feed a parser hostile inputs and count what it did with each.

A parser of untrusted input may do two things with bytes: accept them or refuse them with its
documented error (:attr:`Target.refusals`). Anything else is a *crash*:

* any other exception (a ``KeyError`` deep inside, a ``RecursionError``, a ``MemoryError``);
* an input that takes more than :attr:`Bounds.time_s` (measured) — a ``Hang`` is raised into
  the parser after :attr:`Bounds.hang_s` of CPU time, so a loop that never ends still ends;
* an input during which the traced heap grew by more than :attr:`Bounds.memory_bytes` over
  what was allocated before it (``tracemalloc``'s peak): an allocation the input's size does
  not bound (a length field believed, say).

Inputs come from :mod:`ioe.check.mutate` in a fixed mix per target (random bytes, byte-level
mutations of its samples, value-level mutations when the samples are CBOR or JSON), from one
seeded generator per target, so a target's inputs do not depend on which other targets ran.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ioe.check import mutate

MAX_CRASHES_KEPT = 5


class Format(Enum):
    """What a target's samples are, so the right value-level mutations apply."""

    BYTES = "bytes"
    CBOR = "cbor"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Target:
    """A parser of untrusted input, as the fuzzer sees it: ``parse`` takes the raw bytes as
    they arrive from outside (wrapping the parser when it takes text, a path or registers),
    ``refusals`` are its documented errors (empty: it must never raise), ``samples`` are valid
    inputs to mutate. ``weight`` is its share of the inputs."""

    name: str
    parse: Callable[[bytes], object]
    refusals: tuple[type[BaseException], ...]
    samples: tuple[bytes, ...]
    format: Format = Format.CBOR
    max_input: int = 4096
    weight: int = 1
    prefix: int = 0
    """Bytes at the start of each sample that value-level mutations keep as they are (a route
    number before a JSON body, say); byte-level mutations may change them too."""
    time_s: float | None = None
    """This target's own bound on one input's time (a request over loopback, say)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    time_s: float = 1.0
    hang_s: float = 10.0
    memory_bytes: int = 32 * 1024 * 1024


@dataclass(slots=True)
class TargetStats:
    """What one target did with its inputs."""

    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: int = 0
    slowest_ms: float = 0.0
    peak_kib: int = 0
    seconds: float = 0.0
    first_crashes: list[str] = field(default_factory=list)

    def crash(self, text: str) -> None:
        self.crashes += 1
        if len(self.first_crashes) < MAX_CRASHES_KEPT:
            self.first_crashes.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "accepted": self.accepted,
            "refused": self.refused,
            "crashes": self.crashes,
            "slowest_ms": round(self.slowest_ms, 2),
            "peak_kib": self.peak_kib,
            "seconds": round(self.seconds, 2),
        }


class Hang(BaseException):
    """Raised into a parser that ran past :attr:`Bounds.hang_s` of CPU time (a BaseException,
    so a parser's own ``except Exception`` cannot swallow it)."""


def inputs(target: Target, rng: random.Random) -> Iterator[bytes]:
    """Endless hostile inputs for ``target``: 15 % random bytes, 55 % byte mutations of a
    sample, 25 % value mutations (CBOR and JSON targets; else byte mutations), 5 % samples
    as they are (the accepting path must stay healthy too)."""
    samples = target.samples
    mutators = mutate.JSON_MUTATORS if target.format is Format.JSON else mutate.CBOR_MUTATORS
    while True:
        roll = rng.random()
        if roll < 0.15 or not samples:
            yield mutate.random_bytes(rng, target.max_input)
            continue
        sample = rng.choice(samples)
        if roll < 0.2:
            yield sample
            continue
        if roll >= 0.75 and target.format is not Format.BYTES:
            head, body = sample[: target.prefix], sample[target.prefix :]
            mutated = (
                mutate.mutate_json(rng, body)
                if target.format is Format.JSON
                else mutate.mutate_cbor(rng, body)
            )
            if mutated is not None:
                yield head + mutated
                continue
        yield mutate.mutate_bytes(rng, sample, samples, mutators)


@contextlib.contextmanager
def _hang_guard(seconds: float) -> Iterator[Callable[[], None]]:
    """A function that arms a CPU-time alarm raising :class:`Hang` (re-armed per input); a no-op
    outside the main thread, where signals cannot be handled."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang

    def arm() -> None:
        signal.setitimer(signal.ITIMER_VIRTUAL, seconds)

    previous = signal.signal(signal.SIGVTALRM, on_alarm)
    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _describe(data: bytes, problem: str) -> str:
    shown = data[:48].hex()
    more = f"…({len(data)} bytes)" if len(data) > 48 else ""
    return f"{problem} on {shown}{more}"


def fuzz(
    target: Target,
    count: int,
    *,
    seed: int = 0,
    bounds: Bounds | None = None,
    deadline: float | None = None,
) -> TargetStats:
    """Feed ``target`` ``count`` inputs (fewer if the monotonic clock passes ``deadline``)."""
    bounds = bounds or Bounds()
    stats = TargetStats()
    rng = random.Random(f"{seed}/{target.name}")
    started = time.monotonic()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        with _hang_guard(bounds.hang_s) as arm:
            for data in _take(inputs(target, rng), count):
                if deadline is not None and stats.inputs % 256 == 0 and time.monotonic() > deadline:
                    break
                _one(target, data, stats, bounds, arm)
    finally:
        if not tracing:
            tracemalloc.stop()
    stats.seconds = time.monotonic() - started
    return stats


def _take(source: Iterator[bytes], count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield next(source)


def _one(
    target: Target, data: bytes, stats: TargetStats, bounds: Bounds, arm: Callable[[], None]
) -> None:
    stats.inputs += 1
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    began = time.perf_counter()
    arm()
    try:
        target.parse(data)
    except target.refusals:
        stats.refused += 1
    except Hang:
        stats.crash(_describe(data, f"no answer after {bounds.hang_s} s of CPU"))
        return
    except Exception as exc:
        stats.crash(_describe(data, f"{type(exc).__name__}: {str(exc)[:120]}"))
        return
    else:
        stats.accepted += 1
    finally:
        signal_off()
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    grown = max(0, peak - before)
    stats.slowest_ms = max(stats.slowest_ms, elapsed * 1000)
    stats.peak_kib = max(stats.peak_kib, grown // 1024)
    if elapsed > (target.time_s or bounds.time_s):
        stats.crash(_describe(data, f"took {elapsed:.2f} s"))
    elif grown > bounds.memory_bytes:
        stats.crash(_describe(data, f"allocated {grown // 1024} KiB"))


def signal_off() -> None:
    """Disarm the CPU-time alarm (harmless when none is armed or off the main thread)."""
    if threading.current_thread() is threading.main_thread():
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)


def split(total: int, targets: Sequence[Target]) -> dict[str, int]:
    """``total`` inputs shared by weight (every target gets at least one)."""
    weights = sum(t.weight for t in targets)
    shares = {t.name: max(1, total * t.weight // weights) for t in targets}
    first = targets[0].name if targets else ""
    if first:
        shares[first] += max(0, total - sum(shares.values()))
    return shares
