"""``ioe wallet``: arguments and output (the node's answers stubbed; the real path is
tests/net/test_net_wallet.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ioe.cli import wallet
from ioe.cli.main import build_parser, main

AGENT = "uhCAkexampleagent"


def _stub(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Any]) -> list[Any]:
    calls: list[Any] = []

    def call_api(data_dir: Path, method: str, path: str, body: Any = None, **_: Any) -> Any:
        calls.append((method, path, body))
        return answers[path]

    monkeypatch.setattr(wallet, "call_api", call_api)
    return calls


def test_pay_sends_milli_credits_and_prints_the_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paid = {"amount_mc": 1500, "unit": "CPC", "to": AGENT, "kind": "fee", "balance": "-1.500 CPC"}
    calls = _stub(monkeypatch, {"/v1/wallet/pay": {**paid, "hash": "uhCkk"}})
    argv = ["wallet", "pay", "--data-dir", str(tmp_path), AGENT, "1500", "--kind", "fee"]
    assert main(argv) == 0
    assert calls[0][2]["amount_mc"] == 1500 and calls[0][2]["kind"] == "fee"
    assert "paid 1.500 CPC to" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["amount_mc"] == 1500


def test_balance_and_history_show_the_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    item = {
        "delta_mc": 2500,
        "kind": "trade",
        "counterparty": AGENT,
        "balance_mc": 2500,
        "memo": "",
        "provenance": {"energy_wh": 2000, "source": "solar", "clean": True},
    }
    _stub(
        monkeypatch,
        {
            "/v1/wallet": {
                "balance_mc": 2500,
                "credit_limit_mc": 100000,
                "available_mc": 102500,
                "unit": "CPC",
            },
            "/v1/wallet/history": {"unit": "CPC", "items": [item]},
        },
    )
    assert main(["wallet", "balance", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2.500 CPC" in out and "102.500 CPC" in out
    assert main(["wallet", "history", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "+2.500 CPC" in out and "2000 Wh solar clean" in out


@pytest.mark.parametrize("amount", ["0", "-5", "1.5", "ten"])
def test_pay_takes_a_positive_integer_of_milli_credits(amount: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["wallet", "pay", AGENT, amount])


def test_bench_currency_is_a_bench_command() -> None:
    args = build_parser().parse_args(["bench", "currency", "--transfers", "3"])
    assert args.transfers == 3 and args.handler is wallet.cmd_bench_currency
