"""What a reliability category found, and the two ways it is shown: a table for people and one
JSON object for scripts.

The JSON is a contract (``docs/reliability.md``): ``{"categories": {NAME: {"tried", "survived",
"lost", ...}}}``. Those three keys keep their names and meaning in every category; a category
adds whatever else it measured next to them, so the contract never has to change to say more.
Nothing here runs a check or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CONTRACT_KEYS = ("tried", "survived", "lost")
MAX_FAILURES_SHOWN = 20
"""A category keeps at most this many failure descriptions: enough to find the defect, never a
wall of text that hides the summary."""


@dataclass(slots=True)
class CategoryResult:
    """One category's figures.

    ``tried`` counts the attempts (kills, inputs, probes), ``survived`` those after which
    everything held, ``lost`` what the category counts as damage (committed records missing,
    parser crashes, probes let through). ``extra`` holds the category's other figures (keys must
    not clash with the contract's); ``failures`` describes what went wrong, first ones first."""

    name: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        """Note a failure; only the first :data:`MAX_FAILURES_SHOWN` keep their text."""
        if len(self.failures) < MAX_FAILURES_SHOWN:
            self.failures.append(text)

    @property
    def ok(self) -> bool:
        """Everything tried survived and nothing was lost (and something was tried)."""
        return self.tried > 0 and self.survived == self.tried and self.lost == 0

    def to_json(self) -> dict[str, Any]:
        clash = set(self.extra) & {*CONTRACT_KEYS, "seconds", "ok", "failures"}
        if clash:
            raise ValueError(f"extra figures may not reuse the keys {sorted(clash)}")
        return {
            "tried": self.tried,
            "survived": self.survived,
            "lost": self.lost,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            **self.extra,
            "failures": list(self.failures),
        }


def to_json(results: Iterable[CategoryResult]) -> dict[str, Any]:
    """The contract's object for ``results`` (in the order they ran)."""
    return {"categories": {result.name: result.to_json() for result in results}}


def render_table(results: Iterable[CategoryResult]) -> list[str]:
    """One line per category, aligned, then each category's failures indented below it."""
    rows = [("category", "tried", "survived", "lost", "seconds", "")]
    failures: list[tuple[str, list[str]]] = []
    for result in results:
        verdict = "ok" if result.ok else "FAILED"
        rows.append(
            (
                result.name,
                str(result.tried),
                str(result.survived),
                str(result.lost),
                f"{result.seconds:.1f}",
                verdict,
            )
        )
        if result.failures:
            failures.append((result.name, result.failures))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i in (0, 5) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    for name, texts in failures:
        lines.append(f"{name}:")
        lines.extend(f"  {text}" for text in texts)
    return lines
