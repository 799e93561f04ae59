"""Values as JSON for the API, the CLI and remote-call replies.

Hashes and agent keys become their text forms (``uagnt…``), other bytes ``{"$bytes": base64url}``,
dataclasses their canonical maps, map keys strings.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
from typing import Any

from ioe.engine.capability import SECRET_BYTES
from ioe.engine.schema import to_value
from ioe.hashing import HoloHash


def json_ready(value: Any) -> Any:
    if isinstance(value, HoloHash):
        return value.to_text()
    if isinstance(value, bool | int | float | str) or value is None:
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.urlsafe_b64encode(bytes(value)).decode().rstrip("=")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_ready(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    return json_ready(to_value(value))


def _key(key: Any) -> str:
    if isinstance(key, HoloHash):
        return key.to_text()
    if isinstance(key, str):
        return key
    return str(json_ready(key))


def secret_to_text(secret: bytes) -> str:
    """A capability secret as text: multibase base64url (``u`` + base64url, no padding), so it
    never starts with ``-`` and is safe as a command-line argument."""
    return "u" + base64.urlsafe_b64encode(secret).decode().rstrip("=")


def secret_from_text(text: str) -> bytes:
    """The secret shown by :func:`secret_to_text`; ``ValueError`` if ``text`` is not one."""
    if not text.startswith("u"):
        raise ValueError("a capability secret is the text shown when the grant was made (u…)")
    body = text[1:]
    try:
        secret = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a capability secret: {exc}") from None
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a capability secret is {SECRET_BYTES} bytes, not {len(secret)}")
    return secret
