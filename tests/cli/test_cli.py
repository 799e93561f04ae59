"""The command line, run as users and scripts run it: in a separate process."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ioe import __version__
from ioe.cli.main import build_parser
from ioe.hashing import AgentPubKey

pytestmark = pytest.mark.process

PASS = "correct horse battery staple"


def ioe(
    *args: str, stdin: str | None = None, passphrase: str | None = PASS
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "IOE_PASSPHRASE"}
    if passphrase is not None:
        env["IOE_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def last_json(out: str) -> dict[str, object]:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    data = tmp_path_factory.mktemp("node")
    done = ioe("init", "--data-dir", str(data), "--json")
    assert done.returncode == 0, done.stderr
    return data, last_json(done.stdout)


def test_version() -> None:
    done = ioe("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ioe {__version__}"


def test_every_command_has_help_text() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = [] if parser.description else [path]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name} (no help)")
                    missing += walk(sub, f"{path} {name}")
            elif action.help is None and action.dest != "help":
                missing.append(f"{path} {action.dest}")
        return missing

    assert walk(build_parser(), "ioe") == []


def test_init_json_gives_mnemonic_and_owner(initialised: tuple[Path, dict[str, object]]) -> None:
    data, result = initialised
    words = str(result["mnemonic"]).split()
    assert len(words) == 24
    AgentPubKey.from_text(str(result["owner"]))
    keystore = data / "keystore.json"
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert " ".join(words) not in keystore.read_text()


def test_init_twice_is_refused_and_changes_nothing(
    initialised: tuple[Path, dict[str, object]],
) -> None:
    data, _ = initialised
    before = (data / "keystore.json").read_bytes()
    again = ioe("init", "--data-dir", str(data), "--json")
    assert again.returncode != 0
    assert "already" in again.stderr
    assert (data / "keystore.json").read_bytes() == before


def test_recover_reproduces_the_owner(
    initialised: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    _, result = initialised
    done = ioe(
        "recover",
        "--data-dir",
        str(tmp_path / "restored"),
        "--json",
        stdin=f"{result['mnemonic']}\n",
    )
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout) == {"owner": result["owner"]}


def test_recover_with_a_bad_phrase_fails_clearly(tmp_path: Path) -> None:
    done = ioe(
        "recover", "--data-dir", str(tmp_path / "x"), "--json", stdin="abandon " * 23 + "zzzz\n"
    )
    assert done.returncode == 1
    assert "error:" in done.stderr
    assert not (tmp_path / "x" / "keystore.json").exists()


def test_init_with_key_file_needs_no_passphrase(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    done = ioe(
        "init", "--data-dir", str(tmp_path / "n"), "--key-file", str(key), "--json", passphrase=None
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_init_without_passphrase_or_tty_fails_clearly(tmp_path: Path) -> None:
    done = ioe("init", "--data-dir", str(tmp_path / "n"), passphrase=None)
    assert done.returncode == 1
    assert "IOE_PASSPHRASE" in done.stderr


def test_chain_show_and_verify_on_a_fresh_account(
    initialised: tuple[Path, dict[str, object]],
) -> None:
    data, result = initialised
    show = ioe("chain", "show", "--data-dir", str(data))
    assert show.returncode == 0, show.stderr
    assert f"chain of {result['owner']}" in show.stdout
    for kind in ("Dna", "AgentValidationPkg", "Create", "InitZomesComplete"):
        assert kind in show.stdout
    verify = ioe("chain", "verify", "--data-dir", str(data), "--json")
    assert verify.returncode == 0, verify.stderr
    assert last_json(verify.stdout) == {"ok": True, "chains": 1, "records": 4}


@pytest.fixture()
def demo_dir(tmp_path: Path) -> Path:
    done = ioe("demo", "--duration", "2", "--data-dir", str(tmp_path), passphrase=None)
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["tamper_detected"] is True
    assert summary["batches"] >= 1
    return tmp_path / "plug"


def _flip(db: Path, table: str, column: str, key: str, where: str) -> None:
    with sqlite3.connect(db) as conn:
        blob, rowkey = conn.execute(f"SELECT {column}, {key} FROM {table} {where}").fetchone()
        flipped = bytearray(blob)
        flipped[len(flipped) // 3] ^= 0x40
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (bytes(flipped), rowkey))
    conn.close()


@pytest.mark.parametrize(
    ("table", "column", "key", "where"),
    [
        ("actions", "signed", "hash", "WHERE seq = 5 ORDER BY cell_id DESC"),
        ("entries", "content", "hash", "ORDER BY length(content) DESC"),
    ],
)
def test_chain_verify_names_the_first_bad_record(
    demo_dir: Path, table: str, column: str, key: str, where: str
) -> None:
    assert ioe("chain", "verify", "--data-dir", str(demo_dir)).returncode == 0
    _flip(demo_dir / "ioe.sqlite", table, column, key, where)
    done = ioe("chain", "verify", "--data-dir", str(demo_dir))
    assert done.returncode != 0
    assert "record #" in done.stderr
    assert "FAILED" in done.stderr


def test_chain_show_displays_readings(demo_dir: Path) -> None:
    show = ioe("chain", "show", "--data-dir", str(demo_dir))
    assert show.returncode == 0, show.stderr
    assert "reading_batch" in show.stdout
    assert "power_mw" in show.stdout


def test_chain_verify_of_a_missing_directory_fails(tmp_path: Path) -> None:
    done = ioe("chain", "verify", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "no database" in done.stderr


def test_bench_chain_prints_ratio_json() -> None:
    done = ioe("bench", "chain", "--entries", "300", "--batch", "50", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    for key in ("entries_per_s", "raw_verify_per_s", "ratio", "author_entries_per_s"):
        assert float(result[key]) > 0  # type: ignore[arg-type]
    assert result["records_validated"] == 304
    assert result["ratio"] == pytest.approx(
        float(result["entries_per_s"]) / float(result["raw_verify_per_s"]),
        rel=0.01,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"properties": {"currency": {"credit_limits": {"default_mc": 1.5}}}}', "integers"),
        ('{"properties": {"currency": {"symbol": ""}}}', "symbol"),
    ],
)
def test_init_with_a_bad_network_file_fails_clearly(
    tmp_path: Path, text: str, problem: str
) -> None:
    network = tmp_path / "network.json"
    network.write_text(text)
    done = ioe("init", "--data-dir", str(tmp_path / "x"), "--network", str(network), "--json")
    assert done.returncode == 1
    assert "error:" in done.stderr and problem in done.stderr
    assert not (tmp_path / "x" / "keystore.json").exists()


def test_network_show_names_the_network_of_init(tmp_path: Path) -> None:
    network = tmp_path / "network.json"
    network.write_text('{"network_seed": "street", "properties": {"currency": {"symbol": "ST"}}}')
    assert ioe("init", "--data-dir", str(tmp_path / "a"), "--network", str(network)).returncode == 0
    assert ioe("init", "--data-dir", str(tmp_path / "b")).returncode == 0
    shown = [
        last_json(ioe("network", "show", "--data-dir", str(tmp_path / d), "--json").stdout)
        for d in ("a", "b")
    ]
    assert shown[0]["network_seed"] == "street" and shown[1]["network_seed"] == ""
    assert shown[0]["properties"]["currency"] == {"symbol": "ST"}  # type: ignore[index]
    assert shown[0]["dna"] != shown[1]["dna"]
