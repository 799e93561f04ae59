"""The mutual-credit energy currency: countersigned transfers that carry provenance, credit
limits from the DNA's rules, and the value of a kWh (``value``). See ``docs/currency.md``."""

from ioe.zomes.currency.api import coordinator
from ioe.zomes.currency.validation import integrity

__all__ = ["coordinator", "integrity"]
