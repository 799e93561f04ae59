"""The access category, as CI runs it: every API route refuses a missing or wrong token, every
secret file is 0600, a stranger's calls are refused, a private device is not listed by others,
and the libp2p port refuses every security protocol but Noise."""

from __future__ import annotations

from pathlib import Path

from reliability_kit import category

from ioe.check import access, reliability
from ioe.check.report import to_json


def test_access_lets_nothing_through(tmp_path: Path) -> None:
    [result] = reliability.run(["access"], quick=True, workdir=tmp_path)
    figures = category(to_json([result]), "access")
    assert figures["failures"] == [], figures["failures"]
    assert figures["lost"] == 0 and figures["tried"] == figures["survived"]
    groups = figures["groups"]
    assert set(groups) == {"api", "files", "remote", "directory", "p2p"}
    assert all(g["tried"] == g["refused"] > 0 for g in groups.values())
    assert groups["api"]["tried"] > 100  # two attempts on each of the API's routes
    assert groups["files"]["tried"] >= 10
    assert figures["public_routes"] == ["GET /app/demand/", "GET /app/demand/{file}"]
    assert figures["open_functions"] == ["currency.ledger_head"]
    assert figures["noise_control"] == "/noise"
    assert list(tmp_path.iterdir()) == []  # the scratch data is gone


def test_a_file_another_user_can_read_is_let_through(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "keystore.json").write_text("{}")
    (data / "keystore.json").chmod(0o644)
    (data / "node.json").write_text("{}")
    (data / "node.json").chmod(0o600)
    attempts = {a.name: a for a in access.file_attempts(data)}
    assert attempts["data/keystore.json"].refused is False
    assert attempts["data/keystore.json"].answer == "0o644"
    assert attempts["data/node.json"].refused is True
    assert attempts["data/."].refused is True
