"""``ioe check reliability``: the categories of the reliability suite and the runner.

Each category is a function from :class:`Settings` to a :class:`~ioe.check.report.CategoryResult`,
one for each name in :mod:`ioe.check.catalog` (a name without a runner fails at import). Only
categories that really run are listed: a category that is not built yet has no row, rather than
a row of zeros that reads as a pass. The quick form of each category is what CI runs, through
the tests in ``tests/check``; the full form is what ``docs/reliability.md`` reports.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ioe.check import access, catalog, crash, hostile, payments
from ioe.check.report import CategoryResult
from ioe.check.scratch import ScratchNodes

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Settings:
    """How a category runs: ``quick`` (CI's few seconds) or full, from ``seed``, in its own
    scratch directory ``workdir``, telling ``progress`` what it is doing."""

    quick: bool
    seed: int
    workdir: Path
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    summary: str
    run: Callable[[Settings], CategoryResult]


def _crash(settings: Settings) -> CategoryResult:
    chain = crash.run(
        15 if settings.quick else 100,
        settings.workdir,
        seed=settings.seed,
        per_series=5 if settings.quick else 10,
        progress=settings.progress,
    )
    paying = payments.run(
        3 if settings.quick else 100,
        settings.workdir,
        seed=settings.seed,
        progress=settings.progress,
    )
    return crash.combined(chain, paying)


def _hostile(settings: Settings) -> CategoryResult:
    total = hostile.QUICK_INPUTS if settings.quick else hostile.FULL_INPUTS
    with ScratchNodes(settings.workdir) as nodes:
        return hostile.run(total, nodes, seed=settings.seed, progress=settings.progress)


def _access(settings: Settings) -> CategoryResult:
    with ScratchNodes(settings.workdir) as nodes:
        return access.run(nodes, progress=settings.progress)


_RUNNERS: dict[str, Callable[[Settings], CategoryResult]] = {
    "crash": _crash,
    "hostile": _hostile,
    "access": _access,
}
CATEGORIES: dict[str, Category] = {
    name: Category(name, summary, _RUNNERS[name]) for name, summary in catalog.CATEGORIES.items()
}


def run(
    names: Sequence[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> list[CategoryResult]:
    """Run the categories ``names`` (all, in table order, when None); each gets a fresh
    scratch directory under ``workdir`` (a temporary directory when None, removed after)."""
    chosen = list(CATEGORIES) if names is None else list(names)
    unknown = [name for name in chosen if name not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {sorted(CATEGORIES)}")
    with tempfile.TemporaryDirectory(prefix="ioe-reliability-", dir=workdir) as scratch:
        results = []
        for name in chosen:
            where = Path(scratch) / name
            where.mkdir(mode=0o700)
            began = time.monotonic()
            result = CATEGORIES[name].run(Settings(quick, seed, where, progress))
            result.seconds = time.monotonic() - began
            results.append(result)
        return results
