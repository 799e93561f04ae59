"""The signed envelope every protocol outside a DNA uses: its bytes, round trip and refusals."""

from __future__ import annotations

import ast
from pathlib import Path

import cbor2
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe import envelope
from ioe.crypto.keys import KeyPair
from ioe.envelope import Envelope, EnvelopeError, is_fresh, is_live
from ioe.hashing import AgentPubKey
from ioe.identity.service import (
    enrollment_messages,
    keyset_signing,
    rotation_messages,
    transfer_messages,
)
from ioe.services import remote

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
KINDED = Envelope(
    what="test message",
    one="{kind} message",
    context="ioe/test/{kind}/v1",
    kinds=("hello", "bye"),
    max_bytes=4096,
)
PLAIN = Envelope(what="call", context="ioe/test-call/v1", body_field="call", max_bytes=4096)


def _by_hand(
    seed: bytes, context: bytes, body: dict[str, object], outer: dict[str, object]
) -> bytes:
    """The envelope built straight from cbor2 and PyNaCl, as the protocol documents it."""
    signing = nacl.signing.SigningKey(seed)
    raw = cbor2.dumps({**body, "from": bytes(signing.verify_key)}, canonical=True)
    sig = signing.sign(context + b"\x00" + raw).signature
    return cbor2.dumps(
        {**outer, "sig": sig, "body" if "kind" in outer else "call": raw}, canonical=True
    )


def test_the_bytes_are_the_documented_ones() -> None:
    body = {"time_us": 7, "name": "kettle", "nonce": b"\x01" * 4}
    assert KINDED.seal(KeyPair(SEED), body, "hello") == _by_hand(
        SEED, b"ioe/test/hello/v1", body, {"kind": "hello"}
    )
    assert PLAIN.seal(KeyPair(SEED), body) == _by_hand(SEED, b"ioe/test-call/v1", body, {})


def test_the_contexts_of_the_protocols_are_unchanged() -> None:
    assert enrollment_messages.context("request") == b"ioe/enroll/request/v1"
    assert transfer_messages.context("offer") == b"ioe/transfer/offer/v1"
    assert rotation_messages.context("rotated") == b"ioe/rotate/rotated/v1"
    assert keyset_signing.ENVELOPE.context_of("sign_request") == b"ioe/keyset-sign/sign_request/v1"
    assert remote.CALL_ENVELOPE.context_of() == b"ioe/zome-call/v1"
    assert remote.SIGNAL_ENVELOPE.context_of() == b"ioe/remote-signal/v1"


_VALUES = st.one_of(st.integers(-(2**63), 2**63), st.binary(max_size=40), st.text(max_size=20))


@given(
    body=st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "from"), _VALUES),
    kind=st.sampled_from(KINDED.kinds),
    seed=st.binary(min_size=32, max_size=32),
)
def test_round_trip(body: dict[str, object], kind: str, seed: bytes) -> None:
    keys = KeyPair(seed)
    opened = KINDED.open(KINDED.seal(keys, body, kind), expect=kind)
    assert opened.kind == kind
    assert opened.signer == AgentPubKey(bytes(nacl.signing.SigningKey(seed).verify_key))
    assert opened.body == {**body, "from": bytes(opened.signer)}


def test_a_tampered_body_or_another_signer_is_forged() -> None:
    keys = KeyPair(SEED)
    outer = cbor2.loads(KINDED.seal(keys, {"amount": 1}, "hello"))
    tampered_raw = cbor2.dumps({"amount": 2, "from": bytes(keys.agent)}, canonical=True)
    tampered = cbor2.dumps({**outer, "body": tampered_raw}, canonical=True)
    with pytest.raises(EnvelopeError, match=r"the hello message's signature does not verify"):
        KINDED.open(tampered)
    stranger = KeyPair(OTHER_SEED)
    claimed = cbor2.dumps({"amount": 1, "from": bytes(stranger.agent)}, canonical=True)
    impostor = cbor2.dumps({**outer, "body": claimed}, canonical=True)
    with pytest.raises(EnvelopeError, match="forged"):
        KINDED.open(impostor)


def test_a_signature_under_another_context_is_forged() -> None:
    keys = KeyPair(SEED)
    as_bye = cbor2.loads(KINDED.seal(keys, {"n": 1}, "bye"))
    relabelled = cbor2.dumps({**as_bye, "kind": "hello"}, canonical=True)
    with pytest.raises(EnvelopeError, match="forged"):
        KINDED.open(relabelled)
    with pytest.raises(EnvelopeError, match="forged"):
        PLAIN.open(cbor2.dumps({"call": as_bye["body"], "sig": as_bye["sig"]}, canonical=True))


def test_malformed_oversized_and_unexpected_envelopes_are_refused() -> None:
    keys = KeyPair(SEED)
    for garbage in (b"", b"\xff" * 40, cbor2.dumps({"call": b"x", "sig": b"y"}, canonical=True)):
        with pytest.raises(EnvelopeError, match="malformed call"):
            PLAIN.open(garbage)
    with pytest.raises(EnvelopeError, match="malformed test message"):
        KINDED.open(cbor2.dumps({"kind": "other", "body": b"", "sig": bytes(64)}, canonical=True))
    with pytest.raises(EnvelopeError, match="at most 4096 bytes"):
        PLAIN.open(PLAIN.seal(keys, {"blob": bytes(5000)}))
    with pytest.raises(EnvelopeError, match="expected a bye message, got hello"):
        KINDED.open(KINDED.seal(keys, {}, "hello"), expect="bye")
    with pytest.raises(ValueError, match="unknown test message kind"):
        KINDED.seal(keys, {}, "other")
    with pytest.raises(ValueError, match="unknown call kind"):
        PLAIN.seal(keys, {}, "hello")


def test_a_protocol_refuses_with_its_own_error() -> None:
    class Refused(Exception):
        pass

    own = Envelope(what="call", context="ioe/test-call/v1", max_bytes=64, error=Refused)
    with pytest.raises(Refused, match="malformed call"):
        own.open(b"\x00")


def test_freshness_and_expiry_take_the_time_as_an_argument() -> None:
    assert is_fresh(1_000, 1_000 + 300, 300) and is_fresh(1_300, 1_000, 300)
    assert not is_fresh(1_000, 1_301, 300) and not is_fresh(1_301, 1_000, 300)
    assert is_live(2_000, 1_999, 100) and is_live(2_000, 1_900, 100)
    assert not is_live(2_000, 2_000, 100)  # expired at that very moment
    assert not is_live(2_000, 1_899, 100)  # expires too far ahead


def test_the_envelope_module_does_no_io() -> None:
    """Pure: it may lean only on encoding, hashing, errors and keys (and the standard library's
    typing helpers), so protocols can be driven against each other in memory."""
    tree = ast.parse(Path(envelope.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    allowed = {"ioe.encoding", "ioe.hashing", "ioe.errors", "ioe.crypto.keys"}
    allowed |= {"__future__", "collections.abc", "dataclasses", "typing"}
    assert imported <= allowed, imported - allowed
