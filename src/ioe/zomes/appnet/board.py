"""The board: what an app's members post for each other in its network.

The first app DNA (``board/1``): members post short JSON notes under a topic (the demand app
posts each settled off-period under ``demand.reductions``) and read each other's. Only the app
network's members can read or write them: outsiders are refused at the membrane
(:mod:`ioe.zomes.appnet.membrane`), so a community's notes stay in the community.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ioe.engine.cell import CallContext
from ioe.engine.integrity import VALID, IntegrityHost, Invalid, Op, OpType, Outcome
from ioe.engine.records import CreateLink, Visibility
from ioe.engine.schema import decode_as
from ioe.engine.zome import CoordinatorZome, EntryDef, IntegrityZome
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import ActionHash, ExternalHash

BOARD_ZOME = "board"
POST_ENTRY = "board_post"
TOPIC_LINK = "board_topic"
MAX_TOPIC = 64
MAX_BODY = 4_096
MAX_READ = 500


@dataclass(frozen=True, slots=True)
class BoardPost:
    topic: str
    body: str
    """JSON text (an object), at most :data:`MAX_BODY` characters."""
    posted_us: int


def topic_anchor(topic: str) -> ExternalHash:
    return ExternalHash.of(b"ioe/app/board/" + topic.encode())


def post_problem(post: BoardPost) -> str | None:
    if not post.topic or len(post.topic) > MAX_TOPIC or not post.topic.isprintable():
        return f"a topic is 1 to {MAX_TOPIC} printable characters"
    if len(post.body) > MAX_BODY:
        return f"a post's body is at most {MAX_BODY} characters"
    try:
        body = json.loads(post.body)
    except json.JSONDecodeError:
        return "a post's body is JSON text"
    if not isinstance(body, dict):
        return "a post's body is a JSON object"
    return None if post.posted_us >= 0 else "posted_us is non-negative"


def validate(op: Op, host: IntegrityHost) -> Outcome:
    entry = op.app_entry
    if isinstance(entry, BoardPost):
        problem = post_problem(entry)
        if problem:
            return Invalid(problem)
    action = op.action
    if isinstance(action, CreateLink) and op.type in (
        OpType.STORE_RECORD,
        OpType.REGISTER_ADD_LINK,
    ):
        if not isinstance(action.target, ActionHash):
            return Invalid("a board link points at a post")
        record = host.must_get_valid_record(action.target)
        if record.entry is None or record.action.author != action.author:
            return Invalid("a board link points at the author's own post")
        try:
            post = decode_as(BoardPost, record.entry.payload)
        except EncodingError:
            return Invalid("a board link points at a post")
        if action.base != topic_anchor(post.topic):
            return Invalid("a post is linked from its topic's anchor")
    return VALID


integrity = IntegrityZome(
    name=BOARD_ZOME,
    version="1",
    entry_defs=(EntryDef(POST_ENTRY, BoardPost, Visibility.PUBLIC),),
    link_types=(TOPIC_LINK,),
    validate=validate,
)

coordinator = CoordinatorZome(BOARD_ZOME)


@coordinator.function
def post(ctx: CallContext, payload: Any) -> ActionHash:
    """Post ``{"topic": str, "body": str}`` (a JSON object as text)."""
    if not isinstance(payload, dict):
        raise ZomeCallError("post takes {topic, body}")
    topic, body = payload.get("topic"), payload.get("body")
    if not isinstance(topic, str) or not isinstance(body, str):
        raise ZomeCallError("a post's topic and body are text")
    entry = BoardPost(topic, body, ctx.now_us)
    problem = post_problem(entry)
    if problem:
        raise ZomeCallError(problem)
    action = ctx.create(entry)
    ctx.create_link(topic_anchor(topic), action, TOPIC_LINK)
    return action
