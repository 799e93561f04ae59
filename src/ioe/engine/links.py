"""A rule several integrity zomes share: a link from an agent key to its author's own entry
about that key (a revocation, a transfer, a reputation claim).

Each zome says what is wrong in its own words (:class:`AgentLinkRule`); the checks and their
order are the same everywhere, so every zome reaches the same verdict on the same link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Outcome
from ioe.engine.records import Create, CreateLink
from ioe.engine.schema import decode_as
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey

E = TypeVar("E")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLinkRule(Generic[E]):
    """A link type whose base is an agent key and whose target the author's own ``entry``.

    ``subject`` is the key a (decoded) entry is about, or None when the entry is not valid.
    The texts are the refusals: ``not_agent_link`` (the base is no agent key or the target no
    action), ``not_own_entry``, ``not_entry`` (the target does not decode as ``entry``) and
    ``not_subject`` (the base is not the entry's subject)."""

    entry: type[E]
    subject: Callable[[E], AgentPubKey | None]
    not_agent_link: str
    not_own_entry: str
    not_entry: str
    not_subject: str

    def check(self, action: CreateLink, host: IntegrityHost) -> Outcome:
        """The verdict on ``action``, a link of this type."""
        if not isinstance(action.base, AgentPubKey) or not isinstance(action.target, ActionHash):
            return Invalid(self.not_agent_link)
        record = host.must_get_valid_record(action.target)
        target = record.action
        if not isinstance(target, Create) or target.author != action.author or record.entry is None:
            return Invalid(self.not_own_entry)
        try:
            entry = decode_as(self.entry, record.entry.payload)
        except EncodingError:
            return Invalid(self.not_entry)
        subject = self.subject(entry)
        if subject is None or subject != action.base:
            return Invalid(self.not_subject)
        return VALID
