"""Identity in the core DNA: for now only its membrane rule (no certificate, no membership).

The rule is pure and lives with the documents it judges (:mod:`ioe.identity.membership`); this
zome is where the core DNA's integrity carries it. A zome of its own rather than a rule attached
to another zome: who may join is no concern of profiles, telemetry or the currency, and a zome of
its own keeps the rule's version (hashed into the DNA) apart from theirs.
"""

from ioe.zomes.identity.validation import integrity

__all__ = ["integrity"]
