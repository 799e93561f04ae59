"""The exception tree of the whole project, in one place.

Every error the project raises on purpose derives from :class:`IoEError`. The tree says who is at
fault, so a caller knows whether to fix itself, ask the user, or distrust a peer::

    IoEError
    ├── EncodingError          bytes that are not canonical IoE encoding (from anyone)
    ├── CryptoError
    │   ├── BadSignature       a signature that does not verify
    │   └── KeystoreError      the keystore cannot be opened or written
    │       └── WrongPassphrase
    ├── ValidationError        a write that the DNA's integrity rules reject (nothing was committed)
    │   └── MissingDependencies  …or cannot judge yet: what it cites is not here (fetch, retry)
    ├── ChainError
    │   ├── ChainIntegrityError  a stored chain fails verification; names the first bad record
    │   └── ChainLocked        the chain is locked by a countersigning session; writes must wait
    ├── StoreError             the storage layer failed (mapped from sqlite3)
    ├── ZomeCallError          a zome call named an unknown zome or function, or bad payload
    │   └── Unauthorized       no live capability grant allows this caller this function
    ├── LocalProtocolError     this node broke a protocol (a bug here)
    └── RemoteProtocolError    a peer broke a protocol (grounds for rejection and a warrant)

Library exceptions (sqlite3, nacl, cbor2) are mapped to these at the module that calls the library,
so nothing from a dependency leaks to callers.
"""

from __future__ import annotations

from collections.abc import Sequence


class IoEError(Exception):
    """Base of every error raised on purpose by the project."""


class EncodingError(IoEError, ValueError):
    """Bytes or values that are not valid canonical IoE encoding."""


class CryptoError(IoEError):
    """A cryptographic operation failed."""


class BadSignature(CryptoError):
    """A signature does not verify against the claimed key and message."""


class KeystoreError(CryptoError):
    """The keystore cannot be created, opened or written."""


class WrongPassphrase(KeystoreError):
    """The passphrase (or device key file) does not open the keystore."""


class ValidationError(IoEError):
    """A write was rejected by validation; the chain is unchanged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingDependencies(ValidationError):
    """A write could not be validated yet: records it depends on are not here (``deps``, their
    hashes). Fetching them (from the DHT) and trying again may succeed; the chain is
    unchanged."""

    def __init__(self, deps: Sequence[object]) -> None:
        super().__init__("missing dependencies: " + ", ".join(_text(d) for d in deps))
        self.deps = tuple(deps)


def _text(dep: object) -> str:
    to_text = getattr(dep, "to_text", None)
    return to_text() if callable(to_text) else repr(dep)


class ChainError(IoEError):
    """A source chain operation is not possible in the chain's current state."""


class ChainIntegrityError(ChainError):
    """A stored chain does not verify. ``seq`` and ``action_hash`` name the first bad record."""

    def __init__(self, author: str, seq: int, action_hash: str | None, reason: str) -> None:
        where = f"record #{seq}" + (f" ({action_hash})" if action_hash else "")
        super().__init__(f"chain of {author}: {where}: {reason}")
        self.author = author
        self.seq = seq
        self.action_hash = action_hash
        self.reason = reason


class ChainLocked(ChainError):
    """A write to a chain locked by a countersigning session (reads still work)."""


class StoreError(IoEError):
    """The storage layer failed."""


class ZomeCallError(IoEError):
    """A zome call named an unknown zome or function, or passed a bad payload."""


class LocalProtocolError(IoEError):
    """This node broke a protocol: a bug on our side."""


class RemoteProtocolError(IoEError):
    """A peer broke a protocol: reject its message and consider a warrant."""


class Unauthorized(ZomeCallError):
    """A call from another agent that no live capability grant of the callee allows."""
