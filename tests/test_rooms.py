"""The rooms keep to their ports: nothing below the composition root imports ``ioe.node``,
apps reach the node only through the app host port, and no import hides inside a function to
break a circle (``docs/architecture.md``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import ioe

SRC = Path(ioe.__file__).resolve().parent

ROOMS_BELOW_THE_NODE = (
    "apps",
    "community",
    "appstore",
    "identity",
    "wallet",
    "services",
    "dht",
    "zomes",
    "drivers",
)
"""Packages the node assembles: they are handed ports and never reach back for the node."""

APPS_MAY_NOT_IMPORT = (
    "ioe.node",
    "ioe.wallet",
    "ioe.identity.service",
    "ioe.conductor",
    "ioe.dht",
    "ioe.net",
    "ioe.store",
    "ioe.services.remote",
    "ioe.services.countersign",
    "ioe.services.device",
)
"""An app asks its node for everything through :class:`ioe.apps.host.AppHost`."""

LAZY_IMPORTS_ALLOWED = ("cli",)
"""The command line imports what a command needs when it runs, so ``--help`` stays quick."""


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((SRC / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[str, ast.stmt]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node
            for alias in node.names:  # ``from ioe import node``
                yield f"{node.module}.{alias.name}", node


def _named(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_there_are_rooms_to_check() -> None:
    for room in ("apps/demand", "identity/service", "wallet", "services"):
        assert list(_modules(room)), room


@pytest.mark.parametrize("room", ROOMS_BELOW_THE_NODE)
def test_rooms_never_import_the_node(room: str) -> None:
    offending = [
        f"{path.relative_to(SRC)}:{stmt.lineno} imports {module}"
        for path in _modules(room)
        for module, stmt in _imports(path)
        if _named(module, "ioe.node")
    ]
    assert offending == []


def test_apps_reach_their_node_only_through_the_app_host() -> None:
    offending = [
        f"{path.relative_to(SRC)}:{stmt.lineno} imports {module}"
        for path in _modules("apps")
        for module, stmt in _imports(path)
        if any(_named(module, banned) for banned in APPS_MAY_NOT_IMPORT)
    ]
    assert offending == []


def test_no_import_hides_inside_a_function() -> None:
    offending = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] in LAZY_IMPORTS_ALLOWED:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for stmt in ast.walk(func):
                if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("ioe"):
                    offending.append(f"{path.relative_to(SRC)}:{stmt.lineno} {stmt.module}")
    assert offending == []


def test_the_checks_see_an_offence(tmp_path: Path) -> None:
    """The parser the checks rest on finds a function-level and a TYPE_CHECKING import."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ioe.node.runtime import Node\n"
        "def f():\n"
        "    from ioe import node\n"
    )
    found = [module for module, _ in _imports(sample)]
    assert "ioe.node.runtime" in found
    assert "ioe.node" in found
