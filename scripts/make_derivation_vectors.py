"""Write tests/vectors/derivation.json, the published key-derivation test vectors.

Run once from the repository root::

    PYTHONPATH=src .venv/bin/python scripts/make_derivation_vectors.py

The file is checked by tests/crypto/test_derivation.py; regenerate it only if the derivation
specification in src/ioe/crypto/derivation.py deliberately changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ioe.crypto.derivation import (
    AGENT_CONTEXT,
    AUTHORIZATION_CONTEXT,
    DEVICE_CONTEXT,
    REVOCATION_CONTEXT,
    OwnerAccount,
    device_agent_key,
)
from ioe.crypto.keys import KeyPair

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "derivation.json"
ROOT_SEEDS = [bytes(range(32)), b"\xff" * 32]
DEVICES = [0, 1, 2]
AGENTS = [0, 1]


def key(pair: KeyPair) -> dict[str, str]:
    return {
        "seed": pair.seed().hex(),
        "public_key": bytes(pair.agent).hex(),
        "agent": pair.agent.to_text(),
    }


def case(root_seed: bytes) -> dict[str, Any]:
    account = OwnerAccount.from_root_seed(root_seed)
    devices = []
    for index in DEVICES:
        device_seed = account.device_seed(index)
        devices.append(
            {
                "index": index,
                "device_seed": device_seed.hex(),
                "agents": [{"index": j, **key(device_agent_key(device_seed, j))} for j in AGENTS],
            }
        )
    return {
        "root_seed": root_seed.hex(),
        "mnemonic": account.mnemonic(),
        "revocation_key": key(account.revocation_key()),
        "authorization_key": key(account.authorization_key()),
        "owner_agent_key": key(account.agent_key()),
        "devices": devices,
    }


def main() -> None:
    document = {
        "description": (
            "IoE owner key derivation test vectors. derive(parent, context, index) is libsodium "
            "crypto_kdf_derive_from_key with a 32-byte output; see docs/keys.md. 'seed' is the "
            "32-byte Ed25519 seed (RFC 8032 private key), 'public_key' its public key, 'agent' "
            "the AgentPubKey text form."
        ),
        "contexts": {
            "revocation": REVOCATION_CONTEXT.decode(),
            "authorization": AUTHORIZATION_CONTEXT.decode(),
            "device": DEVICE_CONTEXT.decode(),
            "agent": AGENT_CONTEXT.decode(),
        },
        "cases": [case(seed) for seed in ROOT_SEEDS],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
