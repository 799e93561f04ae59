"""The engine and all integrity (validation) code must do no I/O: nothing they import may."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import ioe.engine
import ioe.identity

SRC = Path(ioe.engine.__file__).resolve().parents[1]

# Modules whose presence means a way to reach files, sockets, processes, clocks or randomness.
FORBIDDEN = {
    "asyncio", "concurrent", "http", "multiprocessing", "random", "secrets", "select",
    "selectors", "shutil", "socket", "sqlite3", "_sqlite3", "ssl", "subprocess", "tempfile",
    "threading", "urllib", "zoneinfo", "datetime", "time",
}  # fmt: skip

# Names integrity code must not even mention as imports (some, like os and time, are always
# loaded by the interpreter, so only the source can show that integrity code uses them).
FORBIDDEN_IMPORTS = FORBIDDEN | {"os", "io", "pathlib", "sys", "builtins", "importlib", "ctypes"}


IDENTITY_NOT_RULES = ("service", "device_account")
"""The identity room's network services and a device's key holder: not rules validation uses."""


def integrity_modules() -> list[str]:
    engine = [f"ioe.engine.{m.name}" for m in pkgutil.iter_modules(ioe.engine.__path__)]
    zomes = [
        f"ioe.zomes.{path.parent.name}.{path.stem}"
        for path in sorted((SRC / "zomes").glob("*/*.py"))
        if path.stem in ("entries", "validation")
    ]
    identity = [
        f"ioe.identity.{m.name}"
        for m in pkgutil.iter_modules(ioe.identity.__path__)
        if m.name not in IDENTITY_NOT_RULES
    ]
    return ["ioe.engine", "ioe.zones", "ioe.vocabulary", *engine, *zomes, "ioe.identity", *identity]


def test_there_is_integrity_code_to_check() -> None:
    modules = integrity_modules()
    assert "ioe.engine.validation" in modules
    assert "ioe.zomes.telemetry.validation" in modules


def test_importing_engine_and_integrity_code_loads_nothing_that_does_io() -> None:
    modules = integrity_modules()
    script = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    assert any(name.startswith("ioe.engine") for name in loaded)
    offending = sorted(
        name
        for name in loaded
        if name.split(".")[0].lstrip("_") in {f.lstrip("_") for f in FORBIDDEN}
    )
    assert offending == [], f"integrity code pulls in I/O-capable modules: {offending}"


def test_integrity_sources_import_no_io_modules() -> None:
    for module in integrity_modules():
        path = SRC.joinpath(*module.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path.name} imports {name}"
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ioe."):
                allowed = ("ioe.engine", "ioe.zomes", "ioe.encoding", "ioe.hashing", "ioe.errors")
                allowed += ("ioe.crypto.keys", "ioe.zones", "ioe.vocabulary", "ioe.identity")
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
                assert not node.module.startswith(
                    tuple(f"ioe.identity.{name}" for name in IDENTITY_NOT_RULES)
                ), f"{path.name} imports {node.module}"


def test_engine_never_imports_layers_above_it() -> None:
    for path in sorted((SRC / "engine").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for upper in ("ioe.zomes", "ioe.store", "ioe.cli", "ioe.conductor", "ioe.apps"):
                    assert not node.module.startswith(upper), f"{path.name} imports {node.module}"
