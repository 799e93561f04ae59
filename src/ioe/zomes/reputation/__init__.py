"""Signed reputation claims on the network: an agent's published view of another agent, linked
from the subject so that anyone can find what others say about it (``docs/identity.md``,
"Reputation on a node")."""

from ioe.zomes.reputation.api import coordinator
from ioe.zomes.reputation.validation import integrity

__all__ = ["coordinator", "integrity"]
