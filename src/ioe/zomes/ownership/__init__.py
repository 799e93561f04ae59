"""Key ownership on the network: an owner's signed revocations of its devices' keys, linked from
each revoked key so that every node can find them (``docs/identity.md``, "Revoking a key")."""

from ioe.zomes.ownership.api import coordinator
from ioe.zomes.ownership.validation import integrity

__all__ = ["coordinator", "integrity"]
