"""Owner keysets: M-of-N signatures (with a property test) and the hash-linked spec chain."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.errors import EncodingError
from ioe.identity.authority import (
    MAX_SIGNATURES,
    MAX_SIGNERS,
    AuthoritySpec,
    Keyset,
    KeysetChange,
    check_authorized,
    check_revoker_or_authorized,
    keyset_id,
    keyset_problem,
    single_owner,
    spec_problem,
)
from ioe.identity.document import Signature, sign

CTX = b"ioe/test/doc/v1"
MSG = b"the document"
KEYS = [KeyPair(bytes([0x40 + i]) * 32) for i in range(6)]
STRANGER = KeyPair(b"\x33" * 32)
T0 = 1_800_000_000_000_000


def spec(m: int, n: int, revoker: KeyPair | None = None) -> AuthoritySpec:
    return AuthoritySpec.of(m, [k.agent for k in KEYS[:n]], revoker.agent if revoker else None)


def sigs(*keys: KeyPair, message: bytes = MSG, context: bytes = CTX) -> tuple[Signature, ...]:
    return tuple(sign(k, context, message) for k in keys)


# ----------------------------------------------------------------------------- specs


def test_single_owner_is_one_of_one() -> None:
    s = single_owner(KEYS[0].agent)
    assert s.sigs_required == 1 and s.signers == (KEYS[0].agent,) and spec_problem(s) is None


@pytest.mark.parametrize(
    ("m", "signers", "needle"),
    [
        (0, [KEYS[0].agent], "sigs_required"),
        (2, [KEYS[0].agent], "sigs_required"),
        (1, [], "1 to"),
        (1, [KEYS[0].agent, KEYS[0].agent], "once each"),
        (1, sorted([KEYS[0].agent, KEYS[1].agent], reverse=True), "sorted"),
        (1, [KeyPair(bytes([i]) * 32).agent for i in range(MAX_SIGNERS + 1)], "1 to"),
    ],
)
def test_malformed_specs_are_refused(m: int, signers: list, needle: str) -> None:
    problem = spec_problem(AuthoritySpec(m, tuple(signers)))
    assert problem is not None and needle in problem


def test_keyset_id_depends_on_the_whole_genesis_spec() -> None:
    assert keyset_id(spec(1, 2)) == keyset_id(spec(1, 2))
    assert keyset_id(spec(1, 2)) != keyset_id(spec(2, 2))
    assert keyset_id(spec(1, 2)) != keyset_id(spec(1, 2, STRANGER))


# ----------------------------------------------------------------------------- M of N


def test_m_of_n_accepts_m_distinct_signers() -> None:
    assert check_authorized(spec(2, 3), MSG, CTX, sigs(KEYS[0], KEYS[2])) is None


def test_too_few_signatures_are_refused() -> None:
    problem = check_authorized(spec(2, 3), MSG, CTX, sigs(KEYS[1]))
    assert problem == "1 valid signature(s) of the 2 required"


def test_a_duplicate_signer_is_counted_once() -> None:
    assert check_authorized(spec(2, 3), MSG, CTX, sigs(KEYS[0], KEYS[0], KEYS[0])) is not None


def test_strangers_bad_signatures_and_other_contexts_do_not_count() -> None:
    s = spec(2, 3)
    forged = Signature(KEYS[1].agent, STRANGER.sign(CTX, MSG))
    assert check_authorized(s, MSG, CTX, (*sigs(KEYS[0], STRANGER), forged)) is not None
    assert check_authorized(s, MSG, CTX, sigs(KEYS[0], KEYS[1], context=b"other")) is not None
    assert check_authorized(s, MSG, CTX, sigs(KEYS[0], KEYS[1], message=b"other")) is not None
    # …but they do not spoil enough good signatures either
    assert check_authorized(s, MSG, CTX, (forged, *sigs(STRANGER, KEYS[0], KEYS[1]))) is None


def test_too_many_signature_entries_are_refused() -> None:
    flood = sigs(*([STRANGER] * MAX_SIGNATURES), KEYS[0])
    assert check_authorized(spec(1, 1), MSG, CTX, flood) == f"more than {MAX_SIGNATURES} signatures"


def test_revoker_alone_suffices_only_where_allowed() -> None:
    s = spec(2, 3, STRANGER)
    assert check_revoker_or_authorized(s, MSG, CTX, sigs(STRANGER)) is None
    assert check_authorized(s, MSG, CTX, sigs(STRANGER)) is not None


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
)
def test_accepted_iff_at_least_m_distinct_valid_signer_signatures(
    n: int, data: st.DataObject
) -> None:
    m = data.draw(st.integers(1, n))
    s = spec(m, n)
    # each entry: a signer of the spec (valid or forged), or a stranger
    entries = data.draw(
        st.lists(st.tuples(st.integers(0, 6), st.booleans()), max_size=12), label="entries"
    )
    signatures = []
    good = set()
    for index, valid in entries:
        key = KEYS[index] if index < 6 else STRANGER
        signature = key.sign(CTX, MSG) if valid else STRANGER.sign(CTX, b"x" + MSG)
        signatures.append(Signature(key.agent, signature))
        if valid and index < n:
            good.add(index)
    accepted = check_authorized(s, MSG, CTX, tuple(signatures)) is None
    assert accepted == (len(good) >= m)


# ----------------------------------------------------------------------------- the chain


def test_a_keyset_change_signed_by_m_of_the_previous_spec_extends_the_chain() -> None:
    keyset = Keyset(spec(2, 3))
    change = keyset.propose(spec(2, 4), T0).signed_by(KEYS[0], KEYS[1])
    grown = keyset.extended(change)
    assert keyset_problem(grown) is None
    assert grown.id == keyset.id and grown.current == spec(2, 4)
    assert grown.extends(keyset) and not keyset.extends(grown)
    # the next change needs M of the *new* spec: KEYS[3] now counts
    again = grown.extended(grown.propose(spec(1, 1), T0 + 1).signed_by(KEYS[3], KEYS[2]))
    assert keyset_problem(again) is None and again.current == spec(1, 1)


def test_a_change_with_too_few_signatures_is_refused() -> None:
    keyset = Keyset(spec(2, 3))
    change = keyset.propose(spec(1, 1), T0).signed_by(KEYS[0])
    assert "1 valid signature(s) of the 2 required" in str(keyset_problem(keyset.extended(change)))


def test_a_removed_signer_no_longer_counts() -> None:
    keyset = Keyset(spec(1, 2))
    removed = keyset.extended(
        keyset.propose(AuthoritySpec.of(1, [KEYS[0].agent]), T0).signed_by(KEYS[0])
    )
    change = removed.propose(spec(1, 3), T0 + 1).signed_by(KEYS[1])
    assert keyset_problem(removed.extended(change)) is not None


def test_the_revoker_alone_may_change_the_spec_and_only_it_may_replace_itself() -> None:
    keyset = Keyset(spec(2, 3, STRANGER))
    recovered = keyset.propose(spec(1, 1, STRANGER), T0).signed_by(STRANGER)
    assert keyset_problem(keyset.extended(recovered)) is None
    hijack = keyset.propose(spec(1, 1), T0).signed_by(KEYS[0], KEYS[1])
    assert "revoker's signature" in str(keyset_problem(keyset.extended(hijack)))


@pytest.mark.parametrize("field", ["seq", "prev", "keyset", "issued_us", "version"])
def test_a_change_out_of_place_is_refused(field: str) -> None:
    keyset = Keyset(spec(1, 1))
    first = keyset.propose(spec(1, 2), T0 + 10).signed_by(KEYS[0])
    grown = keyset.extended(first)
    change = grown.propose(spec(1, 3), T0 + 20)
    bad = {
        "seq": dataclasses.replace(change, seq=1),
        "prev": dataclasses.replace(change, prev=keyset.id),
        "keyset": dataclasses.replace(change, keyset=first.id),
        "issued_us": dataclasses.replace(change, issued_us=T0),
        "version": dataclasses.replace(change, version=2),
    }[field].signed_by(KEYS[0])
    assert keyset_problem(grown.extended(bad)) is not None
    assert keyset_problem(grown.extended(change.signed_by(KEYS[0]))) is None


def test_keyset_change_bytes_round_trip_and_are_strict() -> None:
    change = Keyset(spec(1, 2)).propose(spec(2, 2), T0).signed_by(KEYS[0])
    assert KeysetChange.from_bytes(change.to_bytes()) == change
    assert change.id == dataclasses.replace(change, signatures=()).id  # signatures not in the id
    with pytest.raises(EncodingError):
        KeysetChange.from_bytes(dataclasses.replace(change, seq=0).to_bytes())
    with pytest.raises(EncodingError):
        KeysetChange.from_bytes(change.to_bytes() + b"\x00")
