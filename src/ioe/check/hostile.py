"""Hostile input: every parser of untrusted input fuzzed, and oversized input dropped before
parsing.

``tried`` counts the fuzz inputs plus the oversize probes; ``lost`` counts the inputs that
crashed a parser (:mod:`ioe.check.fuzz` says what a crash is) plus the probes whose input was
not refused for its size; ``survived`` is the rest. The JSON adds, per parser, how many inputs
it got, accepted, refused and crashed on, its slowest input and the most memory one input made
it allocate (``parsers``), and each probe's outcome (``oversize``).

The HTTP API is fuzzed on a real node in this process (:mod:`ioe.check.api_target`), so its
share of inputs runs at the speed of requests over loopback (about a thousand a second).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ioe.check import fuzz, oversize, parsers
from ioe.check.api_target import ApiTarget
from ioe.check.report import CategoryResult
from ioe.check.scratch import ScratchNodes
from ioe.node.api import MAX_BODY

QUICK_INPUTS = 20_000
FULL_INPUTS = 1_000_000


def run(
    total: int,
    nodes: ScratchNodes,
    *,
    seed: int = 0,
    deadline_s: float = 7200.0,
    progress: Callable[[str], None] | None = None,
) -> CategoryResult:
    """Fuzz every target with ``total`` inputs in all (shared by weight), then the probes."""
    result = CategoryResult("hostile")
    started = time.monotonic()
    deadline = started + deadline_s
    node = nodes.add("hostile")
    api = ApiTarget(node)
    try:
        targets = (*parsers.targets(), api.target())
        shares = fuzz.split(total, targets)
        per_parser: dict[str, dict[str, object]] = {}
        inputs = 0
        for target in targets:
            stats = fuzz.fuzz(target, shares[target.name], seed=seed, deadline=deadline)
            per_parser[target.name] = stats.to_json()
            inputs += stats.inputs
            result.tried += stats.inputs
            result.lost += stats.crashes
            for text in stats.first_crashes:
                result.fail(f"{target.name}: {text}")
            if progress is not None:
                progress(
                    f"hostile: {target.name}: {stats.inputs} inputs, {stats.crashes} crashes, "
                    f"{stats.seconds:.1f} s"
                )
        if inputs < total:
            result.fail(f"stopped at {inputs} of {total} inputs: {deadline_s:.0f} s ran out")
        probes = {probe.name: oversize.run_probe(probe) for probe in oversize.PROBES}
        probes["http.body"] = _oversized_body(api)
        for name, problem in probes.items():
            result.tried += 1
            if problem is None:
                continue
            result.lost += 1
            result.fail(f"oversize {name}: {problem}")
    finally:
        api.close()
        parsers.forget_network_file()
    result.survived = result.tried - result.lost
    result.extra.update(
        {
            "inputs": inputs,
            "parsers": per_parser,
            "oversize": {name: problem or "dropped" for name, problem in probes.items()},
            "api_statuses": {str(k): v for k, v in sorted(api.statuses.items())},
        }
    )
    result.seconds = time.monotonic() - started
    return result


def _oversized_body(api: ApiTarget) -> str | None:
    """A body one byte over the API's limit is refused with 413 before any handler reads it."""
    try:
        status = api.send("POST", "/v1/profile", b" " * (MAX_BODY + 1))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if status == 413 else f"answered {status}, not 413"
