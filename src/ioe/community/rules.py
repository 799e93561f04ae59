"""Automation rules of a community, as data: when a device turns up, what to do with it.

A rule file is JSON — never code, never ``eval``::

    {"rules": [
      {"when": {"owner": "mine", "device_type": ["consumption", "storage"]},
       "then": {"action": "invite", "role": "member", "access": ["see", "control"]}},
      {"when": {"zone": "au/nsw/newtown", "min_reputation": 900},
       "then": {"action": "invite", "role": "observer"}},
      {"when": {"device_type": "generator"},
       "then": {"action": "refuse", "reason": "no generators on this street"}}
    ]}

Conditions (all must hold; a missing one always holds): ``device_type`` (one type or a list),
``zone`` (the device's zone is this zone or inside it), ``min_reputation`` (this node's score
of the device, per mille), ``owner`` (``mine``: enrolled by the community's manager keyset;
``other``). Actions: ``invite`` (with a ``role`` and optional ``access``, checked against the
role), ``refuse`` (with an optional ``reason``, told to an owner whose join it refuses),
``ask`` (leave it to the manager). The first rule that matches decides; when
none does, the manager is asked. Anything else in a file — an unknown key, operator or value —
is refused with a message naming it, and nothing of the file is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import ROLE_ACCESS, Access, Role
from ioe.zones import zone_problem

MAX_RULES = 64
MAX_RULE_FILE_BYTES = 64 * 1024
MAX_REASON = 200
CONDITIONS = ("device_type", "zone", "min_reputation", "owner")
OWNERS = ("mine", "other")


class RuleError(ValueError):
    """A rule file that is not one (the message says where and why)."""


class Action(StrEnum):
    INVITE = "invite"
    REFUSE = "refuse"
    ASK = "ask"


@dataclass(frozen=True, slots=True)
class Candidate:
    """What is known of a device that turned up."""

    device_type: DeviceType
    zone: str
    reputation: int
    mine: bool


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    role: Role | None = None
    access: tuple[Access, ...] = ()
    rule: int | None = None
    """Which rule decided (its index), None when none matched."""
    reason: str = ""
    """A refusal's words for the owner refused (the rule's ``reason``; may be empty)."""

    def refusal(self) -> str:
        """Why a refused device is refused, in the rule's words or naming the rule."""
        if self.reason:
            return self.reason
        where = f"rule {self.rule + 1}" if self.rule is not None else "a rule"
        return f"refused by {where} of the community's rules"


@dataclass(frozen=True, slots=True)
class Rule:
    device_types: frozenset[DeviceType] | None
    zone: str | None
    min_reputation: int | None
    owner: str | None
    decision: Decision

    def matches(self, candidate: Candidate) -> bool:
        if self.device_types is not None and candidate.device_type not in self.device_types:
            return False
        if self.zone is not None and not (
            candidate.zone == self.zone or candidate.zone.startswith(self.zone + "/")
        ):
            return False
        if self.min_reputation is not None and candidate.reputation < self.min_reputation:
            return False
        return self.owner is None or (self.owner == "mine") == candidate.mine


def decide(rules: list[Rule], candidate: Candidate) -> Decision:
    """The first matching rule's decision; ask the manager when none matches."""
    for index, rule in enumerate(rules):
        if rule.matches(candidate):
            d = rule.decision
            return Decision(d.action, d.role, d.access, index, d.reason)
    return Decision(Action.ASK)


def parse_rules(text: str | bytes) -> list[Rule]:
    """The rules of a rule file; :class:`RuleError` naming the first problem."""
    if len(text) > MAX_RULE_FILE_BYTES:
        raise RuleError(f"a rule file is at most {MAX_RULE_FILE_BYTES} bytes")
    try:
        document = json.loads(text)
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of too many digits
        raise RuleError(f"not JSON: {exc}") from None
    except RecursionError:
        raise RuleError("not JSON: it nests too deeply") from None
    if not isinstance(document, dict) or set(document) != {"rules"}:
        raise RuleError('a rule file is {"rules": [...]}')
    items = document["rules"]
    if not isinstance(items, list) or len(items) > MAX_RULES:
        raise RuleError(f"rules is a list of at most {MAX_RULES} rules")
    return [_rule(item, f"rule {i + 1}") for i, item in enumerate(items)]


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict) or not set(item) <= {"when", "then"} or "then" not in item:
        raise RuleError(f"{where}: a rule is {{when?, then}}")
    when = item.get("when", {})
    if not isinstance(when, dict):
        raise RuleError(f"{where}: when is a map of conditions")
    unknown = set(when) - set(CONDITIONS)
    if unknown:
        raise RuleError(
            f"{where}: unknown condition {sorted(unknown)[0]!r} (known: {', '.join(CONDITIONS)})"
        )
    return Rule(
        _device_types(when.get("device_type"), where),
        _zone(when.get("zone"), where),
        _reputation(when.get("min_reputation"), where),
        _owner(when.get("owner"), where),
        _decision(item["then"], where),
    )


def _device_types(value: Any, where: str) -> frozenset[DeviceType] | None:
    if value is None:
        return None
    names = value if isinstance(value, list) else [value]
    try:
        return frozenset(DeviceType(name) for name in names)
    except (ValueError, TypeError):
        known = ", ".join(t.value for t in DeviceType)
        raise RuleError(f"{where}: device_type is one of {known} (or a list)") from None


def _zone(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or zone_problem(value):
        raise RuleError(
            f"{where}: zone: {zone_problem(value) if isinstance(value, str) else 'text'}"
        )
    return value


def _reputation(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= 2000:
        raise RuleError(f"{where}: min_reputation is a whole number of per mille, 0 to 2000")
    return value


def _owner(value: Any, where: str) -> str | None:
    if value is not None and value not in OWNERS:
        raise RuleError(f"{where}: owner is mine or other")
    return value if isinstance(value, str) else None


_DECISION_KEYS = {
    Action.INVITE: {"action", "role", "access"},
    Action.REFUSE: {"action", "reason"},
    Action.ASK: {"action"},
}


def _reason(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON or not value.isprintable():
        raise RuleError(f"{where}: reason is printable text of at most {MAX_REASON} characters")
    return value


def _decision(then: Any, where: str) -> Decision:
    if not isinstance(then, dict) or not isinstance(then.get("action"), str):
        raise RuleError(f"{where}: then is {{action, role?, access?, reason?}}")
    try:
        action = Action(then["action"])
    except ValueError:
        raise RuleError(
            f"{where}: unknown action {then['action']!r} (invite, refuse, ask)"
        ) from None
    extra = set(then) - _DECISION_KEYS[action]
    if extra:
        raise RuleError(f"{where}: {action} takes no {sorted(extra)[0]!r}")
    if action is Action.REFUSE:
        return Decision(action, reason=_reason(then.get("reason", ""), where))
    if action is not Action.INVITE:
        return Decision(action)
    try:
        role = Role(then.get("role", "member"))
        access = tuple(sorted({Access(a) for a in then.get("access", ROLE_ACCESS[role])}))
    except (ValueError, TypeError):
        raise RuleError(
            f"{where}: role is manager|operator|member|observer, access see|control|trade"
        ) from None
    if role is Role.MANAGER:
        raise RuleError(f"{where}: a rule never makes a device a manager")
    extra = set(access) - ROLE_ACCESS[role]
    if extra:
        raise RuleError(f"{where}: a {role} may not be given {', '.join(sorted(extra))}")
    return Decision(action, role, access)
