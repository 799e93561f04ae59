"""Root seed, recovery phrase and the derivation tree of src/ioe/crypto/derivation.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.derivation import (
    AGENT_CONTEXT,
    AUTHORIZATION_CONTEXT,
    DEVICE_CONTEXT,
    REVOCATION_CONTEXT,
    ROOT_SEED_SIZE,
    OwnerAccount,
    derive_seed,
    device_agent_key,
    mnemonic_to_root_seed,
    new_root_seed,
    root_seed_to_mnemonic,
)
from ioe.crypto.keys import KeyPair, verify
from ioe.errors import CryptoError
from ioe.hashing import AgentPubKey

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "derivation.json"
seeds = st.binary(min_size=32, max_size=32)
indices = st.integers(min_value=0, max_value=2**64 - 1)


def reference_kdf(parent: bytes, context: bytes, index: int) -> bytes:
    """crypto_kdf_derive_from_key written against hashlib's BLAKE2b, not libsodium."""
    return hashlib.blake2b(
        b"",
        digest_size=32,
        key=parent,
        salt=index.to_bytes(8, "little") + bytes(8),
        person=context + bytes(8),
    ).digest()


# --- root seed and mnemonic ----------------------------------------------------------------------


def test_new_root_seed_is_32_fresh_bytes() -> None:
    first, second = new_root_seed(), new_root_seed()
    assert len(first) == ROOT_SEED_SIZE
    assert first != second


@given(seeds)
def test_mnemonic_round_trip(seed: bytes) -> None:
    words = root_seed_to_mnemonic(seed)
    assert len(words.split(" ")) == 24
    assert mnemonic_to_root_seed(words) == seed


@pytest.mark.parametrize(
    ("entropy", "phrase"),
    [
        # Trezor's published BIP-39 vectors (python-mnemonic vectors.json, 256-bit entropy).
        (bytes(32), "abandon " * 23 + "art"),
        (
            b"\x7f" * 32,
            "legal winner thank year wave sausage worth useful " * 2
            + "legal winner thank year wave sausage worth title",
        ),
        (b"\xff" * 32, "zoo " * 23 + "vote"),
    ],
)
def test_mnemonic_matches_bip39_vectors(entropy: bytes, phrase: str) -> None:
    assert root_seed_to_mnemonic(entropy) == phrase
    assert mnemonic_to_root_seed(phrase) == entropy


def test_mnemonic_accepts_any_spacing_and_case() -> None:
    seed = bytes(range(32))
    words = root_seed_to_mnemonic(seed).split()
    messy = "  " + "\n".join(w.upper() if i % 2 else w.title() for i, w in enumerate(words)) + "\t"
    assert mnemonic_to_root_seed(messy) == seed


def test_unknown_word_is_named() -> None:
    words = root_seed_to_mnemonic(bytes(32)).split()
    words[4] = "abandonn"
    with pytest.raises(CryptoError, match=r"word 5 \('abandonn'\) is not in the BIP-39"):
        mnemonic_to_root_seed(" ".join(words))


def test_bad_checksum_is_refused() -> None:
    with pytest.raises(CryptoError, match="checksum does not match"):
        mnemonic_to_root_seed("abandon " * 24)


def test_swapped_words_fail_the_checksum() -> None:
    words = root_seed_to_mnemonic(bytes(range(32))).split()
    words[0], words[1] = words[1], words[0]
    with pytest.raises(CryptoError, match="checksum does not match"):
        mnemonic_to_root_seed(" ".join(words))


@pytest.mark.parametrize("count", [0, 12, 23, 25])
def test_wrong_word_count_is_refused(count: int) -> None:
    with pytest.raises(CryptoError, match="has 24 words"):
        mnemonic_to_root_seed(" ".join(["abandon"] * count))


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_root_seed_must_be_32_bytes(size: int) -> None:
    with pytest.raises(CryptoError):
        root_seed_to_mnemonic(bytes(size))
    with pytest.raises(CryptoError):
        OwnerAccount.from_root_seed(bytes(size))


# --- the KDF -------------------------------------------------------------------------------------


def test_kdf_matches_libsodium_published_output() -> None:
    # libsodium test/default/kdf.exp: key 00..1f, context "KDF test", subkey id 32, 32 bytes.
    expected = "154b291f11196737f8b7f491e4ca11764e0227d34f94295408a869f007aa8618"
    assert derive_seed(bytes(range(32)), b"KDF test", 32).hex() == expected


@given(seeds, st.binary(min_size=8, max_size=8), indices)
def test_kdf_matches_independent_blake2b(parent: bytes, context: bytes, index: int) -> None:
    assert derive_seed(parent, context, index) == reference_kdf(parent, context, index)


@given(seeds, indices)
def test_derivation_is_deterministic(parent: bytes, index: int) -> None:
    assert derive_seed(parent, DEVICE_CONTEXT, index) == derive_seed(parent, DEVICE_CONTEXT, index)


def test_indices_contexts_and_parents_separate_keys() -> None:
    parent = bytes(range(32))
    derived = {
        derive_seed(p, context, index)
        for p in (parent, b"\xff" * 32)
        for context in (REVOCATION_CONTEXT, AUTHORIZATION_CONTEXT, DEVICE_CONTEXT, AGENT_CONTEXT)
        for index in (0, 1, 2, 2**32, 2**64 - 1)
    }
    assert len(derived) == 2 * 4 * 5


@pytest.mark.parametrize(
    ("parent", "context", "index"),
    [
        (bytes(31), AGENT_CONTEXT, 0),
        (bytes(33), AGENT_CONTEXT, 0),
        (bytes(32), b"IoEAgen", 0),
        (bytes(32), b"IoEAgent!", 0),
        (bytes(32), AGENT_CONTEXT, -1),
        (bytes(32), AGENT_CONTEXT, 2**64),
        (bytes(32), AGENT_CONTEXT, True),
    ],
)
def test_kdf_rejects_bad_arguments(parent: bytes, context: bytes, index: int) -> None:
    with pytest.raises(CryptoError):
        derive_seed(parent, context, index)


# --- the owner account ---------------------------------------------------------------------------


def all_keys(account: OwnerAccount) -> list[bytes]:
    keys = [
        account.root_seed(),
        account.revocation_key().agent,
        account.authorization_key().agent,
        account.agent_key().agent,
    ]
    for device in range(4):
        seed = account.device_seed(device)
        keys.append(seed)
        keys.extend(device_agent_key(seed, j).agent for j in range(3))
    return keys


def test_recovery_from_mnemonic_reproduces_every_key() -> None:
    account = OwnerAccount.generate()
    recovered = OwnerAccount.from_mnemonic(account.mnemonic())
    assert all_keys(recovered) == all_keys(account)
    assert all_keys(OwnerAccount.from_root_seed(account.root_seed())) == all_keys(account)


def test_keys_follow_the_tree() -> None:
    root = bytes(range(32))
    account = OwnerAccount.from_root_seed(root)
    assert account.revocation_key().seed() == reference_kdf(root, b"IoERevok", 0)
    assert account.authorization_key().seed() == reference_kdf(root, b"IoEAuthz", 0)
    assert account.device_seed(3) == reference_kdf(root, b"IoEDevic", 3)
    device_zero = reference_kdf(root, b"IoEDevic", 0)
    assert account.agent_key().seed() == reference_kdf(device_zero, b"IoEAgent", 0)


def test_owner_keys_are_distinct_and_sign() -> None:
    account = OwnerAccount.generate()
    keys = all_keys(account)
    owner = account.agent_key()
    # The owner's agent is, by definition, agent 0 of device 0; everything else differs.
    assert owner.agent == device_agent_key(account.device_seed(0), 0).agent
    assert len(set(keys)) == len(keys) - 1
    signature = owner.sign(b"ioe/test/v1", b"hello")
    assert verify(owner.agent, b"ioe/test/v1", b"hello", signature)


def test_repr_does_not_reveal_the_root_seed() -> None:
    account = OwnerAccount.from_root_seed(bytes(range(32)))
    text = repr(account)
    assert account.agent_key().agent.to_text() in text
    assert account.root_seed().hex() not in text
    assert repr(account.root_seed()) not in text
    assert account.mnemonic().split()[1] not in text


# --- published vectors ---------------------------------------------------------------------------


def check_key(pair: KeyPair, expected: dict[str, str]) -> None:
    assert pair.seed().hex() == expected["seed"]
    assert bytes(pair.agent).hex() == expected["public_key"]
    assert pair.agent.to_text() == expected["agent"]
    assert AgentPubKey.from_text(expected["agent"]) == pair.agent


def load_vectors() -> list[dict[str, Any]]:
    document = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert document["contexts"] == {
        "revocation": "IoERevok",
        "authorization": "IoEAuthz",
        "device": "IoEDevic",
        "agent": "IoEAgent",
    }
    cases: list[dict[str, Any]] = document["cases"]
    return cases


def test_vectors_cover_the_published_seeds() -> None:
    roots = [case["root_seed"] for case in load_vectors()]
    assert roots == [bytes(range(32)).hex(), "ff" * 32]


@pytest.mark.parametrize("case", load_vectors(), ids=lambda case: case["root_seed"][:8])
def test_published_vectors_reproduce(case: dict[str, Any]) -> None:
    root = bytes.fromhex(case["root_seed"])
    assert root_seed_to_mnemonic(root) == case["mnemonic"]
    account = OwnerAccount.from_mnemonic(case["mnemonic"])
    assert account.root_seed() == root
    check_key(account.revocation_key(), case["revocation_key"])
    check_key(account.authorization_key(), case["authorization_key"])
    check_key(account.agent_key(), case["owner_agent_key"])
    assert [device["index"] for device in case["devices"]] == [0, 1, 2]
    for device in case["devices"]:
        seed = account.device_seed(device["index"])
        assert seed.hex() == device["device_seed"]
        assert [agent["index"] for agent in device["agents"]] == [0, 1]
        for agent in device["agents"]:
            check_key(device_agent_key(seed, agent["index"]), agent)
