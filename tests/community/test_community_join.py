"""Joins between owners, the pure parts worked by hand: the join request and its refusals
(garbled, oversized, stale, forged, signed by someone who does not answer for the member, for a
community not managed here), what the rules' invitation gives, and when an owner's node signs a
membership without asking its human (a join it asked for; a lower role of one it holds)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.community.join import (
    ID_BYTES,
    JOIN_ENVELOPE,
    JOIN_KIND,
    MAX_JOIN_BYTES,
    ROLE_CHANGE_GRACE_US,
    Held,
    JoinAsk,
    Joined,
    JoinRefused,
    PendingJoin,
    accepted_terms,
    auto_approval,
    candidate_for,
    held_of,
    join_message,
    join_problem,
    joined_as,
    membership_in,
    offered,
    open_join,
    read_answer,
)
from ioe.community.joining import JoinDesk
from ioe.community.rules import Action, decide, parse_rules
from ioe.conductor import owner_keyset
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import decode, encode
from ioe.engine.cell import Cell
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.service.keyset_signing import (
    KeysetSigning,
    SigningRequest,
    request_message,
    summary,
)
from ioe.net.interface import PeerId
from ioe.services.signals import SignalHub
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import device_certificate, owner_membership_proof
from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import (
    MEMBERSHIP_CONTEXT,
    Access,
    CommunityMembership,
    MemberKind,
    Role,
)

NOW = 1_700_000_000_000_000
BOB = OwnerAccount.from_root_seed(bytes([31]) * 32)  # owns the plug, asks to join
MALLORY = KeyPair(bytes([33]) * 32)  # anyone else
PLUG = device_agent_key(BOB.device_seed(1), 0).agent
KING_ST = ExternalHash.of(b"king st")
ELSEWHERE = ExternalHash.of(b"elsewhere")
ALL = (Access.CONTROL, Access.SEE, Access.TRADE)


def ask(**changes: object) -> JoinAsk:
    base = JoinAsk(bytes(range(ID_BYTES)), BOB.agent_key().agent, KING_ST, PLUG, None, ALL, NOW)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def plug_joined(owner: AgentPubKey | None = None) -> Joined:
    return Joined(
        ActionHash.of(b"plug joined"),
        MemberKind.DEVICE,
        owner_keyset(BOB),
        owner or BOB.agent_key().agent,
        DeviceType.CONSUMPTION,
        "au/nsw/newtown",
    )


def body_of(message: bytes) -> tuple[dict[str, object], dict[str, object]]:
    outer = decode(message)
    assert isinstance(outer, dict) and isinstance(outer["body"], bytes)
    body = decode(outer["body"])
    assert isinstance(body, dict)
    return outer, body


# ------------------------------------------------------------------------------ the message


def test_a_join_request_round_trips() -> None:
    sent = ask(role=Role.OBSERVER, allowed=(Access.SEE,))
    assert open_join(join_message(sent, BOB.agent_key()), NOW + 1) == sent
    assert len(join_message(sent, BOB.agent_key())) < MAX_JOIN_BYTES // 4
    with pytest.raises(ValueError, match="signed by its requester"):
        join_message(sent, MALLORY)


def test_garbled_oversized_stale_and_forged_requests_are_refused() -> None:
    good = join_message(ask(), BOB.agent_key())
    with pytest.raises(JoinRefused, match="at most 2048 bytes"):
        open_join(good + b"\x00" * MAX_JOIN_BYTES, NOW)
    with pytest.raises(JoinRefused, match="malformed"):
        open_join(b"\xff\x00 not cbor", NOW)
    with pytest.raises(JoinRefused, match="stale"):
        open_join(good, NOW + 6 * 60_000_000)
    with pytest.raises(JoinRefused, match="stale"):
        open_join(good, NOW - 6 * 60_000_000)  # from the future
    outer, body = body_of(good)
    swapped = encode({**outer, "body": encode({**body, "member": bytes(MALLORY.agent)})})
    with pytest.raises(JoinRefused, match="forged"):
        open_join(swapped, NOW)
    request = SigningRequest(
        bytes(16), BOB.agent_key().agent, MEMBERSHIP_CONTEXT, b"x", KING_ST, (PLUG,), 1, "", NOW
    )
    with pytest.raises(JoinRefused, match="community join request"):
        open_join(request_message(request, BOB.agent_key()), NOW)  # another protocol's message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": b"short"}, "16 bytes"),
        ({"role": "king"}, "unknown role"),
        ({"role": "manager"}, "as its manager"),
        ({"access": ["see", "sell"]}, "unknown access level"),
        ({"access": ["see", "see"]}, "each once"),
        ({"access": []}, "1 to 3"),
        ({"access": [["see"]]}, "are words"),
        ({"community": b"\x01" * 5}, "malformed"),
        ({"member": "not bytes"}, "'member'"),
        ({"time_us": "now"}, "'time_us'"),
        ({"extra": 1}, "a join request is"),
    ],
)
def test_malformed_fields_are_refused_by_name(change: dict[str, object], reason: str) -> None:
    _, body = body_of(join_message(ask(), BOB.agent_key()))
    body = {k: v for k, v in body.items() if k != "from"}
    forged = JOIN_ENVELOPE.seal(BOB.agent_key(), {**body, **change}, JOIN_KIND)
    with pytest.raises(JoinRefused, match=reason):
        open_join(forged, NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_a_join_request_or_a_refusal(data: bytes) -> None:
    with pytest.raises(JoinRefused):
        open_join(data, NOW)


def test_an_answer_that_is_not_one_is_ignored() -> None:
    assert read_answer({"state": "member", "reason": "", "role": "operator", "access": []})
    assert read_answer({"state": "owned", "reason": "", "role": "", "access": []}) is None
    assert read_answer({"state": "member", "reason": 3, "role": "", "access": []}) is None
    assert read_answer(["member"]) is None
    long = read_answer({"state": "refused", "reason": "x\n" * 500, "role": "", "access": []})
    assert long is not None and len(long.reason) == 300 and "\n" not in long.reason


# -------------------------------------------------------------------------- the manager's checks


def test_only_the_members_owner_asks_for_a_community_managed_here() -> None:
    managed = {KING_ST}
    assert join_problem(ask(), managed, plug_joined()) is None
    assert "no community" in str(join_problem(ask(community=ELSEWHERE), managed, plug_joined()))
    assert "not a member of this network" in str(join_problem(ask(), managed, None))
    stranger = ask(requester=MALLORY.agent)
    assert "not the owner agent of" in str(join_problem(stranger, managed, plug_joined()))
    person = Joined(ActionHash.of(b"bob"), MemberKind.PERSON, owner_keyset(BOB), PLUG)
    assert "not the person" in str(join_problem(ask(), managed, person))


def test_where_a_member_joined_names_its_owner_type_and_zone() -> None:
    dna = core_dna()
    db = MemoryDatabase()
    keys = device_agent_key(BOB.device_seed(1), 0)
    cert = device_certificate(BOB, 1, now_us=NOW)
    plug = Cell(dna, keys, db.chain(dna.hash, keys.agent))
    plug.genesis(cert.to_bytes(), now_us=NOW)
    joined = joined_as([r.signed_action for r in plug.query()], plug.agent)
    assert joined is not None
    assert (joined.kind, joined.owner, joined.device_type, joined.zone) == (
        MemberKind.DEVICE, BOB.agent_key().agent, DeviceType.CONSUMPTION, "unassigned",
    )  # fmt: skip
    assert joined.keyset.id == owner_keyset(BOB).id
    bob = Cell(dna, BOB.agent_key(), db.chain(dna.hash, BOB.agent_key().agent))
    bob.genesis(owner_membership_proof(BOB, now_us=NOW), now_us=NOW)
    person = joined_as([r.signed_action for r in bob.query()], bob.agent)
    assert person is not None and person.kind is MemberKind.PERSON and person.owner == bob.agent
    assert candidate_for(person, 1000) is None  # rules judge devices; a person is asked about
    assert joined_as([r.signed_action for r in bob.query()], plug.agent) is None


RULES = parse_rules(
    json.dumps(
        {
            "rules": [
                {"when": {"device_type": "generator"},
                 "then": {"action": "refuse", "reason": "no generators here"}},
                {"when": {"device_type": "consumption"},
                 "then": {"action": "invite", "role": "operator"}},
                {"when": {"device_type": "storage"}, "then": {"action": "refuse"}},
            ]
        }
    )
)  # fmt: skip


def test_the_rules_judge_another_owners_device() -> None:
    candidate = candidate_for(plug_joined(), 1000)
    assert candidate is not None and candidate.mine is False
    decision = decide(RULES, candidate)
    assert decision.action is Action.INVITE
    # the rule's role, within what the owner allows
    assert offered(decision, ask()) == (Role.OPERATOR, (Access.CONTROL, Access.SEE))
    assert offered(decision, ask(allowed=(Access.SEE,))) == (Role.OPERATOR, (Access.SEE,))
    # a role asked for is given when it is within the rule's
    assert offered(decision, ask(role=Role.OBSERVER)) == (Role.OBSERVER, (Access.SEE,))
    assert offered(decision, ask(role=Role.MEMBER))[0] is Role.OPERATOR  # member may trade
    assert "allows only trade" in str(offered(decision, ask(allowed=(Access.TRADE,))))
    generator = dataclasses.replace(candidate, device_type=DeviceType.GENERATOR)
    assert decide(RULES, generator).refusal() == "no generators here"
    storage = dataclasses.replace(candidate, device_type=DeviceType.STORAGE)
    assert decide(RULES, storage).refusal() == "refused by rule 3 of the community's rules"


def test_a_manager_accepting_gives_the_roles_levels_the_owner_allows() -> None:
    assert accepted_terms(Role.MEMBER, (Access.SEE, Access.TRADE)) == (
        Role.MEMBER, (Access.SEE, Access.TRADE),
    )  # fmt: skip
    assert accepted_terms(Role.OBSERVER, ALL) == (Role.OBSERVER, (Access.SEE,))
    assert "allows nothing" in str(accepted_terms(Role.OBSERVER, (Access.TRADE,)))
    assert "manager" in str(accepted_terms(Role.MANAGER, ALL))


# ------------------------------------------------------------------------------ signing unasked


def membership(
    *access: Access, role: Role = Role.OPERATOR, community: ExternalHash = KING_ST
) -> CommunityMembership:
    return CommunityMembership(
        1, community, PLUG, MemberKind.DEVICE, role, tuple(sorted(access)), NOW
    )


def test_a_signing_request_is_read_as_a_membership_only_when_it_is_one() -> None:
    m = membership(Access.SEE, Access.CONTROL)
    assert membership_in(m.message()) == m
    signed = m.signed_as_owner(MALLORY)
    assert membership_in(signed.to_bytes()) is None  # signatures are no part of a body
    assert membership_in(b"\xa0") is None
    assert membership_in(encode({"role": "operator"})) is None
    assert membership_in(b"\xff" * 10) is None


def test_a_join_asked_here_is_signed_once_within_what_it_allows() -> None:
    join = PendingJoin(ask(allowed=(Access.CONTROL, Access.SEE)), MemberKind.DEVICE, "K", NOW)
    assert auto_approval(membership(Access.SEE, Access.CONTROL), [join], [], NOW) is join
    assert (
        auto_approval(membership(Access.SEE, Access.TRADE, role=Role.MEMBER), [join], [], NOW)
        is None
    )
    assert auto_approval(membership(Access.SEE, community=ELSEWHERE), [join], [], NOW) is None
    join.approved = True
    assert auto_approval(membership(Access.SEE), [join], [], NOW) is None  # once only
    refused = PendingJoin(ask(), MemberKind.DEVICE, "K", NOW, state="refused")
    assert auto_approval(membership(Access.SEE), [refused], [], NOW) is None


def test_a_lower_role_of_a_membership_held_is_signed_unless_the_owner_ended_it() -> None:
    manager, owner = KeyPair(bytes([41]) * 32).agent, BOB.agent_key().agent
    was = membership(Access.SEE, Access.CONTROL)
    live = held_of(was, (manager, NOW), [])
    assert live is not None and live.live
    observer = membership(Access.SEE, role=Role.OBSERVER)
    assert auto_approval(observer, [], [live], NOW) is live
    assert (
        auto_approval(membership(Access.SEE, Access.TRADE, role=Role.MEMBER), [], [live], NOW)
        is None
    )
    lowered = held_of(was, (manager, NOW), [(manager, NOW + 5)])  # the manager revoked it
    assert lowered is not None and not lowered.live and lowered.since_us == NOW + 5
    assert auto_approval(observer, [], [lowered], NOW + 10) is lowered
    assert auto_approval(observer, [], [lowered], NOW + 6 + ROLE_CHANGE_GRACE_US) is None
    assert held_of(was, (manager, NOW), [(owner, NOW + 5)]) is None  # the owner left
    assert held_of(was, (manager, NOW), [(PLUG, NOW + 5)]) is None  # the member left
    assert Held.bounds(live, membership(Access.SEE, community=ELSEWHERE), NOW) is False


def test_keyset_signing_asks_the_hook_once_and_signs_what_it_approves() -> None:
    signals = SignalHub()
    conductor = SimpleNamespace(account=BOB, clock=lambda: NOW)
    host: Any = SimpleNamespace(conductor=conductor, signals=signals)  # what receive uses
    signing = KeysetSigning(host)
    peer = PeerId("a peer")
    asked: list[SigningRequest] = []

    def approve_operators(request: SigningRequest) -> bool:
        asked.append(request)
        found = membership_in(request.document)
        return found is not None and found.role is Role.OPERATOR

    signing.auto_approve = approve_operators
    keyset = owner_keyset(BOB)
    authz = BOB.authorization_key().agent

    def request(m: CommunityMembership, n: int) -> bytes:
        sent = SigningRequest(
            bytes([n]) * 16, MALLORY.agent, MEMBERSHIP_CONTEXT, m.message(), keyset.id,
            (authz,), 1, "a membership", NOW,
        )  # fmt: skip
        return request_message(sent, MALLORY)

    operator = membership(Access.SEE, Access.CONTROL)
    answer = signing.receive(peer, request(operator, 1))
    assert answer["state"] == "approved" and isinstance(answer["signature"], bytes)
    member = membership(Access.SEE, role=Role.MEMBER)
    assert signing.receive(peer, request(member, 2))["state"] == "pending"
    assert signing.receive(peer, request(member, 2))["state"] == "pending"  # known: not asked
    assert len(asked) == 2
    shown = summary(MEMBERSHIP_CONTEXT, member.message())
    assert shown["kind"] == "community membership"
    assert (shown["role"], shown["access"], shown["member_kind"]) == ("member", ["see"], "device")
    assert (shown["member"], shown["community"]) == (PLUG.to_text(), KING_ST.to_text())


# ------------------------------------------------------------------------------ the manager's desk


class _Dht:
    def __init__(self, activity: dict[AgentPubKey, list[Any]]) -> None:
        self.activity = activity

    async def get_agent_activity(self, agent: AgentPubKey) -> list[Any]:
        return self.activity.get(agent, [])


class _Communities:
    """What the desk uses of the community service, for a manager founding King St only."""

    def __init__(self, activity: dict[AgentPubKey, list[Any]]) -> None:
        dht = _Dht(activity)
        self.host = SimpleNamespace(
            conductor=SimpleNamespace(clock=lambda: NOW),
            core_cell=lambda: None,
            dht_for=lambda cell: dht,
        )
        self.touched: list[str] = []

    def founded(self) -> list[Any]:
        return [SimpleNamespace(charter=SimpleNamespace(id=KING_ST))]

    def alert(self, alert: dict[str, Any]) -> None:
        self.touched.append("alert")

    def spawn(self, work: Any, name: str) -> None:
        work.close()
        self.touched.append("spawn")


def test_a_refused_join_request_leaves_nothing_behind() -> None:
    dna = core_dna()
    keys = device_agent_key(BOB.device_seed(1), 0)
    plug = Cell(dna, keys, MemoryDatabase().chain(dna.hash, keys.agent))
    plug.genesis(device_certificate(BOB, 1, now_us=NOW).to_bytes(), now_us=NOW)
    communities: Any = _Communities({PLUG: [r.signed_action for r in plug.query()]})
    desk = JoinDesk(communities)
    stranger = KeyPair(bytes([34]) * 32)
    for data, reason in (
        (b"\x00" * 5000, "at most"),
        (b"garbage", "malformed"),
        (join_message(ask(community=ELSEWHERE), BOB.agent_key()), "no community"),
        (join_message(ask(member=MALLORY.agent), BOB.agent_key()), "not a member of this"),
        (join_message(ask(requester=stranger.agent), stranger), "not the owner agent"),
        (join_message(ask(time_us=NOW - 10 * 60_000_000), BOB.agent_key()), "stale"),
    ):
        with pytest.raises(JoinRefused, match=reason):
            asyncio.run(desk.receive(data))
    assert desk.requests == {} and communities.touched == []
