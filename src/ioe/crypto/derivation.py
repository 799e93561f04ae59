"""The owner's key material: one root seed, its recovery phrase, and every key derived from it.

This module is a specification: another implementation that follows it must derive the same keys
from the same 24 words. ``tests/vectors/derivation.json`` holds published values to check against.

Root seed and recovery phrase
-----------------------------

The root seed is 32 random bytes. Its recovery phrase is the BIP-39 mnemonic (English word list)
whose *entropy* is the root seed: 24 words, the last of which carries an 8-bit SHA-256 checksum.
BIP-39's PBKDF2 "seed" stretching and its optional passphrase are **not** used, so the 24 words map
back to exactly the root seed and nothing else.

Key derivation function
-----------------------

``derive(parent, context, index)`` is libsodium's ``crypto_kdf_derive_from_key`` with a 32-byte
output (``crypto_kdf_blake2b``)::

    derive(parent[32], context[8], index) =
        BLAKE2b(message = "", digest_size = 32, key = parent,
                salt = uint64_le(index) || 8 zero bytes,
                personal = context || 8 zero bytes)

``context`` is exactly 8 bytes and ``0 <= index < 2**64``.

Derivation tree
---------------

::

    root seed (32 bytes, = BIP-39 entropy of the 24 words)
    ├── derive(root, "IoERevok", 0)  -> revocation key seed      (Ed25519)
    ├── derive(root, "IoEAuthz", 0)  -> authorization key seed   (Ed25519)
    └── derive(root, "IoEDevic", i)  -> device seed i            (32 bytes, a parent, not a key)
        └── derive(device seed i, "IoEAgent", j) -> agent key seed j of device i   (Ed25519)

Each derived 32-byte value that is marked Ed25519 is used directly as the RFC 8032 private key
(libsodium's ``crypto_sign_seed_keypair`` seed); the public key is the agent key.

Index meaning: device ``i = 0`` is reserved for the owner's own console, and its agent ``j = 0`` is
the owner's agent (:meth:`OwnerAccount.agent_key`). Energy devices are numbered from ``i = 1``.
Agent index ``j`` numbers the agents (apps, or successive keys after a rotation) of one device.
A device holds only its own device seed, so it can derive its own agents but nothing of its
siblings or of the root.
"""

from __future__ import annotations

import functools
import hashlib
import os
import unicodedata
from typing import Self

import nacl.bindings
from mnemonic import Mnemonic

from ioe.crypto.keys import KeyPair
from ioe.errors import CryptoError

ROOT_SEED_SIZE = 32
SUBKEY_SIZE = 32
CONTEXT_SIZE = 8
MAX_INDEX = 2**64 - 1
MNEMONIC_WORDS = 24

REVOCATION_CONTEXT = b"IoERevok"
AUTHORIZATION_CONTEXT = b"IoEAuthz"
DEVICE_CONTEXT = b"IoEDevic"
AGENT_CONTEXT = b"IoEAgent"

OWNER_DEVICE_INDEX = 0
"""Device index of the owner's own console; energy devices are numbered from 1."""


@functools.cache
def _english() -> Mnemonic:
    return Mnemonic("english")


@functools.cache
def _english_words() -> frozenset[str]:
    return frozenset(_english().wordlist)


def new_root_seed() -> bytes:
    """32 fresh bytes from the operating system's CSPRNG."""
    return os.urandom(ROOT_SEED_SIZE)


def _check_root_seed(seed: bytes) -> bytes:
    if not isinstance(seed, bytes | bytearray | memoryview):
        raise CryptoError(f"a root seed is bytes, not {type(seed).__name__}")
    seed = bytes(seed)
    if len(seed) != ROOT_SEED_SIZE:
        raise CryptoError(f"a root seed is {ROOT_SEED_SIZE} bytes, got {len(seed)}")
    return seed


def root_seed_to_mnemonic(seed: bytes) -> str:
    """The 24-word English recovery phrase whose BIP-39 entropy is ``seed``."""
    return str(_english().to_mnemonic(_check_root_seed(seed)))


def mnemonic_to_root_seed(words: str) -> bytes:
    """The root seed of a recovery phrase; any spacing and letter case is accepted."""
    if not isinstance(words, str):
        raise CryptoError(f"a recovery phrase is text, not {type(words).__name__}")
    tokens = unicodedata.normalize("NFKD", words).lower().split()
    if len(tokens) != MNEMONIC_WORDS:
        raise CryptoError(f"a recovery phrase has {MNEMONIC_WORDS} words, got {len(tokens)}")
    known = _english_words()
    for position, token in enumerate(tokens, start=1):
        if token not in known:
            raise CryptoError(f"word {position} ({token!r}) is not in the BIP-39 English word list")
    try:
        entropy = bytes(_english().to_entropy(tokens))
    except ValueError as exc:
        raise CryptoError(
            "recovery phrase checksum does not match: a word is wrong or the order is mixed up"
        ) from exc
    return _check_root_seed(entropy)


def derive_seed(parent: bytes, context: bytes, index: int) -> bytes:
    """libsodium's ``crypto_kdf_derive_from_key`` with a 32-byte output (see the module doc)."""
    if not isinstance(parent, bytes | bytearray | memoryview) or len(parent) != SUBKEY_SIZE:
        raise CryptoError(f"a derivation parent is {SUBKEY_SIZE} bytes")
    if not isinstance(context, bytes) or len(context) != CONTEXT_SIZE:
        raise CryptoError(f"a derivation context is exactly {CONTEXT_SIZE} bytes, got {context!r}")
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise CryptoError(f"a derivation index is an integer in [0, 2**64), got {index!r}")
    return bytes(
        nacl.bindings.crypto_generichash_blake2b_salt_personal(
            b"",
            digest_size=SUBKEY_SIZE,
            key=bytes(parent),
            salt=index.to_bytes(8, "little") + bytes(8),
            person=context + bytes(8),
        )
    )


APP_AGENT_BASE = 1 << 32
"""Agent indexes from here on are app keys (:func:`app_agent_index`), never a device's own."""


def app_agent_index(installation: bytes) -> int:
    """The index of a device's agent key for one installation of an app (``installation``: its
    id): the book's device seed → app keys. Each installation has its own key, so dropping it
    (uninstall, a member removed) never touches the device key or another app's."""
    digest = hashlib.blake2b(b"ioe/app-key/v1" + installation, digest_size=4).digest()
    return APP_AGENT_BASE + int.from_bytes(digest, "big")


def device_agent_key(device_seed: bytes, index: int) -> KeyPair:
    """Agent key ``index`` of the device that holds ``device_seed``."""
    return KeyPair(derive_seed(device_seed, AGENT_CONTEXT, index))


class OwnerAccount:
    """The owner's root seed and the keys derived from it. ``repr`` shows only a public key."""

    __slots__ = ("_root_seed",)

    def __init__(self, root_seed: bytes) -> None:
        self._root_seed = _check_root_seed(root_seed)

    @classmethod
    def generate(cls) -> Self:
        """A new account with a fresh random root seed."""
        return cls(new_root_seed())

    @classmethod
    def from_mnemonic(cls, words: str) -> Self:
        """Recover an account from its 24-word phrase."""
        return cls(mnemonic_to_root_seed(words))

    @classmethod
    def from_root_seed(cls, seed: bytes) -> Self:
        """Reopen an account from the root seed kept in the keystore."""
        return cls(seed)

    def root_seed(self) -> bytes:
        """The secret root seed, for the keystore only."""
        return self._root_seed

    def mnemonic(self) -> str:
        """The 24-word recovery phrase, to be written down by the owner."""
        return root_seed_to_mnemonic(self._root_seed)

    def revocation_key(self) -> KeyPair:
        """The key that revokes the owner's other keys; meant to stay offline."""
        return KeyPair(derive_seed(self._root_seed, REVOCATION_CONTEXT, 0))

    def authorization_key(self) -> KeyPair:
        """The key that authorizes devices and agents on the owner's behalf."""
        return KeyPair(derive_seed(self._root_seed, AUTHORIZATION_CONTEXT, 0))

    def device_seed(self, index: int) -> bytes:
        """Seed of device ``index`` (0 is the owner's console; energy devices start at 1)."""
        return derive_seed(self._root_seed, DEVICE_CONTEXT, index)

    def agent_key(self) -> KeyPair:
        """The owner's own agent: agent 0 of device 0."""
        return device_agent_key(self.device_seed(OWNER_DEVICE_INDEX), 0)

    def __repr__(self) -> str:
        return f"OwnerAccount(agent={self.agent_key().agent.to_text()})"
