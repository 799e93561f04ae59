"""Zones: hierarchical names for where energy is (``au/nsw/newtown/king-st/12``).

A zone is a path from the widest area down: 1 to 8 segments of lower-case letters, digits and
``-`` (at most 32 characters each), separated by ``/``. Nothing here does I/O; zones are used by
integrity code (profiles, the currency's local preference and boundary fees).
"""

from __future__ import annotations

import re

MAX_ZONE_SEGMENTS = 8
MAX_ZONE_SEGMENT = 32
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9-]*\Z")


def zone_problem(zone: str) -> str | None:
    """Why ``zone`` is not a zone path, or None."""
    segments = zone.split("/")
    if not zone or len(segments) > MAX_ZONE_SEGMENTS:
        return f"a zone has 1 to {MAX_ZONE_SEGMENTS} segments"
    for segment in segments:
        if len(segment) > MAX_ZONE_SEGMENT or not _SEGMENT.match(segment):
            return f"bad zone segment {segment[:40]!r} (lower-case letters, digits and -)"
    return None


def parse_zone(zone: str) -> tuple[str, ...]:
    """The segments of ``zone``; ``ValueError`` saying why when it is not a zone."""
    problem = zone_problem(zone)
    if problem:
        raise ValueError(problem)
    return tuple(zone.split("/"))


def common_depth(a: str, b: str) -> int:
    """How many leading segments two zones share (``au/nsw/x`` and ``au/vic`` share 1)."""
    depth = 0
    for left, right in zip(parse_zone(a), parse_zone(b), strict=False):
        if left != right:
            break
        depth += 1
    return depth


def zone_distance(a: str, b: str) -> int:
    """How far apart two zones are: 0 for the same zone (or one inside the other), else how many
    levels the deeper of the two climbs to reach their common ancestor. Symmetric; siblings on one
    street (``.../king-st/12`` and ``.../king-st/14``) are 1 apart, neighbouring suburbs 2."""
    shared = common_depth(a, b)
    deeper = max(len(parse_zone(a)), len(parse_zone(b)))
    if shared == min(len(parse_zone(a)), len(parse_zone(b))):
        return 0
    return deeper - shared


def boundaries_crossed(a: str, b: str) -> int:
    """Zone boundaries a flow from ``a`` to ``b`` crosses: up from ``a`` to the common ancestor,
    then down to ``b`` (each crossing can carry a fee)."""
    shared = common_depth(a, b)
    return len(parse_zone(a)) - shared + len(parse_zone(b)) - shared
