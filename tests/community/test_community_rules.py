"""Community automation rules as data: decisions worked by hand, clear refusals of anything
that is not a rule, and no other exception for any input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.community.rules import Action, Candidate, RuleError, decide, parse_rules
from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import Access, Role

RULES = {
    "rules": [
        {"when": {"device_type": "generator"}, "then": {"action": "refuse"}},
        {
            "when": {"owner": "mine", "device_type": ["consumption", "storage"]},
            "then": {"action": "invite", "role": "member", "access": ["see", "control"]},
        },
        {
            "when": {"zone": "au/nsw/newtown", "min_reputation": 900},
            "then": {"action": "invite", "role": "observer"},
        },
    ]
}


def candidate(
    kind: DeviceType = DeviceType.CONSUMPTION,
    zone: str = "au/nsw/newtown/king-st",
    reputation: int = 1000,
    mine: bool = False,
) -> Candidate:
    return Candidate(kind, zone, reputation, mine)


def test_the_first_matching_rule_decides() -> None:
    rules = parse_rules(json.dumps(RULES))
    mine = decide(rules, candidate(mine=True))
    assert (mine.action, mine.role, mine.access, mine.rule) == (
        Action.INVITE, Role.MEMBER, (Access.CONTROL, Access.SEE), 1,
    )  # fmt: skip
    # a generator is refused even when it is mine: rule 0 comes first
    assert decide(rules, candidate(DeviceType.GENERATOR, mine=True)).action is Action.REFUSE
    # someone else's device in Newtown with a good name: observer (see only, the role's all)
    stranger = decide(rules, candidate())
    assert (stranger.action, stranger.role, stranger.access, stranger.rule) == (
        Action.INVITE, Role.OBSERVER, (Access.SEE,), 2,
    )  # fmt: skip
    # a poor reputation, or another suburb ("au/nsw/newtownx" is not inside "au/nsw/newtown"): ask
    assert decide(rules, candidate(reputation=899)).action is Action.ASK
    assert decide(rules, candidate(zone="au/nsw/newtownx")).rule is None
    assert decide([], candidate()).action is Action.ASK


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ({"rules": [{"when": {"device_tpye": "generator"}, "then": {"action": "refuse"}}]},
         "unknown condition 'device_tpye'"),
        ({"rules": [{"then": {"action": "delete_everything"}}]}, "unknown action"),
        ({"rules": [{"when": {"zone": "AU"}, "then": {"action": "ask"}}]}, "zone"),
        ({"rules": [{"when": {"min_reputation": "high"}, "then": {"action": "ask"}}]},
         "min_reputation"),
        ({"rules": [{"when": {"min_reputation": True}, "then": {"action": "ask"}}]},
         "min_reputation"),
        ({"rules": [{"then": {"action": "invite", "role": "observer", "access": ["control"]}}]},
         "may not be given control"),
        ({"rules": [{"then": {"action": "invite", "role": "manager"}}]}, "never makes"),
        ({"rules": [{"then": {"action": "refuse", "role": "member"}}]}, "takes no 'role'"),
        ({"rules": [{"then": {"action": "refuse", "reason": 3}}]}, "reason is printable"),
        ({"rules": [{"then": {"action": "refuse", "reason": "x" * 201}}]}, "at most 200"),
        ({"rules": [{"then": {"action": "ask", "reason": "why"}}]}, "takes no 'reason'"),
        ({"rules": [{"when": {"owner": "anyone"}, "then": {"action": "ask"}}]}, "mine or other"),
        ({"rules": [{"when": {"device_type": "toaster"}, "then": {"action": "ask"}}]},
         "device_type is one of"),
        ({"rules": [{"when": {"x": 1}}]}, "a rule is"),
        ({"rule": []}, "a rule file is"),
        ({"rules": [{"then": {"action": "ask"}}] * 65}, "at most 64"),
    ],
)  # fmt: skip
def test_what_is_not_a_rule_is_refused_by_name(rules: object, reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        parse_rules(json.dumps(rules))


def test_oversized_and_garbled_files_are_refused() -> None:
    with pytest.raises(RuleError, match="at most"):
        parse_rules(b" " * (64 * 1024 + 1))
    with pytest.raises(RuleError, match="not JSON"):
        parse_rules(b"\xff{rules")
    with pytest.raises(RuleError, match="not JSON"):
        parse_rules("__import__('os').system('true')")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
rule_like = st.fixed_dictionaries(
    {"rules": st.lists(st.fixed_dictionaries({"when": st.dictionaries(
        st.sampled_from(["device_type", "zone", "min_reputation", "owner", "other"]), json_values,
        max_size=3), "then": st.dictionaries(st.sampled_from(["action", "role", "access"]),
        json_values | st.sampled_from(["invite", "refuse", "ask", "member", "observer"]),
        max_size=3)}), max_size=3)}
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(json_values | rule_like)
def test_any_json_is_rules_or_a_rule_error(document: object) -> None:
    try:
        rules = parse_rules(json.dumps(document))
    except RuleError:
        return
    decide(rules, candidate())  # whatever parses can be evaluated
