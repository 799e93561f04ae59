"""The store contract runs over every ChainStore implementation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ioe.store.memory import MemoryDatabase
from ioe.store.sqlite import SqliteDatabase


@pytest.fixture(params=["sqlite", "memory"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryDatabase()
        return
    database = SqliteDatabase.open(tmp_path / "ioe.db")
    try:
        yield database
    finally:
        database.close()
