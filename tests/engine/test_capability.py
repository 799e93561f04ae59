"""Capability grants: who other than a cell's own agent may call which functions."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.engine.capability import (
    CapAccess,
    CapGrant,
    grant_problem,
    live_grants,
    secret_hash,
)
from ioe.engine.cell import Cell
from ioe.errors import Unauthorized, ValidationError, ZomeCallError
from ioe.hashing import AgentPubKey
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for

DNA = core_dna()
T0 = 1_800_000_000_000_000
OWNER = KeyPair(b"\x01" * 32)
ALICE = KeyPair(b"\x02" * 32).agent
BOB = KeyPair(b"\x03" * 32).agent


def new_cell() -> Cell:
    cell = Cell(DNA, OWNER, MemoryDatabase().chain(DNA.hash, OWNER.agent))
    cell.genesis(membrane_proof_for(cell.keys), now_us=T0)
    return cell


def grant(cell: Cell, access: str, functions: list[str], **extra: object) -> object:
    return cell.call(
        "capability",
        "grant",
        {"tag": "test", "access": access, "functions": functions, **extra},
        now_us=T0 + 1,
    )


def profile_call(cell: Cell, caller: AgentPubKey, secret: bytes | None = None) -> object:
    return cell.call(
        "profile",
        "my_profile",
        None,
        now_us=T0 + 2,
        provenance=caller,
        cap_secret=secret,
    )


def test_own_agent_needs_no_grant_but_others_do() -> None:
    cell = new_cell()
    assert profile_call(cell, OWNER.agent) is None
    with pytest.raises(Unauthorized, match="no capability grant"):
        profile_call(cell, ALICE)


def test_unrestricted_grant_lets_anyone_call_only_the_functions_named() -> None:
    cell = new_cell()
    grant(cell, "unrestricted", ["profile.my_profile"])
    assert profile_call(cell, ALICE) is None
    with pytest.raises(Unauthorized):
        cell.call(
            "profile", "set_profile", {"name": "x", "zone": "au"}, now_us=T0 + 3, provenance=ALICE
        )


def test_transferable_grant_needs_the_secret_from_anyone() -> None:
    cell = new_cell()
    secret = secrets.token_bytes(32)
    grant(cell, "transferable", ["profile.*"], secret=secret)
    assert profile_call(cell, BOB, secret) is None
    with pytest.raises(Unauthorized, match="needs a capability secret"):
        profile_call(cell, BOB)
    with pytest.raises(Unauthorized, match="matches"):
        profile_call(cell, BOB, secrets.token_bytes(32))


def test_assigned_grant_needs_both_the_agent_and_the_secret() -> None:
    cell = new_cell()
    secret = secrets.token_bytes(32)
    grant(cell, "assigned", ["profile.my_profile"], secret=secret, assignees=[ALICE])
    assert profile_call(cell, ALICE, secret) is None
    with pytest.raises(Unauthorized):
        profile_call(cell, BOB, secret)  # the secret alone is not enough


def test_revoking_stops_the_grant_at_once() -> None:
    cell = new_cell()
    secret = secrets.token_bytes(32)
    action = grant(cell, "assigned", ["profile.my_profile"], secret=secret, assignees=[ALICE])
    assert profile_call(cell, ALICE, secret) is None
    cell.call("capability", "revoke", action, now_us=T0 + 5)
    assert live_grants(cell) == {}
    with pytest.raises(Unauthorized):
        profile_call(cell, ALICE, secret)
    with pytest.raises(ZomeCallError, match="not a live grant"):
        cell.call("capability", "revoke", action, now_us=T0 + 6)


def test_wildcards_never_open_the_capability_zome_itself() -> None:
    cell = new_cell()
    grant(cell, "unrestricted", ["*"])
    assert profile_call(cell, ALICE) is None
    with pytest.raises(Unauthorized):
        cell.call(
            "capability",
            "grant",
            {"tag": "mine", "access": "unrestricted", "functions": ["*"]},
            now_us=T0 + 3,
            provenance=ALICE,
        )


def test_grants_are_private_entries() -> None:
    cell = new_cell()
    action = grant(cell, "unrestricted", ["profile.my_profile"])
    record = cell.get(action)  # type: ignore[arg-type]
    assert record is not None and record.is_private()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"access": "unrestricted", "functions": []}, "1 to 64 functions"),
        ({"access": "unrestricted", "functions": ["Profile.x"]}, "is not zome.function"),
        ({"access": "transferable", "functions": ["a.b"]}, "secret of 32 bytes"),
        ({"access": "assigned", "functions": ["a.b"], "secret": b"s" * 32}, "1 to 256 agents"),
        ({"access": "sometimes", "functions": ["a.b"]}, "access must be"),
    ],
)
def test_malformed_grants_are_refused_and_nothing_is_written(
    payload: dict[str, object], message: str
) -> None:
    cell = new_cell()
    head = cell.head()
    with pytest.raises((ZomeCallError, ValidationError), match=message):
        cell.call("capability", "grant", {"tag": "t", **payload}, now_us=T0 + 1)
    assert cell.head() == head


AGENTS = [KeyPair(bytes([n]) * 32).agent for n in range(10, 14)]


def test_a_grant_keeps_only_a_hash_of_its_secret() -> None:
    cell = new_cell()
    secret = bytes([7]) * 32
    grant(cell, "transferable", ["profile.*"], secret=secret)
    [kept] = live_grants(cell).values()
    assert kept.secret_hash != secret and len(kept.secret_hash or b"") == 32
    stored = b"".join(r.entry.payload for r in cell.query() if r.entry is not None)
    assert secret not in stored  # not in any entry on the chain
    assert kept.allows(ALICE, secret) and not kept.allows(ALICE, bytes([8]) * 32)


SECRETS = [bytes([n]) * 32 for n in range(4)]
SECRET_OF = {secret_hash(s): s for s in SECRETS}


@st.composite
def grants(draw: st.DrawFn) -> CapGrant:
    access = draw(st.sampled_from(CapAccess))
    functions = tuple(
        draw(st.lists(st.sampled_from(["z.f", "z.g", "z.*", "*", "y.f"]), min_size=1, max_size=3))
    )
    if access is CapAccess.UNRESTRICTED:
        return CapGrant("t", access, functions)
    secret = draw(st.sampled_from(SECRETS))
    if access is CapAccess.TRANSFERABLE:
        return CapGrant("t", access, functions, secret_hash(secret))
    assignees = tuple(draw(st.lists(st.sampled_from(AGENTS), min_size=1, max_size=3, unique=True)))
    return CapGrant("t", access, functions, secret_hash(secret), assignees)


@settings(max_examples=300, deadline=None)
@given(
    grant=grants(),
    caller=st.sampled_from(AGENTS),
    secret=st.none() | st.sampled_from(SECRETS),
    function=st.sampled_from([("z", "f"), ("z", "g"), ("y", "f"), ("y", "g")]),
)
def test_a_grant_allows_exactly_what_its_kind_says(
    grant: CapGrant, caller: AgentPubKey, secret: bytes | None, function: tuple[str, str]
) -> None:
    assert grant_problem(grant) is None
    zome, fn = function
    named = {f"{zome}.{fn}", f"{zome}.*", "*"} & set(grant.functions)
    if grant.access is CapAccess.UNRESTRICTED:
        expected = True
    elif grant.access is CapAccess.TRANSFERABLE:
        expected = secret == SECRET_OF[grant.secret_hash]  # type: ignore[index]
    else:
        expected = secret == SECRET_OF[grant.secret_hash] and caller in grant.assignees  # type: ignore[index]
    assert (bool(named) and expected) == (grant.covers(zome, fn) and grant.allows(caller, secret))
