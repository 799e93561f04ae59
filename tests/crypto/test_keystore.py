"""The keystore at rest: format, unlocking, atomic writes and passphrase input."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keystore import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MIN_MEMLIMIT,
    MIN_OPSLIMIT,
    Unlock,
    change_unlock,
    create_device_key_file,
    passphrase_from_env_or_prompt,
    read_keystore,
    write_keystore,
)
from ioe.errors import KeystoreError, WrongPassphrase


class Limits(TypedDict):
    opslimit: int
    memlimit: int


FAST = Limits(opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
SECRETS = {"root_seed": bytes(range(32)), "device_seed/1": b"\x01" * 32, "empty": b""}
PASSPHRASE = Unlock(passphrase="correct horse battery staple")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="ascii"))
    return loaded


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = document(path)
    change(doc)
    path.write_text(json.dumps(doc), encoding="ascii")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "keystore.json"
    write_keystore(path, SECRETS, PASSPHRASE, **FAST)
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "device.key"
    create_device_key_file(path)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- round trips ---------------------------------------------------------------------------------


def test_passphrase_round_trip_with_default_limits(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    write_keystore(path, SECRETS, PASSPHRASE)
    assert read_keystore(path, PASSPHRASE) == SECRETS
    assert mode_of(path) == 0o600
    doc = document(path)
    assert doc["version"] == 1
    assert doc["kdf"]["name"] == "argon2id"
    assert doc["kdf"]["opslimit"] == DEFAULT_OPSLIMIT
    assert doc["kdf"]["memlimit"] == DEFAULT_MEMLIMIT
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert doc["cipher"] == {"name": "xsalsa20poly1305", "nonce": doc["cipher"]["nonce"]}
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    assert bytes(range(32)) not in path.read_bytes()
    assert leftovers(tmp_path) == []


def test_key_file_round_trip(tmp_path: Path, key_file: Path) -> None:
    path = tmp_path / "keystore.json"
    unlock = Unlock(key_file=key_file)
    write_keystore(path, SECRETS, unlock)
    assert read_keystore(path, unlock) == SECRETS
    assert document(path)["kdf"] == {"name": "device-key-file"}


@settings(max_examples=10, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.binary(max_size=64), max_size=6))
def test_any_secret_map_round_trips(secrets: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        key = Path(directory) / "device.key"
        create_device_key_file(key)
        path = Path(directory) / "keystore.json"
        write_keystore(path, secrets, Unlock(key_file=key))
        assert read_keystore(path, Unlock(key_file=key)) == secrets


def test_every_write_uses_a_fresh_salt_and_nonce(store: Path) -> None:
    before = document(store)
    write_keystore(store, SECRETS, PASSPHRASE, **FAST)
    after = document(store)
    assert before["kdf"]["salt"] != after["kdf"]["salt"]
    assert before["cipher"]["nonce"] != after["cipher"]["nonce"]


def test_passphrase_is_unicode_normalised(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    composed = unicodedata.normalize("NFC", "crème brûlée")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    write_keystore(path, SECRETS, Unlock(passphrase=composed), **FAST)
    assert read_keystore(path, Unlock(passphrase=decomposed)) == SECRETS


# --- wrong unlock --------------------------------------------------------------------------------


def test_wrong_passphrase_leaves_the_file_unchanged(store: Path) -> None:
    before = store.read_bytes()
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        read_keystore(store, Unlock(passphrase="wrong"))
    assert store.read_bytes() == before


def test_wrong_key_file(tmp_path: Path, key_file: Path) -> None:
    path = tmp_path / "keystore.json"
    write_keystore(path, SECRETS, Unlock(key_file=key_file))
    other = tmp_path / "other.key"
    create_device_key_file(other)
    before = path.read_bytes()
    with pytest.raises(WrongPassphrase, match="does not open"):
        read_keystore(path, Unlock(key_file=other))
    assert path.read_bytes() == before


def test_unlock_of_the_wrong_kind(store: Path, tmp_path: Path, key_file: Path) -> None:
    with pytest.raises(WrongPassphrase, match="by a passphrase, not a key file"):
        read_keystore(store, Unlock(key_file=key_file))
    by_file = tmp_path / "by-file.json"
    write_keystore(by_file, SECRETS, Unlock(key_file=key_file))
    with pytest.raises(WrongPassphrase, match="by a device key file, not a passphrase"):
        read_keystore(by_file, PASSPHRASE)


# --- damaged and unknown files -------------------------------------------------------------------


def flip_ciphertext(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["ciphertext"]))
    raw[-1] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()


def flip_nonce(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["cipher"]["nonce"]))
    raw[0] ^= 1
    doc["cipher"]["nonce"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("tamper", [flip_ciphertext, flip_nonce])
def test_tampering_is_detected_as_damage(
    store: Path, tamper: Callable[[dict[str, Any]], None]
) -> None:
    rewrite(store, tamper)
    with pytest.raises(KeystoreError, match="damaged") as caught:
        read_keystore(store, PASSPHRASE)
    assert not isinstance(caught.value, WrongPassphrase)


def test_tampered_salt_cannot_open(store: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["kdf"]["salt"] = base64.b64encode(bytes(16)).decode()

    rewrite(store, change)
    with pytest.raises(KeystoreError):
        read_keystore(store, PASSPHRASE)


def set_member(*keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def drop_member(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (set_member("version", value=2), "format version 2"),
        (set_member("version", value="1"), "no version"),
        (set_member("kdf", "name", value="scrypt"), "unknown kdf"),
        (set_member("cipher", "name", value="aes-gcm"), "cipher"),
        (set_member("kdf", "memlimit", value=1 << 40), "memlimit"),
        (set_member("kdf", "opslimit", value=10**6), "opslimit"),
        (set_member("kdf", "opslimit", value=2.5), "not integers"),
        (set_member("kdf", "salt", value="!!!"), "not valid base64"),
        (set_member("kdf", "salt", value=base64.b64encode(bytes(8)).decode()), "8 bytes"),
        (set_member("ciphertext", value=""), "too short"),
        (set_member("extra", value=1), "unexpected extra"),
        (drop_member("key_check"), "missing key_check"),
        (drop_member("cipher", "nonce"), "missing cipher.nonce"),
    ],
)
def test_malformed_documents_are_refused(
    store: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    rewrite(store, change)
    with pytest.raises(KeystoreError, match=message) as caught:
        read_keystore(store, PASSPHRASE)
    assert not isinstance(caught.value, WrongPassphrase)


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b"x" * (2 << 20)])
def test_garbage_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keystore.json"
    path.write_bytes(content)
    with pytest.raises(KeystoreError):
        read_keystore(path, PASSPHRASE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore at"):
        read_keystore(tmp_path / "absent.json", PASSPHRASE)


# --- device key files ----------------------------------------------------------------------------


def test_key_file_is_private_and_random(tmp_path: Path, key_file: Path) -> None:
    assert mode_of(key_file) == 0o600
    assert len(key_file.read_bytes()) == 32
    other = tmp_path / "other.key"
    create_device_key_file(other)
    assert other.read_bytes() != key_file.read_bytes()
    assert leftovers(tmp_path) == []


def test_key_file_is_never_overwritten(key_file: Path) -> None:
    before = key_file.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        create_device_key_file(key_file)
    assert key_file.read_bytes() == before
    assert leftovers(key_file.parent) == []


def test_key_file_readable_by_others_is_refused(tmp_path: Path, key_file: Path) -> None:
    path = tmp_path / "keystore.json"
    write_keystore(path, SECRETS, Unlock(key_file=key_file))
    key_file.chmod(0o644)
    with pytest.raises(KeystoreError, match=r"mode 0644\); run: chmod 600"):
        read_keystore(path, Unlock(key_file=key_file))
    with pytest.raises(KeystoreError, match="accessible by group or others"):
        write_keystore(tmp_path / "second.json", SECRETS, Unlock(key_file=key_file))


def test_key_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(bytes(31))
    short.chmod(0o600)
    with pytest.raises(KeystoreError, match="31 bytes"):
        write_keystore(tmp_path / "keystore.json", SECRETS, Unlock(key_file=short))
    with pytest.raises(KeystoreError, match="no device key file"):
        write_keystore(tmp_path / "keystore.json", SECRETS, Unlock(key_file=tmp_path / "nope"))


def test_oversized_key_file_is_refused(tmp_path: Path) -> None:
    long = tmp_path / "long.key"
    long.write_bytes(bytes(33))
    long.chmod(0o600)
    with pytest.raises(KeystoreError, match="over 32 bytes"):
        write_keystore(tmp_path / "keystore.json", SECRETS, Unlock(key_file=long))


def test_key_file_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeystoreError, match="not a regular file"):
        write_keystore(tmp_path / "keystore.json", SECRETS, Unlock(key_file=fifo))
    with pytest.raises(KeystoreError, match="not a regular file"):
        write_keystore(tmp_path / "keystore.json", SECRETS, Unlock(key_file=tmp_path))


# --- writing safely ------------------------------------------------------------------------------


def test_failed_write_keeps_the_old_file(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = store.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(KeystoreError, match="Input/output error"):
        write_keystore(store, {"other": b"x"}, PASSPHRASE, **FAST)
    monkeypatch.undo()
    assert store.read_bytes() == before
    assert leftovers(store.parent) == []


def test_overwrite_false_keeps_an_existing_keystore(store: Path) -> None:
    before = store.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        write_keystore(store, {"other": b"x"}, PASSPHRASE, overwrite=False, **FAST)
    assert store.read_bytes() == before


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot write keystore"):
        write_keystore(tmp_path / "no" / "keystore.json", SECRETS, PASSPHRASE, **FAST)


@pytest.mark.parametrize(
    "secrets",
    [{"": b"x"}, {"name": "text"}, {"name": 5}, {1: b"x"}],
)
def test_bad_secret_maps_are_refused(tmp_path: Path, secrets: dict[Any, Any]) -> None:
    path = tmp_path / "keystore.json"
    with pytest.raises(KeystoreError):
        write_keystore(path, secrets, PASSPHRASE, **FAST)
    assert not path.exists()


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [(0, MIN_MEMLIMIT), (33, MIN_MEMLIMIT), (MIN_OPSLIMIT, 1024), (MIN_OPSLIMIT, 1 << 31)],
)
def test_limits_outside_the_bounds_are_refused(
    tmp_path: Path, opslimit: int, memlimit: int
) -> None:
    with pytest.raises(KeystoreError, match="outside"):
        write_keystore(
            tmp_path / "keystore.json", SECRETS, PASSPHRASE, opslimit=opslimit, memlimit=memlimit
        )


# --- changing the unlock -------------------------------------------------------------------------


def test_change_passphrase(store: Path) -> None:
    new = Unlock(passphrase="a new passphrase")
    change_unlock(store, PASSPHRASE, new, **FAST)
    assert read_keystore(store, new) == SECRETS
    with pytest.raises(WrongPassphrase):
        read_keystore(store, PASSPHRASE)


def test_change_to_and_from_a_key_file(store: Path, key_file: Path) -> None:
    by_file = Unlock(key_file=key_file)
    change_unlock(store, PASSPHRASE, by_file)
    assert document(store)["kdf"] == {"name": "device-key-file"}
    assert read_keystore(store, by_file) == SECRETS
    change_unlock(store, by_file, PASSPHRASE, **FAST)
    assert read_keystore(store, PASSPHRASE) == SECRETS


def test_change_with_the_wrong_old_passphrase_changes_nothing(store: Path) -> None:
    before = store.read_bytes()
    with pytest.raises(WrongPassphrase):
        change_unlock(store, Unlock(passphrase="wrong"), Unlock(passphrase="new"), **FAST)
    assert store.read_bytes() == before


# --- Unlock --------------------------------------------------------------------------------------


def test_unlock_needs_exactly_one_way(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="exactly one"):
        Unlock()
    with pytest.raises(KeystoreError, match="exactly one"):
        Unlock(passphrase="x", key_file=tmp_path / "k")
    with pytest.raises(KeystoreError, match="empty passphrase"):
        Unlock(passphrase="")


def test_unlock_repr_hides_the_passphrase() -> None:
    assert "horse" not in repr(PASSPHRASE)
    assert "horse" not in str(PASSPHRASE)


# --- passphrase input ----------------------------------------------------------------------------


def answers(*replies: str) -> tuple[Callable[[str], str], list[str]]:
    """A fake prompt giving ``replies`` in order and recording the questions."""
    asked: list[str] = []
    it: Iterator[str] = iter(replies)

    def prompt(question: str) -> str:
        asked.append(question)
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return prompt, asked


def test_environment_variable_wins() -> None:
    prompt, asked = answers("typed")
    got = passphrase_from_env_or_prompt(
        confirm=True, environ={"IOE_PASSPHRASE": "from env"}, prompt=prompt, interactive=True
    )
    assert got == "from env"
    assert asked == []


def test_empty_environment_variable_is_refused() -> None:
    with pytest.raises(KeystoreError, match="empty"):
        passphrase_from_env_or_prompt(confirm=False, environ={"IOE_PASSPHRASE": ""})


def test_no_terminal_and_no_variable_fails() -> None:
    prompt, asked = answers("typed")
    with pytest.raises(KeystoreError, match="set IOE_PASSPHRASE or run interactively"):
        passphrase_from_env_or_prompt(confirm=False, environ={}, prompt=prompt, interactive=False)
    assert asked == []


def test_prompt_once_without_confirm() -> None:
    prompt, asked = answers("secret")
    got = passphrase_from_env_or_prompt(confirm=False, environ={}, prompt=prompt, interactive=True)
    assert got == "secret"
    assert len(asked) == 1


def test_prompt_twice_with_confirm() -> None:
    prompt, asked = answers("secret", "secret")
    got = passphrase_from_env_or_prompt(confirm=True, environ={}, prompt=prompt, interactive=True)
    assert got == "secret"
    assert len(asked) == 2


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        (("secret", "secreT"), "do not match"),
        (("",), "empty passphrase"),
        ((), "no passphrase was entered"),
    ],
)
def test_prompt_failures(replies: tuple[str, ...], message: str) -> None:
    prompt, _ = answers(*replies)
    with pytest.raises(KeystoreError, match=message):
        passphrase_from_env_or_prompt(confirm=True, environ={}, prompt=prompt, interactive=True)


def test_default_environment_is_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "IOE_PASSPHRASE", "process env")
    assert passphrase_from_env_or_prompt(confirm=False) == "process env"
