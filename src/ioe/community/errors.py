"""The community room's error, in a module of its own so each of its services can raise it
without importing another (the service builds the join desk, which raises it too)."""

from __future__ import annotations

from ioe.errors import IoEError


class CommunityError(IoEError):
    """A community could not be founded, found or joined; the message says why."""
