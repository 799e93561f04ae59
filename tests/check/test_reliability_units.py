"""The reliability suite's pure parts: the crash plan and its judgement of a reopened chain,
and the report's table and JSON contract."""

from __future__ import annotations

import random

import pytest

from ioe.check import crash, payments
from ioe.check.child import ChildFailed
from ioe.check.report import CategoryResult, render_table, to_json


def test_plan_starts_each_series_on_a_fresh_database() -> None:
    kills = crash.plan(7, 3, random.Random(5))
    assert [k.series for k in kills] == [0, 0, 0, 1, 1, 1, 2]
    assert [k.fresh for k in kills] == [True, False, False, True, False, False, True]
    assert all(0 <= k.delay_s <= crash.LATER_KILL_S[1] for k in kills)


def test_a_commit_replaced_by_another_record_counts_as_missing() -> None:
    reported = {3: "a", 4: "b", 5: "c"}
    assert crash.missing(reported, {3: "a", 4: "b", 5: "c", 6: "d"}) == []
    assert crash.missing(reported, {3: "a", 4: "x"}) == [4, 5]


def test_judge_names_a_partial_genesis_and_a_gap() -> None:
    assert crash.judge(crash.Inspection({0: "a", 1: "b"}, 2), {}) == [
        "a partial genesis of 2 record(s)"
    ]
    assert "gap" in " ".join(crash.judge(crash.Inspection({0: "a", 2: "b"}, 2), {}))
    assert crash.judge(crash.Inspection({}, 0), {}) == []


def test_half_a_line_is_not_taken_for_a_commit() -> None:
    assert crash.parse_commits(["ready", "4 uhCkk"]) == {4: "uhCkk"}
    with pytest.raises(ChildFailed, match="not a commit"):
        crash.parse_commits(["ready", "4"])


def test_the_json_keeps_the_contract_keys_and_adds_the_rest() -> None:
    result = CategoryResult("crash", tried=3, survived=2, lost=1, extra={"kills": 3})
    result.fail("kill 2: 1 reported commit(s) missing")
    out = to_json([result])
    assert list(out) == ["categories"]
    figures = out["categories"]["crash"]
    assert (figures["tried"], figures["survived"], figures["lost"]) == (3, 2, 1)
    assert figures["kills"] == 3 and figures["ok"] is False
    assert figures["failures"] == ["kill 2: 1 reported commit(s) missing"]
    with pytest.raises(ValueError, match="reuse"):
        CategoryResult("x", extra={"lost": 0}).to_json()


def test_the_table_has_a_row_per_category_and_lists_failures() -> None:
    good = CategoryResult("hostile", tried=10, survived=10)
    bad = CategoryResult("crash", tried=2, survived=1, lost=4)
    bad.fail("kill 1: gone")
    lines = render_table([good, bad])
    assert lines[0].split() == ["category", "tried", "survived", "lost", "seconds"]
    assert lines[1].split() == ["hostile", "10", "10", "0", "0.0", "ok"]
    assert lines[2].split() == ["crash", "2", "1", "4", "0.0", "FAILED"]
    assert lines[3:] == ["crash:", "  kill 1: gone"]


def test_nothing_tried_is_not_a_pass() -> None:
    assert not CategoryResult("access").ok


def _item(memo: str, delta: int) -> dict[str, object]:
    return {"memo": memo, "delta_mc": delta}


def test_payments_mirror_each_other_or_are_counted_lost() -> None:
    a = [_item("p0", -3), _item("p1", 2)]
    b = [_item("p0", 3), _item("p1", -2)]
    fine = payments.judge([a, b], [-1, 1], {"p0", "p1"})
    assert fine.lost == 0 and fine.problems() == []
    # p1 confirmed but on a's chain only; p2 on b's only, unconfirmed; balances off by 2
    broken = payments.judge([a, [_item("p0", 3), _item("p2", 5)]], [-1, 3], {"p0", "p1"})
    assert broken.missing_confirmed == ("p1",)
    assert broken.one_sided == ("p1", "p2")
    assert broken.lost == 3
    assert len(broken.problems()) == 3


def test_an_unconfirmed_payment_on_neither_chain_is_no_loss() -> None:
    assert payments.judge([[], []], [0, 0], set()).lost == 0
