"""Signed telemetry: a device's readings committed to its own chain, so anyone can verify them."""

from ioe.zomes.telemetry.api import coordinator
from ioe.zomes.telemetry.validation import integrity

__all__ = ["coordinator", "integrity"]
