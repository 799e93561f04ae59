"""Signals: events a zome call pushes to local listeners (UIs, apps) or to other agents.

Signals are not chain data: nothing is signed into a chain or validated by peers. A zome call
stages them and they leave only if the call commits (a failed call emits nothing). Remote signals
are signed by the sending agent on the wire (``ioe.services.remote``) so the receiver knows who sent
them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ioe.encoding import Value, encode
from ioe.engine.schema import to_value
from ioe.errors import EncodingError, ZomeCallError
from ioe.hashing import AgentPubKey

MAX_SIGNAL_BYTES = 64 * 1024
MAX_SIGNAL_TARGETS = 256


@dataclass(frozen=True, slots=True)
class Signal:
    """A local signal: which zome of which agent's cell emitted what."""

    zome: str
    agent: AgentPubKey
    value: Value


@dataclass(frozen=True, slots=True)
class RemoteSignal:
    """A signal for other agents' nodes."""

    zome: str
    sender: AgentPubKey
    to: tuple[AgentPubKey, ...]
    value: Value


def signal_value(value: Any) -> Value:
    """``value`` as a canonical value (dataclasses converted), refused if not encodable or too
    big."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_value(value)
    try:
        size = len(encode(value))
    except EncodingError as exc:
        raise ZomeCallError(f"a signal must be canonically encodable: {exc}") from None
    if size > MAX_SIGNAL_BYTES:
        raise ZomeCallError(f"a signal of {size} bytes is over {MAX_SIGNAL_BYTES}")
    return value
