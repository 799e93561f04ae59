"""Pairing codes: format, check character, normalisation, and the attempt limiter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.identity.pairing import (
    ALPHABET,
    LOCKOUT_US,
    MAX_FAILURES,
    PairingCodeError,
    PairingState,
    Verdict,
    attempt,
    codes_equal,
    format_code,
    generate_code,
    judge,
    normalise_code,
)

T0 = 1_800_000_000_000_000
CODE = generate_code(bytes(range(7)))
OTHER = generate_code(bytes(range(1, 8)))


def test_codes_look_like_the_label() -> None:
    assert len(CODE) == 8 and set(CODE) <= set(ALPHABET)
    assert not set("01IO") & set(ALPHABET) and len(ALPHABET) == 32
    shown = format_code(CODE)
    assert shown[4] == "-" and shown.replace("-", "") == CODE


def test_generation_needs_seven_random_bytes() -> None:
    with pytest.raises(ValueError, match="7 random bytes"):
        generate_code(b"\x00" * 6)


@given(st.binary(min_size=7, max_size=7))
def test_generated_codes_normalise_to_themselves(random: bytes) -> None:
    code = generate_code(random)
    assert normalise_code(code) == code
    assert normalise_code(f"  {code[:4].lower()} - {code[4:]} ") == code


@given(st.binary(min_size=7, max_size=7), st.integers(0, 7), st.sampled_from(ALPHABET))
def test_any_single_typo_is_caught(random: bytes, position: int, char: str) -> None:
    code = generate_code(random)
    typo = code[:position] + char + code[position + 1 :]
    if typo != code:
        with pytest.raises(PairingCodeError, match="typo"):
            normalise_code(typo)


@pytest.mark.parametrize("text", ["", "K7QD", "K7QD-M2XP-AB", "K7QD-M2X0", "K7QD-M2XI", 42])
def test_what_is_not_a_code(text: object) -> None:
    with pytest.raises(PairingCodeError):
        normalise_code(text)  # type: ignore[arg-type]


def test_constant_time_compare() -> None:
    assert codes_equal(CODE, CODE) and not codes_equal(CODE, OTHER)


def test_the_right_code_is_accepted_once_and_a_replay_refused() -> None:
    verdict, state = attempt(PairingState(), CODE, format_code(CODE).lower(), T0)
    assert verdict is Verdict.ACCEPTED and state.spent
    assert attempt(state, CODE, CODE, T0 + 1) == (Verdict.SPENT, state)


def test_a_malformed_code_does_not_count_as_an_attempt() -> None:
    state = PairingState()
    for _ in range(10):
        verdict, state = attempt(state, CODE, "K7QD-M2X", T0)
        assert verdict is Verdict.MALFORMED
    assert state == PairingState()


def test_wrong_codes_lock_the_device_out_for_a_window() -> None:
    state = PairingState()
    for _ in range(MAX_FAILURES):
        verdict, state = attempt(state, CODE, OTHER, T0)
        assert verdict is Verdict.WRONG
    # now even the right code is refused until the window ends
    assert attempt(state, CODE, CODE, T0 + 1)[0] is Verdict.LOCKED
    assert attempt(state, CODE, CODE, T0 + LOCKOUT_US - 1)[0] is Verdict.LOCKED
    verdict, after = attempt(state, CODE, CODE, T0 + LOCKOUT_US)
    assert verdict is Verdict.ACCEPTED and after.spent


def test_failures_below_the_limit_do_not_lock() -> None:
    state = PairingState()
    for _ in range(MAX_FAILURES - 1):
        _, state = attempt(state, CODE, OTHER, T0)
    assert state.failures == MAX_FAILURES - 1 and state.locked_until_us == 0
    assert attempt(state, CODE, CODE, T0)[0] is Verdict.ACCEPTED


def test_after_a_lockout_a_fresh_batch_of_attempts_is_allowed() -> None:
    state = PairingState()
    for _ in range(MAX_FAILURES):
        _, state = attempt(state, CODE, OTHER, T0)
    later = T0 + LOCKOUT_US
    for _ in range(MAX_FAILURES):
        verdict, state = attempt(state, CODE, OTHER, later)
        assert verdict is Verdict.WRONG
    assert attempt(state, CODE, CODE, later)[0] is Verdict.LOCKED


def test_judge_is_the_limiter_for_already_compared_attempts() -> None:
    state = PairingState()
    for _ in range(MAX_FAILURES - 1):
        verdict, state = judge(state, False, 10)
        assert verdict is Verdict.WRONG
    verdict, state = judge(state, False, 10)
    assert verdict is Verdict.WRONG and state.locked_until_us == 10 + LOCKOUT_US
    assert judge(state, True, 11)[0] is Verdict.LOCKED
    verdict, state = judge(state, True, 10 + LOCKOUT_US)
    assert verdict is Verdict.ACCEPTED and state.spent
    assert judge(state, True, 10 + LOCKOUT_US)[0] is Verdict.SPENT
