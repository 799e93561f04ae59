"""The secret of a community's grants on a member device (``ioe.community.access``): derived
from the community and the device, so every member can present it; the grant's assignee list,
not the secret, decides who may call."""

from __future__ import annotations

import hashlib

from ioe.hashing import AgentPubKey, ExternalHash


def community_secret(community: ExternalHash, device: AgentPubKey) -> bytes:
    """The secret of ``device``'s grants to ``community`` (see the module docstring)."""
    return hashlib.blake2b(
        bytes(community) + bytes(device), digest_size=32, person=b"ioe-community"
    ).digest()
