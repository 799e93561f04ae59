"""``ioe plug report`` in words: what a person reads of the demand app's totals."""

from __future__ import annotations

from typing import Any

from ioe.cli.demand import report_lines


def test_the_report_names_earned_and_paid_apart() -> None:
    """``ioe plug report`` in words: the rule's credits, what reached the wallet (with how many
    off periods are paid) and the balance, each named, from a state written out by hand."""
    state: dict[str, Any] = {
        "report": {
            "intervals": 151, "hours_off": 0.5, "kwh_avoided": 0.6, "cost_avoided": 0.0735,
            "credits": 0.6, "settled_credits": 0.483, "periods_paid": 3, "periods_to_pay": 4,
            "rewarded": True, "symbol": "CPC", "balance": "0.651 CPC",
        },
        "feed": {"money_sign": "$"},
        "wallet": {"problem": None},
    }  # fmt: skip
    assert report_lines(state) == [
        "151 intervals, off 0.50 h, 0.600 kWh avoided, $0.0735 avoided at the market price",
        "credits earned by the rule  0.600 CPC",
        "paid into the wallet        0.483 CPC (3 of 4 off periods paid)",
        "wallet balance              0.651 CPC",
    ]
    state["report"] |= {"rewarded": False, "balance": None, "cost_avoided": 12.5}
    state["wallet"]["problem"] = "app 'demand' was not granted trade (the wallet)"
    assert report_lines(state)[0].endswith("$12.50 avoided at the market price")
    assert report_lines(state)[2:] == [
        "paid into the wallet        nothing: no rewarder pays this plug"
        " (ioe device run ... --demand-rewarder METER_AGENT)",
        "wallet balance              not known (app 'demand' was not granted trade (the wallet))",
    ]
