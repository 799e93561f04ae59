"""An agent's public profile: a name and a zone (``au/nsw/newtown``), linked from its agent key."""

from ioe.zomes.profile.api import coordinator
from ioe.zomes.profile.validation import integrity

__all__ = ["coordinator", "integrity"]
