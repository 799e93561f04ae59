"""Entry types of the profile zome."""

from __future__ import annotations

from dataclasses import dataclass

MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class Profile:
    """Public: how an agent introduces itself. ``zone`` is a path from the widest area down,
    lower-case segments separated by ``/`` (``au/nsw/newtown/king-st``)."""

    name: str
    zone: str
