"""Integrity rules of the profile zome (pure)."""

from __future__ import annotations

from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import Create, CreateLink, Update, Visibility
from ioe.engine.zome import EntryDef, IntegrityZome
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.profile.entries import MAX_NAME, Profile
from ioe.zones import zone_problem

PROFILE_LINK = "profile"


def validate(op: Op, host: IntegrityHost) -> Outcome:
    action = op.action
    if isinstance(op.app_entry, Profile):
        profile = op.app_entry
        if not 0 < len(profile.name.strip()) <= MAX_NAME or profile.name != profile.name.strip():
            return Invalid(f"a name has 1 to {MAX_NAME} characters, no outer spaces")
        if not profile.name.isprintable():
            # no control characters (NUL), no invisible format characters (zero-width, the
            # bidirectional overrides that make a name read as another)
            return Invalid("a name has only printable characters")
        problem = zone_problem(profile.zone)
        if problem:
            return Invalid(problem)
    if isinstance(action, CreateLink) and op.type in (
        OpType.STORE_RECORD,
        OpType.REGISTER_ADD_LINK,
    ):
        if not isinstance(action.base, AgentPubKey) or action.base != action.author:
            return Invalid("only an agent links its own profile")
        if not isinstance(action.target, ActionHash):
            return Invalid("a profile link points at the action that created the profile")
        target = host.must_get_action(action.target).action
        if not isinstance(target, Create | Update) or target.author != action.author:
            return Invalid("a profile link points at the author's own profile")
    return VALID


integrity = IntegrityZome(
    name="profile",
    version="2",
    entry_defs=(EntryDef("profile", Profile, Visibility.PUBLIC),),
    link_types=(PROFILE_LINK,),
    validate=validate,
)
