"""``ioe chain verify`` and ``ioe chain show`` on a data directory whose store was changed by
another program: a column kept beside a record's signed bytes is named by verification, and
refused when read."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

PASS = "correct horse battery staple"


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IOE_PASSPHRASE": PASS}
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("node")
    done = ioe("init", "--data-dir", str(data), "--json")
    assert done.returncode == 0, done.stderr
    verify = ioe("chain", "verify", "--data-dir", str(data), "--json")
    assert json.loads(verify.stdout.strip().splitlines()[-1]) == {
        "ok": True,
        "chains": 1,
        "records": 4,
    }
    return data


@pytest.mark.parametrize(
    ("column", "change"),
    [("entry_index", "entry_index + 1"), ("timestamp", "timestamp - 1"), ("type", "4")],
)
def test_a_changed_column_beside_the_signed_bytes_fails_verify_and_show(
    initialised: Path, tmp_path: Path, column: str, change: str
) -> None:
    data = tmp_path / "node"
    shutil.copytree(initialised, data)
    # Record #2 is the genesis Create of the agent's key entry (type 3, entry type [255, 0]).
    with closing(sqlite3.connect(data / "ioe.sqlite")) as conn, conn:
        changed = conn.execute(f"UPDATE actions SET {column} = {change} WHERE seq = 2").rowcount
    assert changed == 1
    verify = ioe("chain", "verify", "--data-dir", str(data), "--json")
    assert verify.returncode == 1
    assert json.loads(verify.stdout.strip().splitlines()[-1])["seq"] == 2
    assert "record #2" in verify.stderr
    assert f"stored {column} differs from the signed action's" in verify.stderr
    show = ioe("chain", "show", "--data-dir", str(data))
    assert show.returncode != 0
    assert "record #2" in show.stderr
