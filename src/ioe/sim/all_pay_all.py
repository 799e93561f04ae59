"""``ioe sim all-pay-all``: N agents each pay every other agent once (N×(N−1) payments).

Every payment is a real countersigned transfer of the currency zome, committed on the payer's
and the receiver's chains. Each agent has its own data directory, ``DIR/agent-00`` ..., so each
chain can be verified afterwards (``ioe chain verify --data-dir DIR/agent-00``).

Two modes:

- **In one process** (:func:`run_in_process`): every agent is a real conductor (SQLite
  database, keys, core cell) in this process, and a payment is the payer's
  ``currency.prepare_payment`` against the receiver's ``ledger_head``, then
  ``ioe.sim.in_process.commit_in_process`` (the receiver's policy, both signatures, both
  commits with full validation). No network: this is the ledger's own cost.
- **In separate processes** (:func:`run_processes`): one ``ioe node run`` per agent on
  loopback, over libp2p, and each payment goes through the payer's ``POST /v1/wallet/pay``
  (head read, transfer built and checked, countersigning session judged by the receiver's
  node). A payer makes one payment at a time; all payers run in parallel. The wallet already
  retries a receiver whose head moved or whose chain is in another session; on top of that a
  payment that still fails is retried here (bounded), after checking on the payer's chain that
  it did not land, so nothing is ever paid twice.

The order is a round robin: in round r (1..N−1) agent i pays agent (i + r) mod N. Everyone pays
and receives once per round, so balances stay small.

The outcome is read back from the chains themselves (:func:`tally`): a payment is
**completed** when it is on both chains, **pending** when it is on one only (a session not yet
finished on the other side), and ``balance_sum`` adds every agent's balance as its own chain
computes it. Everyone paid everyone the same amount, so every balance ends at 0.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioe.conductor import Conductor, system_clock_us
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.engine.countersigning import SESSION_ID_BYTES
from ioe.errors import ChainError, ValidationError, ZomeCallError
from ioe.node.client import ApiError
from ioe.node.nodefile import NoRunningNode
from ioe.sim.in_process import commit_in_process
from ioe.sim.processes import (
    KEY_FILE,
    AgentProcess,
    SimError,
    agent_dirs,
    init_agent,
    members,
    stop_all,
    wait_until,
)
from ioe.zomes.currency import api as currency
from ioe.zomes.currency.entries import Transfer

DEFAULT_AMOUNT_MC = 1000
MAX_AGENTS_IN_PROCESS = 200
MAX_AGENTS_PROCESSES = 32
MAX_PARALLEL_PAYERS = 16
PAY_TIMEOUT_S = 10.0
PAY_ATTEMPTS = 12
RETRY_BASE_S = 0.02
RETRY_MAX_S = 0.3
SETTLE_TIMEOUT_S = 30.0
MAX_ERRORS_KEPT = 8
MEMO_PREFIX = "all-pay-all"
DEFINITIVE = ("credit limit", "cannot pay itself", "blocked", "not an agent key")
"""Refusals that no retry can cure."""


# ------------------------------------------------------------------------------- pure parts


def schedule(agents: int) -> list[tuple[int, int]]:
    """Every (payer, receiver) pair once, round robin: round r has i paying (i + r) mod N."""
    return [(i, (i + r) % agents) for r in range(1, agents) for i in range(agents)]


def memo_for(payer: int, receiver: int) -> str:
    return f"{MEMO_PREFIX} {payer}->{receiver}"


@dataclass(frozen=True, slots=True)
class AgentLedger:
    """One agent's ledger as read back from its own chain."""

    agent: str
    balance_mc: int
    transfers: tuple[tuple[str, int], ...]
    """(counterparty, signed amount: negative when this agent paid), oldest first."""


@dataclass(frozen=True, slots=True)
class Tally:
    completed: int
    """Payments on both the payer's and the receiver's chain."""
    pending: int
    """Payments on one of the two chains only (a session still finishing)."""
    duplicates: int
    """Payments of a pair beyond the first (each pair pays once: must be 0)."""
    balance_sum: int


def tally(ledgers: Iterable[AgentLedger]) -> Tally:
    """What the chains say: compare each payer's debits with each receiver's credits."""
    paid: Counter[tuple[str, str]] = Counter()
    received: Counter[tuple[str, str]] = Counter()
    balance_sum = 0
    for ledger in ledgers:
        balance_sum += ledger.balance_mc
        for counterparty, delta in ledger.transfers:
            if delta < 0:
                paid[(ledger.agent, counterparty)] += 1
            else:
                received[(counterparty, ledger.agent)] += 1
    pairs = set(paid) | set(received)
    completed = sum(min(paid[p], received[p]) for p in pairs)
    pending = sum(abs(paid[p] - received[p]) for p in pairs)
    duplicates = sum(max(paid[p], received[p]) - 1 for p in pairs)
    return Tally(completed, pending, duplicates, balance_sum)


@dataclass(frozen=True, slots=True)
class SimResult:
    mode: str
    agents: int
    amount_mc: int
    tally: Tally
    failed: int
    retried: int
    """Payment attempts beyond the first (by the wallets and by the simulation)."""
    seconds: float
    setup_seconds: float
    balances: tuple[int, ...]
    data_dir: Path
    errors: tuple[str, ...] = field(default=())

    @property
    def payments(self) -> int:
        return self.agents * (self.agents - 1)

    @property
    def ok(self) -> bool:
        t = self.tally
        return (
            t.completed == self.payments
            and t.pending == 0
            and t.duplicates == 0
            and t.balance_sum == 0
            and self.failed == 0
        )

    def to_json(self) -> dict[str, Any]:
        """The command's last line (``completed``, ``pending``, ``balance_sum``, ``seconds``
        first: scripts rely on them)."""
        return {
            "completed": self.tally.completed,
            "pending": self.tally.pending,
            "balance_sum": self.tally.balance_sum,
            "seconds": round(self.seconds, 3),
            "agents": self.agents,
            "payments": self.payments,
            "failed": self.failed,
            "duplicates": self.tally.duplicates,
            "retried": self.retried,
            "tx_per_s": round(self.tally.completed / self.seconds, 1) if self.seconds else 0.0,
            "amount_mc": self.amount_mc,
            "balances": list(self.balances),
            "mode": self.mode,
            "setup_seconds": round(self.setup_seconds, 3),
            "data_dir": str(self.data_dir),
            "errors": list(self.errors),
            "ok": self.ok,
        }


def _check(agents: int, amount_mc: int, most: int) -> None:
    if not 2 <= agents <= most:
        raise SimError(f"--agents is between 2 and {most} in this mode")
    if type(amount_mc) is not int or amount_mc <= 0:
        raise SimError("the amount is a positive integer of milli-credits")


def _check_limit(agents: int, amount_mc: int, limits: Sequence[int]) -> None:
    """A payer may make all its payments before receiving any: it must have the credit."""
    needed = (agents - 1) * amount_mc
    if needed > min(limits):
        raise SimError(
            f"{agents - 1} payments of {amount_mc} mc need {needed} mc of credit, and an agent "
            f"here has {min(limits)}: use a smaller --amount-mc"
        )


def _fresh(dirs: Sequence[Path]) -> None:
    used = [d for d in dirs if d.exists() and any(d.iterdir())]
    if used:
        raise SimError(f"{used[0]} is not empty: give a new --data-dir for each simulation")


# ------------------------------------------------------------------------------- in process


def _ledger(conductor: Conductor) -> AgentLedger:
    cell = conductor.owner_cell
    balance = conductor.call(cell, currency.coordinator.name, "balance")
    history = conductor.call(cell, currency.coordinator.name, "history")
    assert isinstance(balance, currency.Balance) and isinstance(history, list)
    return AgentLedger(
        cell.agent.to_text(),
        balance.balance_mc,
        tuple((item.counterparty.to_text(), item.delta_mc) for item in history),
    )


def pay_in_process(payer: Conductor, receiver: Conductor, amount_mc: int, memo: str) -> None:
    """One payment between two conductors of this process: the payer's own checks, the
    receiver's policy, both signatures and both commits (each fully validated)."""
    zome = currency.coordinator.name
    head = receiver.call(receiver.owner_cell, zome, "ledger_head")
    payload = {
        "to": receiver.owner_cell.agent,
        "amount_mc": amount_mc,
        "memo": memo,
        "receiver_head": head,
    }
    transfer = payer.call(payer.owner_cell, zome, "prepare_payment", payload)
    assert isinstance(transfer, Transfer)
    commit_in_process(
        payer.owner_cell,
        receiver.owner_cell,
        transfer,
        session_id=os.urandom(SESSION_ID_BYTES),
        now_us=payer.clock(),
    )


def run_in_process(
    root: Path, agents: int, amount_mc: int = DEFAULT_AMOUNT_MC, *, clock: Any = system_clock_us
) -> SimResult:
    """All agents as conductors of this process (see the module docstring)."""
    _check(agents, amount_mc, MAX_AGENTS_IN_PROCESS)
    dirs = agent_dirs(root, agents)
    _fresh(dirs)
    began = time.perf_counter()
    conductors: list[Conductor] = []
    try:
        for data_dir in dirs:
            data_dir.mkdir(parents=True, exist_ok=True)
            create_device_key_file(data_dir / KEY_FILE)
            conductor, _ = Conductor.init(
                data_dir, Unlock(key_file=data_dir / KEY_FILE), clock=clock
            )
            conductors.append(conductor)
        limits = []
        for conductor in conductors:
            found = conductor.call(conductor.owner_cell, currency.coordinator.name, "balance")
            assert isinstance(found, currency.Balance)
            limits.append(found.credit_limit_mc)
        _check_limit(agents, amount_mc, limits)
        setup_seconds = time.perf_counter() - began
        errors: list[str] = []
        failed = 0
        started = time.perf_counter()
        for payer, receiver in schedule(agents):
            try:
                pay_in_process(
                    conductors[payer], conductors[receiver], amount_mc, memo_for(payer, receiver)
                )
            except (ZomeCallError, ChainError, ValidationError) as exc:
                failed += 1
                if len(errors) < MAX_ERRORS_KEPT:
                    errors.append(f"{payer}->{receiver}: {exc}")
        seconds = time.perf_counter() - started
        ledgers = [_ledger(c) for c in conductors]
    finally:
        for conductor in conductors:
            conductor.close()
    return SimResult(
        mode="in-process",
        agents=agents,
        amount_mc=amount_mc,
        tally=tally(ledgers),
        failed=failed,
        retried=0,
        seconds=seconds,
        setup_seconds=setup_seconds,
        balances=tuple(ledger.balance_mc for ledger in ledgers),
        data_dir=root,
        errors=tuple(errors),
    )


# ------------------------------------------------------------------------ separate processes


@dataclass(frozen=True, slots=True)
class PayOutcome:
    attempts: int
    """Requests to the payer's node."""
    error: str | None
    wallet_retries: int = 0
    """Retries the payer's wallet made inside the request that succeeded."""


def _locked(node: AgentProcess) -> bool:
    try:
        return bool(node.api("GET", "/v1/countersign")["locks"])
    except (ApiError, NoRunningNode):
        return True


def _landed(node: AgentProcess, to: str, memo: str) -> bool:
    """Whether the payer's chain holds its payment to ``to`` (once its chain is unlocked)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while _locked(node) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        items = node.api("GET", "/v1/wallet/history")["items"]
    except (ApiError, NoRunningNode):
        return False
    return any(i["counterparty"] == to and i["delta_mc"] < 0 and i["memo"] == memo for i in items)


def pay_over_api(payer: AgentProcess, to: str, amount_mc: int, memo: str) -> PayOutcome:
    """One payment through the payer node's ``POST /v1/wallet/pay``, retried (bounded) while
    the refusal is one a moment can cure, never after it landed."""
    body = {"to": to, "amount_mc": amount_mc, "memo": memo, "timeout_s": PAY_TIMEOUT_S}
    message = ""
    for attempt in range(1, PAY_ATTEMPTS + 1):
        try:
            paid = payer.api("POST", "/v1/wallet/pay", body, timeout=PAY_TIMEOUT_S * 3 + 10)
            return PayOutcome(attempt, None, int(paid["attempts"]) - 1)
        except (ApiError, NoRunningNode) as exc:
            message = str(exc)
        if _landed(payer, to, memo):  # e.g. the answer was lost, the payment was not
            return PayOutcome(attempt, None)
        if any(reason in message for reason in DEFINITIVE):
            return PayOutcome(attempt, message)
        pause = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1))
        time.sleep(pause * (0.5 + random.random()))  # jittered: payers part ways
    return PayOutcome(PAY_ATTEMPTS, message)


def _remote_ledger(node: AgentProcess) -> AgentLedger:
    balance = node.api("GET", "/v1/wallet")
    items = node.api("GET", "/v1/wallet/history")["items"]
    return AgentLedger(
        str(balance["agent"]),
        int(balance["balance_mc"]),
        tuple((str(i["counterparty"]), int(i["delta_mc"])) for i in items),
    )


def run_processes(root: Path, agents: int, amount_mc: int = DEFAULT_AMOUNT_MC) -> SimResult:
    """One ``ioe node run`` per agent over libp2p on loopback (see the module docstring)."""
    _check(agents, amount_mc, MAX_AGENTS_PROCESSES)
    dirs = agent_dirs(root, agents)
    _fresh(dirs)
    began = time.perf_counter()
    workers = min(agents, MAX_PARALLEL_PAYERS)
    with ThreadPoolExecutor(min(agents, 4)) as pool:
        owners = list(pool.map(init_agent, dirs))
    fleet = [AgentProcess(d, o) for d, o in zip(dirs, owners, strict=True)]
    try:
        fleet[0].start()
        with ThreadPoolExecutor(min(agents, 4)) as pool:
            list(pool.map(lambda node: node.start(fleet[0].addr), fleet[1:]))
        wait_until(
            lambda: all(members(node) >= agents for node in fleet),
            60.0 + 2.0 * agents,
            "the nodes did not all find each other",
        )
        _check_limit(
            agents, amount_mc, [int(n.api("GET", "/v1/wallet")["credit_limit_mc"]) for n in fleet]
        )
        setup_seconds = time.perf_counter() - began
        plan: dict[int, list[int]] = {}
        for payer, receiver in schedule(agents):
            plan.setdefault(payer, []).append(receiver)

        def pay_all(payer: int) -> list[tuple[int, PayOutcome]]:
            return [
                (
                    receiver,
                    pay_over_api(
                        fleet[payer], owners[receiver], amount_mc, memo_for(payer, receiver)
                    ),
                )
                for receiver in plan[payer]
            ]

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outcomes = dict(zip(range(agents), pool.map(pay_all, range(agents)), strict=True))
        seconds = time.perf_counter() - started
        # Sessions the receivers are still finishing settle (bounded); what does not is pending.
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while any(_locked(n) for n in fleet) and time.monotonic() < deadline:
            time.sleep(0.1)
        ledgers = [_remote_ledger(n) for n in fleet]
    finally:
        stop_all(fleet)
    errors = [
        f"{payer}->{receiver}: {outcome.error}"
        for payer, done in outcomes.items()
        for receiver, outcome in done
        if outcome.error is not None
    ]
    retried = sum(o.attempts - 1 + o.wallet_retries for done in outcomes.values() for _, o in done)
    return SimResult(
        mode="processes",
        agents=agents,
        amount_mc=amount_mc,
        tally=tally(ledgers),
        failed=len(errors),
        retried=retried,
        seconds=seconds,
        setup_seconds=setup_seconds,
        balances=tuple(ledger.balance_mc for ledger in ledgers),
        data_dir=root,
        errors=tuple(errors[:MAX_ERRORS_KEPT]),
    )
