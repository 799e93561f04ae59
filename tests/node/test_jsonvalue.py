"""Values as JSON, and capability secrets as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.services.jsonvalue import json_ready, secret_from_text, secret_to_text


@given(st.binary(min_size=32, max_size=32))
def test_secrets_round_trip_and_never_look_like_an_option(secret: bytes) -> None:
    text = secret_to_text(secret)
    assert text.startswith("u") and not text.startswith("-")
    assert secret_from_text(text) == secret


@pytest.mark.parametrize("bad", ["", "-abc", "abc", "u!!!"])
def test_text_that_is_not_a_secret_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_from_text(bad)


def test_json_ready_shows_keys_as_text_and_bytes_tagged() -> None:
    agent = KeyPair(b"\x07" * 32).agent
    assert json_ready({agent: [b"\x00\x01", (1, True)]}) == {
        agent.to_text(): [{"$bytes": "AAE"}, [1, True]]
    }
