"""Secret material encrypted at rest: the keystore file and the ways to unlock it.

A keystore holds named secrets (``str -> bytes``, e.g. the owner's root seed or a device seed).
It is unlocked either by a passphrase or, on an unattended device, by a *device key file* of 32
random bytes kept with mode 0600.

File format (version 1): one UTF-8 JSON object::

    {
      "version": 1,
      "kdf": {"name": "argon2id", "opslimit": 2, "memlimit": 67108864, "salt": "<16 bytes>"},
      "cipher": {"name": "xsalsa20poly1305", "nonce": "<24 bytes>"},
      "key_check": "<32 bytes>",
      "ciphertext": "<secretbox ciphertext: 16-byte Poly1305 tag + encrypted plaintext>"
    }

or, unlocked by a device key file, ``"kdf": {"name": "device-key-file"}``. Byte strings are
standard base64 with padding. No other member is allowed.

* The 32-byte key ``K`` is ``argon2id(passphrase, salt, opslimit, memlimit)`` (libsodium's
  ``crypto_pwhash`` with ``ALG_ARGON2ID13``) where the passphrase is the UTF-8 encoding of its
  Unicode NFC form, or the 32 bytes of the device key file.
* ``ciphertext`` is ``crypto_secretbox(plaintext, nonce, K)`` (XSalsa20-Poly1305, PyNaCl's
  ``SecretBox``), and ``plaintext`` is the canonical encoding (:func:`ioe.encoding.encode`) of the
  map of secrets.
* ``key_check`` is ``BLAKE2b-256(message="", key=K, personal="IoEKeystoreCheck")``. It reveals
  nothing a guesser could not already test against the ciphertext; it only lets a failed open say
  "wrong passphrase" rather than "damaged file".

Every write uses a fresh salt and nonce and replaces the file atomically; a failed open never
modifies the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import hashlib
import json
import os
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import nacl.exceptions
import nacl.secret
import nacl.utils
from nacl.pwhash import argon2id

from ioe import encoding
from ioe.errors import EncodingError, KeystoreError, WrongPassphrase

StrPath: TypeAlias = str | os.PathLike[str]

FORMAT_VERSION = 1
KDF_ARGON2ID = "argon2id"
KDF_KEY_FILE = "device-key-file"
CIPHER = "xsalsa20poly1305"

KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE
NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE
SALT_SIZE = argon2id.SALTBYTES
KEY_FILE_SIZE = KEY_SIZE
KEY_CHECK_SIZE = 32
_KEY_CHECK_PERSON = b"IoEKeystoreCheck"

DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_INTERACTIVE
MIN_OPSLIMIT = argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT = argon2id.MEMLIMIT_MIN
# Upper bounds, so that a damaged or hostile file cannot make an open exhaust the machine.
MAX_OPSLIMIT = 32
MAX_MEMLIMIT = argon2id.MEMLIMIT_SENSITIVE

MAX_FILE_SIZE = 1 << 20
PASSPHRASE_ENV = "IOE_PASSPHRASE"


@dataclass(frozen=True, repr=False)
class Unlock:
    """How to open a keystore: exactly one of a passphrase or a device key file."""

    passphrase: str | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.passphrase is None) == (self.key_file is None):
            raise KeystoreError("give exactly one of a passphrase or a device key file")
        if self.passphrase is not None:
            if not isinstance(self.passphrase, str):
                raise KeystoreError("a passphrase is text")
            if not self.passphrase:
                raise KeystoreError("an empty passphrase is refused")
        if self.key_file is not None:
            object.__setattr__(self, "key_file", Path(self.key_file))

    def __repr__(self) -> str:
        if self.key_file is not None:
            return f"Unlock(key_file={str(self.key_file)!r})"
        return "Unlock(passphrase=<hidden>)"


# --- writing -------------------------------------------------------------------------------------


def write_keystore(
    path: StrPath,
    secrets: Mapping[str, bytes],
    unlock: Unlock,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
    overwrite: bool = True,
) -> None:
    """Encrypt ``secrets`` into ``path`` atomically (mode 0600); the old file, if any, is replaced.

    ``opslimit`` and ``memlimit`` tune Argon2id for a passphrase and are stored in the file.
    With ``overwrite=False`` an existing file is an error, never clobbered.
    """
    path = Path(path)
    plaintext = _encode_secrets(secrets)
    kdf: dict[str, Any]
    if unlock.passphrase is not None:
        _check_limits(opslimit, memlimit)
        salt = nacl.utils.random(SALT_SIZE)
        key = _passphrase_key(unlock.passphrase, salt, opslimit, memlimit)
        kdf = {
            "name": KDF_ARGON2ID,
            "opslimit": opslimit,
            "memlimit": memlimit,
            "salt": _b64(salt),
        }
    else:
        assert unlock.key_file is not None
        key = _read_key_file(unlock.key_file)
        kdf = {"name": KDF_KEY_FILE}
    nonce = nacl.utils.random(NONCE_SIZE)
    try:
        sealed = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError(f"cannot encrypt the keystore: {exc}") from exc
    document = {
        "version": FORMAT_VERSION,
        "kdf": kdf,
        "cipher": {"name": CIPHER, "nonce": _b64(nonce)},
        "key_check": _b64(_key_check(key)),
        "ciphertext": _b64(sealed),
    }
    data = (json.dumps(document, indent=2) + "\n").encode("ascii")
    if len(data) > MAX_FILE_SIZE:
        raise KeystoreError(f"the secrets make a keystore over {MAX_FILE_SIZE} bytes")
    _write_atomically(path, data, overwrite=overwrite, what="keystore")


def create_device_key_file(path: StrPath) -> None:
    """Create a device key file of 32 random bytes with mode 0600; an existing file is kept."""
    _write_atomically(
        Path(path), nacl.utils.random(KEY_FILE_SIZE), overwrite=False, what="device key file"
    )


def change_unlock(
    path: StrPath,
    old: Unlock,
    new: Unlock,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> None:
    """Re-encrypt the keystore for ``new``; if ``old`` does not open it, the file is unchanged."""
    secrets = read_keystore(path, old)
    write_keystore(path, secrets, new, opslimit=opslimit, memlimit=memlimit)


# --- reading -------------------------------------------------------------------------------------


def read_keystore(path: StrPath, unlock: Unlock) -> dict[str, bytes]:
    """Decrypt the secrets in ``path``. The file is only read, whatever happens."""
    path = Path(path)
    header = _parse(path, _read_regular(path, what="keystore", limit=MAX_FILE_SIZE, private=False))
    kdf = header["kdf"]
    if kdf["name"] == KDF_ARGON2ID:
        if unlock.passphrase is None:
            raise WrongPassphrase(f"keystore {path} is opened by a passphrase, not a key file")
        key = _passphrase_key(unlock.passphrase, kdf["salt"], kdf["opslimit"], kdf["memlimit"])
        failure = f"wrong passphrase for keystore {path}"
    else:
        if unlock.key_file is None:
            raise WrongPassphrase(
                f"keystore {path} is opened by a device key file, not a passphrase"
            )
        key = _read_key_file(unlock.key_file)
        failure = f"key file {unlock.key_file} does not open keystore {path}"
    try:
        plaintext = nacl.secret.SecretBox(key).decrypt(header["ciphertext"], header["nonce"])
    except nacl.exceptions.CryptoError as exc:
        if _key_check(key) != header["key_check"]:
            raise WrongPassphrase(failure) from None
        raise KeystoreError(
            f"keystore {path} is damaged: its contents fail to authenticate"
        ) from exc
    return _decode_secrets(plaintext, path)


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    """Check the whole document, returning its byte fields decoded; anything odd is an error."""

    def bad(reason: str) -> KeystoreError:
        return KeystoreError(f"{path} is not a valid keystore: {reason}")

    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise bad("not a JSON object")
    version = document.get("version")
    if type(version) is not int:
        raise bad("no version number")
    if version != FORMAT_VERSION:
        raise KeystoreError(
            f"keystore {path} has format version {version}; this program reads version "
            f"{FORMAT_VERSION}"
        )
    _exact_members(document, {"version", "kdf", "cipher", "key_check", "ciphertext"}, bad, "")

    kdf = document["kdf"]
    if not isinstance(kdf, dict):
        raise bad("kdf is not an object")
    if kdf.get("name") == KDF_ARGON2ID:
        _exact_members(kdf, {"name", "opslimit", "memlimit", "salt"}, bad, "kdf.")
        opslimit, memlimit = kdf["opslimit"], kdf["memlimit"]
        if type(opslimit) is not int or type(memlimit) is not int:
            raise bad("the argon2id limits are not integers")
        try:
            _check_limits(opslimit, memlimit)
        except KeystoreError as exc:
            raise bad(str(exc)) from None
        parsed_kdf: dict[str, Any] = {
            "name": KDF_ARGON2ID,
            "opslimit": opslimit,
            "memlimit": memlimit,
            "salt": _unb64(kdf["salt"], SALT_SIZE, "kdf.salt", bad),
        }
    elif kdf.get("name") == KDF_KEY_FILE:
        _exact_members(kdf, {"name"}, bad, "kdf.")
        parsed_kdf = {"name": KDF_KEY_FILE}
    else:
        raise bad(f"unknown kdf {kdf.get('name')!r}")

    cipher = document["cipher"]
    if not isinstance(cipher, dict) or cipher.get("name") != CIPHER:
        raise bad(f"cipher is not {CIPHER!r}")
    _exact_members(cipher, {"name", "nonce"}, bad, "cipher.")

    ciphertext = _unb64(document["ciphertext"], None, "ciphertext", bad)
    if len(ciphertext) < nacl.secret.SecretBox.MACBYTES:
        raise bad("ciphertext is too short")
    return {
        "kdf": parsed_kdf,
        "nonce": _unb64(cipher["nonce"], NONCE_SIZE, "cipher.nonce", bad),
        "key_check": _unb64(document["key_check"], KEY_CHECK_SIZE, "key_check", bad),
        "ciphertext": ciphertext,
    }


def _exact_members(
    obj: dict[str, Any], expected: set[str], bad: Callable[[str], KeystoreError], where: str
) -> None:
    missing = expected - obj.keys()
    if missing:
        raise bad(f"missing {', '.join(where + name for name in sorted(missing))}")
    extra = obj.keys() - expected
    if extra:
        raise bad(f"unexpected {', '.join(where + name for name in sorted(extra))}")


def _unb64(
    value: object, size: int | None, name: str, bad: Callable[[str], KeystoreError]
) -> bytes:
    if not isinstance(value, str):
        raise bad(f"{name} is not a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(f"{name} is not valid base64") from exc
    if size is not None and len(raw) != size:
        raise bad(f"{name} is {len(raw)} bytes, expected {size}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- secrets and keys ----------------------------------------------------------------------------


def _encode_secrets(secrets: Mapping[str, bytes]) -> bytes:
    plain: dict[str, bytes] = {}
    for name, value in secrets.items():
        if not isinstance(name, str) or not name:
            raise KeystoreError(f"secret names are non-empty text, got {name!r}")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise KeystoreError(f"secret {name!r} is {type(value).__name__}, not bytes")
        plain[name] = bytes(value)
    try:
        return encoding.encode(plain)
    except EncodingError as exc:
        raise KeystoreError(f"cannot encode the secrets: {exc}") from exc


def _decode_secrets(plaintext: bytes, path: Path) -> dict[str, bytes]:
    try:
        value = encoding.decode(plaintext)
    except EncodingError as exc:
        raise KeystoreError(f"keystore {path} holds an undecodable secret map: {exc}") from exc
    if not isinstance(value, dict) or not all(
        type(name) is str and type(secret) is bytes for name, secret in value.items()
    ):
        raise KeystoreError(f"keystore {path} does not hold a map of named byte strings")
    return dict(value)


def _check_limits(opslimit: int, memlimit: int) -> None:
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise KeystoreError(
            f"argon2id opslimit {opslimit} is outside [{MIN_OPSLIMIT}, {MAX_OPSLIMIT}]"
        )
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise KeystoreError(
            f"argon2id memlimit {memlimit} is outside [{MIN_MEMLIMIT}, {MAX_MEMLIMIT}]"
        )


def _passphrase_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    try:
        return argon2id.kdf(KEY_SIZE, secret, salt, opslimit=opslimit, memlimit=memlimit)
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError(f"argon2id key derivation failed: {exc}") from exc


def _key_check(key: bytes) -> bytes:
    return hashlib.blake2b(
        b"", digest_size=KEY_CHECK_SIZE, key=key, person=_KEY_CHECK_PERSON
    ).digest()


def _read_key_file(path: Path) -> bytes:
    """The key in a device key file, refusing one that others could read or change."""
    key = _read_regular(path, what="device key file", limit=KEY_FILE_SIZE, private=True)
    if len(key) != KEY_FILE_SIZE:
        raise KeystoreError(f"device key file {path} is {len(key)} bytes, expected {KEY_FILE_SIZE}")
    return key


# --- files ---------------------------------------------------------------------------------------


def _read_regular(path: Path, *, what: str, limit: int, private: bool) -> bytes:
    """Read a regular file of at most ``limit`` bytes; if ``private``, refuse mode bits in 0o077.

    The checks use the opened descriptor, so the file cannot be swapped between check and read,
    and ``O_NONBLOCK`` keeps a FIFO planted at ``path`` from hanging the open.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise KeystoreError(f"no {what} at {path}") from None
    except OSError as exc:
        raise KeystoreError(f"cannot open {what} {path}: {exc.strerror}") from exc
    chunks: list[bytes] = []
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeystoreError(f"{what} {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if private and mode & 0o077:
            raise KeystoreError(
                f"{what} {path} is accessible by group or others (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise KeystoreError(f"cannot read {what} {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise KeystoreError(f"{what} {path} is over {limit} bytes")
    return data


def _write_atomically(path: Path, data: bytes, *, overwrite: bool, what: str) -> None:
    """Write a 0600 temp file beside ``path``, fsync it, move it in place, fsync the directory.

    Readers see the old file or the new one, never a partial one. Without ``overwrite`` the move
    is a hard link, which fails instead of replacing an existing file.
    """
    directory = path.parent
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise KeystoreError(f"cannot write {what} {path}: {exc.strerror}") from exc
    temp = Path(temp_name)
    moved = False
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, path)
            moved = True
        else:
            os.link(temp, path)
        _fsync_directory(directory)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeystoreError(f"cannot write {what} {path}: {exc.strerror}") from exc
    finally:
        if not moved:
            with contextlib.suppress(OSError):
                temp.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- passphrase input ----------------------------------------------------------------------------


def passphrase_from_env_or_prompt(
    *,
    confirm: bool,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> str:
    """The keystore passphrase from ``IOE_PASSPHRASE``, else asked for on the terminal.

    ``confirm`` asks twice (for a new passphrase). Without the variable and without a terminal
    this fails rather than hang. ``environ``, ``prompt`` and ``interactive`` exist for tests.
    """
    env = os.environ if environ is None else environ
    from_env = env.get(PASSPHRASE_ENV)
    if from_env is not None:
        if not from_env:
            raise KeystoreError(
                f"{PASSPHRASE_ENV} is set but empty; an empty passphrase is refused"
            )
        return from_env
    if interactive is None:
        interactive = _stdin_is_terminal()
    if not interactive:
        raise KeystoreError(f"set {PASSPHRASE_ENV} or run interactively")
    ask = getpass.getpass if prompt is None else prompt
    try:
        passphrase = ask("Keystore passphrase: ")
        if not passphrase:
            raise KeystoreError("an empty passphrase is refused")
        if confirm and ask("Repeat the passphrase: ") != passphrase:
            raise KeystoreError("the two passphrases do not match")
    except EOFError:
        raise KeystoreError("no passphrase was entered") from None
    return passphrase


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        return False
