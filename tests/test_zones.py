"""Zone paths: validity, distance and boundary crossings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.zones import boundaries_crossed, common_depth, parse_zone, zone_distance, zone_problem

STREET = "au/nsw/newtown/king-st"


@pytest.mark.parametrize(
    ("a", "b", "distance", "crossed"),
    [
        (f"{STREET}/12", f"{STREET}/12", 0, 0),
        (f"{STREET}/12", f"{STREET}/14", 1, 2),
        (f"{STREET}/12", "au/nsw/newtown/enmore-rd/3", 2, 4),
        (f"{STREET}/12", "au/nsw/glebe/a/1", 3, 6),
        (f"{STREET}/12", "au/vic/fitzroy/b/1", 4, 8),
        ("au/nsw/newtown", f"{STREET}/12", 0, 2),
    ],
)
def test_distance_and_crossings(a: str, b: str, distance: int, crossed: int) -> None:
    assert zone_distance(a, b) == distance
    assert boundaries_crossed(a, b) == crossed


@pytest.mark.parametrize("bad", ["", "AU/nsw", "au//nsw", "au/nsw/", "-x", "a/" * 8 + "a", "é"])
def test_bad_zones_are_refused_with_a_reason(bad: str) -> None:
    assert zone_problem(bad)
    with pytest.raises(ValueError, match="zone"):
        parse_zone(bad)


segments = st.lists(
    st.sampled_from(["au", "nsw", "vic", "x", "y", "1", "2"]), min_size=1, max_size=8
)


@given(a=segments, b=segments)
def test_distance_is_symmetric_and_bounded(a: list[str], b: list[str]) -> None:
    za, zb = "/".join(a), "/".join(b)
    assert zone_distance(za, zb) == zone_distance(zb, za)
    assert 0 <= zone_distance(za, zb) <= max(len(a), len(b))
    assert common_depth(za, zb) <= min(len(a), len(b))
    assert (zone_distance(za, zb) == 0) == (common_depth(za, zb) == min(len(a), len(b)))
