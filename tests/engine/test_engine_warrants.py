"""Warrants (pure): encoding, strict decoding, the fork rule (with properties), invalid ops."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.dht import DhtOp
from ioe.engine.integrity import Unresolved
from ioe.engine.ops import OpType
from ioe.engine.records import Dna, Entry, InitZomesComplete, SignedAction
from ioe.engine.validation import SourceHost
from ioe.engine.warrants import (
    MAX_WARRANT_BYTES,
    Refuted,
    Upheld,
    Warrant,
    WarrantKind,
    check_warrant,
    fork_problem,
)
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, AgentPubKey, DnaHash, EntryHash

DNA = core_dna()
AUTHOR = KeyPair(b"\x01" * 32)
SIGNER = KeyPair(b"\x02" * 32)
OTHER = KeyPair(b"\x03" * 32)
T0 = 1_800_000_000_000_000


class Source:
    """A RecordSource over a dict of actions (what a receiving node happens to know)."""

    def __init__(self, *actions: SignedAction) -> None:
        self.actions = {a.hash: a for a in actions}

    def get_action(self, action_hash: ActionHash) -> SignedAction | None:
        return self.actions.get(action_hash)

    def get_entry(self, entry_hash: EntryHash) -> Entry | None:
        return None

    def get_agent_activity(
        self, author: AgentPubKey, chain_top: ActionHash
    ) -> list[SignedAction] | None:
        """The author's chain from genesis up to ``chain_top``, if every action is known."""
        found = []
        current: ActionHash | None = chain_top
        while current is not None:
            signed = self.actions.get(current)
            if signed is None or signed.action.author != author:
                return None
            found.append(signed)
            current = signed.action.prev
        return found[::-1]


def host(*actions: SignedAction) -> SourceHost:
    return SourceHost(DNA, Source(*actions))


def chain(
    keys: KeyPair, length: int, *, dna_hash: DnaHash = DNA.hash, t: int = T0
) -> list[SignedAction]:
    """A Dna action then ``length - 1`` InitZomesComplete-shaped actions (the fork rule does not
    look at action types)."""
    out = [SignedAction.sign(Dna(keys.agent, t, 0, None, dna_hash), keys)]
    for seq in range(1, length):
        out.append(branch_from(out[-1], keys, t + seq))
    return out


def branch_from(prev: SignedAction, keys: KeyPair, t: int) -> SignedAction:
    action = InitZomesComplete(keys.agent, t, prev.action.seq + 1, prev.hash)
    return SignedAction.sign(action, keys)


def activity(signed: SignedAction) -> DhtOp:
    return DhtOp(OpType.REGISTER_AGENT_ACTIVITY, signed)


def fork_warrant(a: SignedAction, b: SignedAction, *, about: AgentPubKey | None = None) -> Warrant:
    return Warrant.sign(
        SIGNER,
        kind=WarrantKind.FORK,
        dna_hash=DNA.hash,
        author=about or a.action.author,
        evidence=(activity(a), activity(b)),
        reason="fork",
        now_us=T0,
    )


# ------------------------------------------------------------------------------ encoding


def test_a_warrant_round_trips_and_its_hash_is_stable() -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    warrant = fork_warrant(trunk[3], alt)
    data = warrant.to_bytes()
    again = Warrant.from_bytes(data)
    assert again == warrant
    assert again.hash == warrant.hash
    assert warrant.hash.to_text().startswith("uwrnt")
    assert again.signature_valid()
    assert not dataclasses.replace(warrant, reason="other").signature_valid()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"garbage, not CBOR at all",
        b"\x89" + b"\x00" * 8,  # nine zeros
        b"\x80",  # empty list
    ],
)
def test_garbage_is_an_encoding_error(data: bytes) -> None:
    with pytest.raises(EncodingError):
        Warrant.from_bytes(data)


def test_oversized_truncated_and_misshapen_warrants_are_encoding_errors() -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    good = fork_warrant(trunk[3], alt)
    data = good.to_bytes()
    with pytest.raises(EncodingError):
        Warrant.from_bytes(b"\x00" * (MAX_WARRANT_BYTES + 1))
    with pytest.raises(EncodingError):
        Warrant.from_bytes(data[:-1])
    with pytest.raises(EncodingError):
        Warrant.from_bytes(data + b"\x00")
    with pytest.raises(EncodingError):  # a fork needs two ops
        Warrant.sign(
            SIGNER,
            kind=WarrantKind.FORK,
            dna_hash=DNA.hash,
            author=AUTHOR.agent,
            evidence=(activity(alt),),
            reason="",
            now_us=T0,
        )
    with pytest.raises(EncodingError):  # and they must be agent-activity ops
        Warrant.sign(
            SIGNER,
            kind=WarrantKind.FORK,
            dna_hash=DNA.hash,
            author=AUTHOR.agent,
            evidence=(DhtOp(OpType.STORE_RECORD, alt), activity(trunk[3])),
            reason="",
            now_us=T0,
        )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_encoding_error(data: bytes) -> None:
    with pytest.raises(EncodingError):
        Warrant.from_bytes(data)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_flipping_any_byte_is_refused_or_unattributable(position: int, flip: int) -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    data = bytearray(fork_warrant(trunk[3], alt).to_bytes())
    index = position % len(data)
    data[index] ^= flip or 1
    try:
        warrant = Warrant.from_bytes(bytes(data))
    except EncodingError:
        return
    # It decoded: then it no longer checks out as the signer's (or it is no longer a fork and
    # blames the signer, which signed nothing of the kind: that must not happen).
    if warrant.signature_valid():
        pytest.fail("a tampered warrant still verifies")
    with pytest.raises(EncodingError):
        check_warrant(warrant, DNA, host(*trunk, alt))


# ---------------------------------------------------------------------------- fork rule


def test_two_actions_after_one_previous_action_are_a_fork() -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    verdict = check_warrant(fork_warrant(trunk[3], alt), DNA, host())
    assert isinstance(verdict, Upheld)


def test_the_same_action_twice_is_a_false_warrant() -> None:
    trunk = chain(AUTHOR, 4)
    verdict = check_warrant(fork_warrant(trunk[3], trunk[3]), DNA, host(*trunk))
    assert verdict == Refuted("the same action twice is not a fork")


def test_actions_of_another_author_or_forged_ones_are_a_false_warrant() -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    theirs = chain(OTHER, 4)
    assert isinstance(check_warrant(fork_warrant(trunk[3], theirs[3]), DNA, host()), Refuted)
    about_other = fork_warrant(trunk[3], alt, about=OTHER.agent)
    assert isinstance(check_warrant(about_other, DNA, host()), Refuted)
    forged = dataclasses.replace(alt, signature=bytes(64))
    assert isinstance(check_warrant(fork_warrant(trunk[3], forged), DNA, host()), Refuted)


def test_a_warrant_with_a_bad_signature_or_of_another_dna_blames_nobody() -> None:
    trunk = chain(AUTHOR, 4)
    alt = branch_from(trunk[2], AUTHOR, T0 + 99)
    warrant = fork_warrant(trunk[3], alt)
    with pytest.raises(EncodingError):
        check_warrant(dataclasses.replace(warrant, signature=bytes(64)), DNA, host())
    other_dna = core_dna(network_seed="elsewhere")
    with pytest.raises(EncodingError):
        check_warrant(warrant, other_dna, host())


def test_same_sequence_number_on_two_branches_is_a_fork_once_the_split_is_known() -> None:
    trunk = chain(AUTHOR, 6)
    b4 = branch_from(trunk[3], AUTHOR, T0 + 99)
    b5 = branch_from(b4, AUTHOR, T0 + 100)
    warrant = fork_warrant(trunk[5], b5)
    assert isinstance(check_warrant(warrant, DNA, host()), Unresolved)
    assert isinstance(check_warrant(warrant, DNA, host(*trunk, b4)), Upheld)


def test_two_chains_of_different_dnas_are_not_a_fork() -> None:
    here = chain(AUTHOR, 3)
    there = chain(AUTHOR, 3, dna_hash=DnaHash(b"\x07" * 32))
    assert isinstance(check_warrant(fork_warrant(here[0], there[0]), DNA, host()), Refuted)
    warrant = fork_warrant(here[2], there[2])
    assert isinstance(check_warrant(warrant, DNA, host(*here, *there)), Refuted)
    twice_here = chain(AUTHOR, 3, t=T0 + 5)
    assert isinstance(check_warrant(fork_warrant(here[0], twice_here[0]), DNA, host()), Upheld)


# A trunk of TRUNK actions and a branch that leaves it after action SPLIT: every pair of actions
# is a fork exactly when the two differ and sit at the same sequence number on different
# branches, or share their previous action.
TRUNK, SPLIT, BRANCH = 7, 2, 4


@pytest.fixture(scope="module")
def tree() -> tuple[list[SignedAction], list[SignedAction]]:
    trunk = chain(AUTHOR, TRUNK)
    branch = [branch_from(trunk[SPLIT], AUTHOR, T0 + 1000)]
    for i in range(1, BRANCH):
        branch.append(branch_from(branch[-1], AUTHOR, T0 + 1000 + i))
    return trunk, branch


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.tuples(st.booleans(), st.integers(0, 100)),
    st.tuples(st.booleans(), st.integers(0, 100)),
    st.booleans(),
)
def test_fork_rule_property(
    tree: tuple[list[SignedAction], list[SignedAction]],
    x: tuple[bool, int],
    y: tuple[bool, int],
    swap: bool,
) -> None:
    trunk, branch = tree

    def pick(choice: tuple[bool, int]) -> tuple[SignedAction, bool]:
        on_branch, index = choice
        if on_branch:
            return branch[index % len(branch)], True
        return trunk[index % len(trunk)], False

    (a, a_branch), (b, b_branch) = pick(x), pick(y)
    if swap:
        (a, a_branch), (b, b_branch) = (b, b_branch), (a, a_branch)
    verdict = check_warrant(fork_warrant(a, b), DNA, host(*trunk, *branch))
    off_trunk = {s.hash for s in branch}
    diverged = (a.hash in off_trunk) != (b.hash in off_trunk) and min(
        a.action.seq, b.action.seq
    ) > SPLIT
    is_fork = a.hash != b.hash and diverged and a.action.seq == b.action.seq
    assert isinstance(verdict, Upheld) == is_fork, (a.action.seq, b.action.seq, a_branch, b_branch)
    if not is_fork:
        assert isinstance(verdict, Refuted)
    assert (fork_problem(a, b, AUTHOR.agent) is None) == (
        a.hash != b.hash and (a.action.seq == b.action.seq or a.action.prev == b.action.prev)
    )


# ---------------------------------------------------------------------------- invalid ops


def invalid_op_warrant(op: DhtOp) -> Warrant:
    return Warrant.sign(
        SIGNER,
        kind=WarrantKind.INVALID_OP,
        dna_hash=DNA.hash,
        author=op.signed_action.action.author,
        evidence=(op,),
        reason="invalid",
        now_us=T0,
    )


def test_an_invalid_op_warrant_is_true_only_if_the_op_is_invalid() -> None:
    trunk = chain(AUTHOR, 4)
    skipping = InitZomesComplete(AUTHOR.agent, T0 + 50, 3, trunk[1].hash)  # seq 2 expected
    bad = activity(SignedAction.sign(skipping, AUTHOR))
    verdict = check_warrant(invalid_op_warrant(bad), DNA, host(*trunk))
    assert isinstance(verdict, Upheld)
    assert isinstance(check_warrant(invalid_op_warrant(bad), DNA, host()), Unresolved)
    good = activity(trunk[0])
    assert check_warrant(invalid_op_warrant(good), DNA, host()) == Refuted("the op is valid")
    forged = DhtOp(bad.op_type, dataclasses.replace(bad.signed_action, signature=bytes(64)))
    assert isinstance(check_warrant(invalid_op_warrant(forged), DNA, host(*trunk)), Refuted)
    elsewhere = chain(AUTHOR, 1, dna_hash=DnaHash(b"\x07" * 32))[0]
    verdict = check_warrant(invalid_op_warrant(activity(elsewhere)), DNA, host())
    assert isinstance(verdict, Refuted)


def test_an_op_replayed_from_another_dnas_chain_frames_nobody() -> None:
    """One key may have chains in several DNAs and actions do not name theirs: an op valid on
    the author's chain in another DNA is refuted here, and unresolved while its chain is not
    known."""
    elsewhere = chain(AUTHOR, 3, dna_hash=DnaHash(b"\x09" * 32))
    stranger_op = activity(branch_from(elsewhere[-1], AUTHOR, T0 + 90))
    verdict = check_warrant(invalid_op_warrant(stranger_op), DNA, host(*elsewhere))
    assert isinstance(verdict, Refuted) and "not on a chain of this DNA" in verdict.reason
    unknown = check_warrant(invalid_op_warrant(stranger_op), DNA, host())
    assert isinstance(unknown, Unresolved)
