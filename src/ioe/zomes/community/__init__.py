"""Communities: groups of devices and people under a manager keyset, with roles and access
levels, public (listed by zone) or private (``docs/communities.md``)."""

from ioe.zomes.community.api import coordinator
from ioe.zomes.community.validation import integrity

__all__ = ["coordinator", "integrity"]
