"""Crash loop, chain writes: SIGKILL a process in the middle of its chain writes, reopen the
database as a restarted node would, and check that nothing whose commit had returned is gone and
that the chain still verifies.

The writer (:mod:`ioe.check.crash_writer`) prints each commit only after it returned, so the
printed commits are exactly what a caller was told is durable. Kills come in *series*, one
database per series: the first kill of a series comes moments after the writer opened a fresh
database (it may land before, inside or after genesis), the others at a random moment after the
writer's first commit of that run (inside a telemetry commit, most of the time: the writer does
little else). After every kill, the check reopens the database (which verifies incrementally),
verifies every record from genesis, and looks up every commit reported in the whole series, so a
later crash cannot quietly take an earlier commit either.

``tried`` is the number of kills, ``survived`` the kills after which all of that held, ``lost``
the reported commits missing (summed over kills).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ioe.check import crash_writer
from ioe.check.child import Child, ChildFailed
from ioe.check.report import CategoryResult
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.ports import ChainQuery
from ioe.engine.validation import GENESIS_LENGTH
from ioe.errors import IoEError
from ioe.store.sqlite import SqliteDatabase

WRITER_MODULE = "ioe.check.crash_writer"
STARTUP_TIMEOUT_S = 60.0
FIRST_KILL_WITHIN_S = 0.03
"""The first kill of a series comes this soon after ``ready``: genesis takes milliseconds."""
LATER_KILL_S = (0.02, 0.5)
"""Other kills come this long after the run's first commit (uniformly)."""


@dataclass(frozen=True, slots=True)
class Kill:
    """One planned kill: which series (database) and how long after the cue."""

    series: int
    fresh: bool
    """The first kill of its series: timed from ``ready`` on a new database."""
    delay_s: float


def plan(kills: int, per_series: int, rng: random.Random) -> list[Kill]:
    """``kills`` kills in series of ``per_series``, with their delays drawn from ``rng``."""
    if kills < 0 or per_series < 1:
        raise ValueError("kills >= 0 and per_series >= 1")
    planned = []
    for index in range(kills):
        fresh = index % per_series == 0
        delay = rng.uniform(0.0, FIRST_KILL_WITHIN_S) if fresh else rng.uniform(*LATER_KILL_S)
        planned.append(Kill(index // per_series, fresh, delay))
    return planned


def parse_commits(lines: Iterable[str]) -> dict[int, str]:
    """The commits a writer reported (sequence number → action hash text); ``ready`` skipped."""
    commits: dict[int, str] = {}
    for line in lines:
        if line == crash_writer.READY:
            continue
        try:
            seq, action_hash = line.split()
            commits[int(seq)] = action_hash
        except ValueError:
            raise ChildFailed(f"the writer printed {line[:80]!r}, not a commit") from None
    return commits


def missing(reported: Mapping[int, str], present: Mapping[int, str]) -> list[int]:
    """Sequence numbers of reported commits that are not in the chain as reported (gone, or
    another record in their place)."""
    return sorted(seq for seq, action_hash in reported.items() if present.get(seq) != action_hash)


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a reopened database shows: its records by sequence number and how many verified."""

    present: dict[int, str]
    verified: int


def inspect(path: Path) -> Inspection:
    """Open the database as a restarted node does (incremental verification), then verify every
    record from genesis; :class:`IoEError` if it does not open or verify."""
    dna = core_dna()
    agent = KeyPair(crash_writer.SEED).agent
    with SqliteDatabase.open(path, dnas=[dna]) as db:
        records = db.chain(dna.hash, agent).query(ChainQuery(include_entries=False))
        verified = db.verify_all({dna.hash: dna})
    present = {record.action.seq: record.action_hash.to_text() for record in records}
    return Inspection(present, verified)


def judge(inspection: Inspection, reported: Mapping[int, str]) -> list[str]:
    """What is wrong after a kill (nothing: it survived)."""
    problems = []
    gone = missing(reported, inspection.present)
    if gone:
        problems.append(f"{len(gone)} reported commit(s) missing, first seq {gone[0]}")
    if inspection.verified != len(inspection.present):
        problems.append(f"{inspection.verified} of {len(inspection.present)} records verified")
    if 0 < len(inspection.present) < GENESIS_LENGTH:
        problems.append(f"a partial genesis of {len(inspection.present)} record(s)")
    if sorted(inspection.present) != list(range(len(inspection.present))):
        problems.append("the chain's sequence numbers have a gap")
    return problems


def kill_writer(path: Path, kill: Kill) -> dict[int, str]:
    """Run the writer on ``path`` and SIGKILL it as planned; the commits it reported.
    :class:`ChildFailed` if it never got going or died by itself."""
    with Child(WRITER_MODULE, [str(path)]) as child:
        child.wait_lines(1, STARTUP_TIMEOUT_S)  # ready
        if not kill.fresh:
            child.wait_lines(2, STARTUP_TIMEOUT_S)  # its first commit of this run
        time.sleep(kill.delay_s)
        code = child.kill()
        if code != -signal.SIGKILL:
            raise ChildFailed(f"the writer exited with {code}: {child.stderr_tail()}")
        return parse_commits(child.lines)


def run(
    kills: int,
    workdir: Path,
    *,
    seed: int = 0,
    per_series: int = 10,
    deadline_s: float = 3600.0,
    progress: Callable[[str], None] | None = None,
) -> CategoryResult:
    """The chain-write crash loop: ``kills`` kills under ``workdir``, stopping early (and
    saying so) if ``deadline_s`` runs out."""
    result = CategoryResult("crash")
    rng = random.Random(seed)
    started = time.monotonic()
    reported: dict[int, str] = {}
    commits = series = 0
    for kill in plan(kills, per_series, rng):
        if time.monotonic() - started > deadline_s:
            result.fail(f"stopped after {result.tried} kills: the {deadline_s:.0f} s ran out")
            break
        path = workdir / f"chain-{kill.series}.sqlite"
        if kill.fresh:
            reported = {}
            series += 1
        result.tried += 1
        try:
            new = kill_writer(path, kill)
        except ChildFailed as exc:
            result.fail(f"kill {result.tried} (series {kill.series}): {exc}")
            continue
        commits += len(new)
        reported.update(new)
        try:
            inspection = inspect(path)
        except IoEError as exc:
            problems = [f"the database does not open or verify: {exc}"]
            result.lost += len(reported)  # a store that does not open has lost them all
        else:
            problems = judge(inspection, reported)
            result.lost += len(missing(reported, inspection.present))
        if problems:
            result.fail(f"kill {result.tried} (series {kill.series}): " + "; ".join(problems))
        else:
            result.survived += 1
        if progress is not None:
            progress(f"crash: kill {result.tried}/{kills}, {commits} commits reported")
    result.extra.update(
        {
            "kills": result.tried,
            "series": series,
            "commits_reported": commits,
        }
    )
    result.seconds = time.monotonic() - started
    return result


def combined(chain: CategoryResult, payments: CategoryResult) -> CategoryResult:
    """The crash category: the chain-write kills and the payment kills, each part's own
    figures under ``chain`` and ``payments``."""
    result = CategoryResult(
        "crash",
        tried=chain.tried + payments.tried,
        survived=chain.survived + payments.survived,
        lost=chain.lost + payments.lost,
        seconds=chain.seconds + payments.seconds,
    )
    for part, name in ((chain, "chain"), (payments, "payments")):
        result.extra[name] = {
            "tried": part.tried,
            "survived": part.survived,
            "lost": part.lost,
            "seconds": round(part.seconds, 2),
            **part.extra,
        }
        for text in part.failures:
            result.fail(f"{name}: {text}")
    return result
