"""DHT operations: the views of a record that its authorities validate and store.

Each public record becomes several ops, each with a *basis* hash that decides which peers are
its authorities (Holochain's ``ChainOp``). Private entries never travel: their ops carry the
action only. The network layer publishes these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ioe.engine.records import (
    AnyAction,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Entry,
    Record,
    SignedAction,
    Update,
)
from ioe.hashing import HoloHash


class OpType(IntEnum):
    STORE_RECORD = 0
    STORE_ENTRY = 1
    REGISTER_AGENT_ACTIVITY = 2
    REGISTER_UPDATED_CONTENT = 3
    REGISTER_UPDATED_RECORD = 4
    REGISTER_DELETED_BY = 5
    REGISTER_DELETED_ENTRY_ACTION = 6
    REGISTER_ADD_LINK = 7
    REGISTER_REMOVE_LINK = 8


@dataclass(frozen=True, slots=True)
class Op:
    """One DHT op. ``app_entry`` is the entry decoded into its zome's dataclass, when it has one;
    ``session`` is set when the op is judged as the app entry of a countersigning session."""

    type: OpType
    signed_action: SignedAction
    entry: Entry | None = None
    app_entry: object | None = field(default=None, compare=False)
    session: object | None = field(default=None, compare=False)
    """When ``app_entry`` is the app entry embedded in a countersigned entry, that entry
    (an ``ioe.engine.countersigning.CountersignedEntry``): the session data, for app rules."""

    @property
    def action(self) -> AnyAction:
        return self.signed_action.action

    @property
    def author(self) -> HoloHash:
        return self.signed_action.action.author

    def basis(self) -> HoloHash:
        """The hash whose nearest peers are this op's authorities."""
        action = self.signed_action.action
        match self.type:
            case OpType.STORE_RECORD:
                return self.signed_action.hash
            case OpType.STORE_ENTRY:
                assert action.entry_hash is not None
                return action.entry_hash
            case OpType.REGISTER_AGENT_ACTIVITY:
                return action.author
            case OpType.REGISTER_UPDATED_CONTENT:
                assert isinstance(action, Update)
                return action.original_entry
            case OpType.REGISTER_UPDATED_RECORD:
                assert isinstance(action, Update)
                return action.original_action
            case OpType.REGISTER_DELETED_BY:
                assert isinstance(action, Delete)
                return action.deletes_action
            case OpType.REGISTER_DELETED_ENTRY_ACTION:
                assert isinstance(action, Delete)
                return action.deletes_entry
            case OpType.REGISTER_ADD_LINK | OpType.REGISTER_REMOVE_LINK:
                assert isinstance(action, CreateLink | DeleteLink)
                return action.base
        raise AssertionError(self.type)


def ops_from_record(record: Record) -> list[Op]:
    """Every op a record produces (private entries are left out of the ops)."""
    signed, action = record.signed_action, record.signed_action.action
    entry = None if record.is_private() else record.entry
    ops = [Op(OpType.STORE_RECORD, signed, entry), Op(OpType.REGISTER_AGENT_ACTIVITY, signed)]
    if isinstance(action, Create | Update) and entry is not None:
        ops.append(Op(OpType.STORE_ENTRY, signed, entry))
    if isinstance(action, Update):
        ops.append(Op(OpType.REGISTER_UPDATED_CONTENT, signed, entry))
        ops.append(Op(OpType.REGISTER_UPDATED_RECORD, signed, entry))
    elif isinstance(action, Delete):
        ops.append(Op(OpType.REGISTER_DELETED_BY, signed))
        ops.append(Op(OpType.REGISTER_DELETED_ENTRY_ACTION, signed))
    elif isinstance(action, CreateLink):
        ops.append(Op(OpType.REGISTER_ADD_LINK, signed))
    elif isinstance(action, DeleteLink):
        ops.append(Op(OpType.REGISTER_REMOVE_LINK, signed))
    return ops
