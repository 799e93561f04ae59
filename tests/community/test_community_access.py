"""Which grants a member device should hold (``ioe.community.access.desired_grants``), worked
by hand: a level opens device functions to exactly the members holding that level."""

from __future__ import annotations

import hashlib

from ioe.community.access import FUNCTIONS, desired_grants
from ioe.community.grant_secret import community_secret
from ioe.crypto.keys import KeyPair
from ioe.hashing import ExternalHash
from ioe.zomes.community.entries import Access, CommunityMembership, MemberKind, Role

PLUG = KeyPair(bytes([1]) * 32).agent
OPERATOR = KeyPair(bytes([2]) * 32).agent
WATCHER = KeyPair(bytes([3]) * 32).agent
FOUNDER = KeyPair(bytes([4]) * 32).agent
KING_ST = ExternalHash.of(b"king st")
POOL = ExternalHash.of(b"pool pumps")


def member(
    agent: object, role: Role, *access: Access, community: ExternalHash = KING_ST
) -> CommunityMembership:
    kind = MemberKind.DEVICE if agent == PLUG else MemberKind.PERSON
    return CommunityMembership(1, community, agent, kind, role, tuple(sorted(access)), 0)  # type: ignore[arg-type]


def test_see_and_control_go_to_the_members_holding_them_and_the_founder() -> None:
    plug = member(PLUG, Role.MEMBER, Access.SEE, Access.CONTROL)
    everyone = [
        plug,
        member(OPERATOR, Role.OPERATOR, Access.SEE, Access.CONTROL),
        member(WATCHER, Role.OBSERVER, Access.SEE),
    ]
    wanted = desired_grants(PLUG, [plug], {KING_ST: everyone}, {KING_ST: FOUNDER})
    by_functions = {w.functions: set(w.assignees) for w in wanted.values()}
    assert by_functions == {
        ("device.describe", "device.read"): {OPERATOR, WATCHER, FOUNDER},
        ("device.write",): {OPERATOR, FOUNDER},  # the observer cannot switch it
    }
    expected_secret = hashlib.blake2b(
        bytes(KING_ST) + bytes(PLUG), digest_size=32, person=b"ioe-community"
    ).digest()
    assert {w.secret for w in wanted.values()} == {expected_secret}
    assert community_secret(KING_ST, PLUG) == expected_secret
    assert all(len(tag) <= 64 for tag in wanted)  # a grant's tag limit


def test_a_level_the_device_did_not_give_opens_nothing() -> None:
    plug = member(PLUG, Role.OBSERVER, Access.SEE)
    operator = member(OPERATOR, Role.OPERATOR, Access.SEE, Access.CONTROL)
    wanted = desired_grants(PLUG, [plug], {KING_ST: [plug, operator]}, {})
    assert [w.functions for w in wanted.values()] == [FUNCTIONS[Access.SEE]]
    assert [w.assignees for w in wanted.values()] == [(OPERATOR,)]


def test_trade_opens_no_device_function_and_no_holders_no_grant() -> None:
    plug = member(PLUG, Role.MEMBER, Access.TRADE)
    alone = member(PLUG, Role.MEMBER, Access.SEE, community=POOL)
    wanted = desired_grants(PLUG, [plug, alone], {KING_ST: [plug], POOL: [alone]}, {})
    assert wanted == {}


def test_each_community_gets_its_own_grants_and_secret() -> None:
    a = member(PLUG, Role.MEMBER, Access.CONTROL)
    b = member(PLUG, Role.MEMBER, Access.CONTROL, community=POOL)
    wanted = desired_grants(
        PLUG, [a, b], {KING_ST: [a], POOL: [b]}, {KING_ST: FOUNDER, POOL: OPERATOR}
    )
    assert len(wanted) == 2
    assert {w.secret for w in wanted.values()} == {
        community_secret(KING_ST, PLUG),
        community_secret(POOL, PLUG),
    }
    assert {w.assignees for w in wanted.values()} == {(FOUNDER,), (OPERATOR,)}
