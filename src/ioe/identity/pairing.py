"""Pairing codes: the short code on a device's label that proves the owner holds the device.

A code is 8 characters from a 32-character alphabet without look-alikes (no ``0``, ``1``,
``I``, ``O``): 7 random characters (35 bits) and a Luhn mod 32 check character, shown as
``K7QD-M2XP``. Typed input is normalised (case, spaces and dashes do not matter); input that is
not a well-formed code (a typo the check character catches) is refused without counting as an
attempt. Comparison is constant-time.

:func:`attempt` is a pure limiter, one :class:`PairingState` per device, time passed in: after
:data:`MAX_FAILURES` wrong codes the device refuses every attempt for :data:`LOCKOUT_US`; after a
success the code is spent and every later attempt, even the right code, is refused.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from enum import StrEnum

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 8
RANDOM_BYTES = CODE_LENGTH - 1
MAX_FAILURES = 5
LOCKOUT_US = 15 * 60 * 1_000_000
_INDEX = {char: index for index, char in enumerate(ALPHABET)}


class PairingCodeError(ValueError):
    """Text that is not a pairing code."""


def check_character(data: str) -> str:
    """The Luhn mod 32 check character of ``data`` (characters of :data:`ALPHABET`)."""
    total, factor = 0, 2
    for char in reversed(data):
        addend = factor * _INDEX[char]
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return ALPHABET[(32 - total % 32) % 32]


def _check_ok(code: str) -> bool:
    total, factor = 0, 1
    for char in reversed(code):
        addend = factor * _INDEX[char]
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return total % 32 == 0


def generate_code(random_bytes: bytes) -> str:
    """A code from at least 7 random bytes (the caller's CSPRNG); normalised form, no dash."""
    if len(random_bytes) < RANDOM_BYTES:
        raise ValueError(f"a pairing code needs {RANDOM_BYTES} random bytes")
    data = "".join(ALPHABET[b % 32] for b in random_bytes[:RANDOM_BYTES])
    return data + check_character(data)


def format_code(code: str) -> str:
    """``K7QDM2XP`` → ``K7QD-M2XP`` (for labels and screens)."""
    code = normalise_code(code)
    return f"{code[:4]}-{code[4:]}"


def normalise_code(text: str) -> str:
    """The canonical form of typed ``text``; :class:`PairingCodeError` when it is not a code."""
    if not isinstance(text, str) or len(text) > 64:
        raise PairingCodeError("not a pairing code")
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH:
        raise PairingCodeError(f"a pairing code has {CODE_LENGTH} characters, like K7QD-M2XP")
    bad = sorted({char for char in code if char not in _INDEX})
    if bad:
        raise PairingCodeError(f"a pairing code has no {''.join(bad)!r} (only {ALPHABET})")
    if not _check_ok(code):
        raise PairingCodeError("the code has a typo (its check character does not match)")
    return code


def codes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two normalised codes."""
    return hmac.compare_digest(a.encode(), b.encode())


# ----------------------------------------------------------------------------- the limiter


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    MALFORMED = "malformed"
    LOCKED = "locked"
    SPENT = "spent"


@dataclass(frozen=True, slots=True)
class PairingState:
    """One device's pairing attempts: consecutive failures, lockout end, spent after success."""

    failures: int = 0
    locked_until_us: int = 0
    spent: bool = False


def attempt(
    state: PairingState,
    expected: str,
    typed: str,
    now_us: int,
    *,
    max_failures: int = MAX_FAILURES,
    lockout_us: int = LOCKOUT_US,
) -> tuple[Verdict, PairingState]:
    """Judge one attempt of ``typed`` against the device's ``expected`` code at ``now_us``."""
    if state.spent:
        return Verdict.SPENT, state
    if now_us < state.locked_until_us:
        return Verdict.LOCKED, state
    try:
        code = normalise_code(typed)
    except PairingCodeError:
        return Verdict.MALFORMED, state
    matched = codes_equal(code, normalise_code(expected))
    return judge(state, matched, now_us, max_failures=max_failures, lockout_us=lockout_us)


def judge(
    state: PairingState,
    matched: bool,
    now_us: int,
    *,
    max_failures: int = MAX_FAILURES,
    lockout_us: int = LOCKOUT_US,
) -> tuple[Verdict, PairingState]:
    """The limiter alone, for a well-formed attempt already compared (``matched``): used when
    the owner proves knowledge of the code by a MAC rather than sending it (the enrollment
    protocol). Spent and locked states refuse before the comparison counts."""
    if state.spent:
        return Verdict.SPENT, state
    if now_us < state.locked_until_us:
        return Verdict.LOCKED, state
    if matched:
        return Verdict.ACCEPTED, PairingState(spent=True)
    failures = state.failures + 1
    if failures >= max_failures:
        return Verdict.WRONG, PairingState(0, now_us + lockout_us)
    return Verdict.WRONG, replace(state, failures=failures)
