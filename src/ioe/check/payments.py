"""Crash loop, payments: two ``ioe node run`` processes pay each other in a loop over libp2p on
loopback while one of them is SIGKILLed at a random moment (in the middle of a countersigning
session, most of the time: that is what a payment is), checked and restarted.

After each kill the killed node's chains are verified from genesis before it restarts (as
``ioe chain verify`` does). Once it is back and both nodes see each other, payments pause until
no chain is locked by a session (a party that signed waits for the decider's word, and the
decider may be the node that was killed), and then:

* every payment a node's API confirmed is on both chains;
* every transfer on one chain is on the other, with the opposite sign (payments carry a unique
  memo, which is how the two sides of one transfer are matched);
* the two balances sum to zero.

``tried`` is the number of kills, ``survived`` the kills after which all of that held, ``lost``
the confirmed payments missing from either chain plus the transfers found on one chain only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioe.check.child import Child, ChildFailed
from ioe.check.report import CategoryResult
from ioe.conductor import known_dnas, open_database
from ioe.errors import IoEError
from ioe.node.client import ApiError, call_api
from ioe.node.nodefile import NoRunningNode

PASSPHRASE = "reliability check passphrase, not a secret"
START_TIMEOUT_S = 60.0
MEMBERS_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 90.0
PAY_TIMEOUT_S = 15.0
KILL_AFTER_S = (0.3, 2.0)
"""A kill comes this long after payments resume (uniformly): several payments in."""


def _env() -> dict[str, str]:
    return {**os.environ, "IOE_PASSPHRASE": PASSPHRASE}


# ------------------------------------------------------------------------------ judging


@dataclass(frozen=True, slots=True)
class Judgement:
    """What two nodes' wallet histories say after a kill."""

    missing_confirmed: tuple[str, ...]
    """Memos of payments an API confirmed that a chain lacks (one entry per chain lacking it)."""
    one_sided: tuple[str, ...]
    """Memos of transfers on one chain only, or with amounts that do not mirror."""
    balance_sum_mc: int

    @property
    def lost(self) -> int:
        return len(self.missing_confirmed) + len(self.one_sided)

    def problems(self) -> list[str]:
        found = []
        if self.missing_confirmed:
            found.append(f"confirmed payments missing: {sorted(self.missing_confirmed)[:5]}")
        if self.one_sided:
            found.append(f"transfers on one chain only: {sorted(self.one_sided)[:5]}")
        if self.balance_sum_mc != 0:
            found.append(f"balances sum to {self.balance_sum_mc} mc, not 0")
        return found


def judge(
    histories: Sequence[Sequence[Mapping[str, Any]]],
    balances: Sequence[int],
    confirmed: set[str],
) -> Judgement:
    """Compare two nodes' histories (wallet history items: ``memo``, ``delta_mc``)."""
    sides = [{item["memo"]: int(item["delta_mc"]) for item in history} for history in histories]
    missing = [memo for memo in sorted(confirmed) for side in sides if memo not in side]
    one_sided = sorted(
        memo
        for memo in set(sides[0]) | set(sides[1])
        if memo not in sides[0] or memo not in sides[1] or sides[0][memo] != -sides[1][memo]
    )
    return Judgement(tuple(missing), tuple(one_sided), sum(balances))


# ------------------------------------------------------------------------------ nodes


@dataclass
class NodeProcess:
    """One ``ioe node run`` of a data directory, restartable."""

    data_dir: Path
    owner: str
    child: Child | None = None
    addr: str = ""

    def start(self, bootstrap: str | None) -> None:
        args = ["node", "run", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0"]
        args += ["--no-mdns", *(["--bootstrap", bootstrap] if bootstrap else [])]
        self.child = Child("ioe", args, env=_env())
        first = self.child.wait_lines(1, START_TIMEOUT_S)[0]
        self.addr = str(json.loads(first)["addrs"][0])

    def kill(self) -> int:
        assert self.child is not None
        code = self.child.kill()
        self.child.close()
        self.child = None
        return code

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not stop in time."""
        if self.child is None:
            return
        process = self.child.process
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        self.child.close()
        self.child = None

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        return call_api(self.data_dir, method, path, body, timeout=PAY_TIMEOUT_S)


def init_node(data_dir: Path) -> NodeProcess:
    done = subprocess.run(
        [sys.executable, "-m", "ioe", "init", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=True,
    )
    return NodeProcess(data_dir, str(json.loads(done.stdout.strip().splitlines()[-1])["owner"]))


def verify_chains(data_dir: Path) -> int:
    """Verify every chain of a stopped node's database from genesis (``ioe chain verify``);
    the records checked. :class:`IoEError` if one does not verify."""
    with open_database(data_dir, verify=False) as db:
        return db.verify_all(known_dnas(db))


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (IoEError, OSError, ValueError):
            pass  # a node still starting, or just killed
        time.sleep(0.1)
    raise ChildFailed(f"{what} within {timeout_s:.0f} s")


def _members(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


def _settled(nodes: Sequence[NodeProcess]) -> bool:
    return all(not node.api("GET", "/v1/countersign")["locks"] for node in nodes)


# ------------------------------------------------------------------------------ payer


@dataclass
class Payer:
    """Pays back and forth between the two nodes in a thread while :attr:`running` is set;
    every payment has a unique memo, and the memos an API confirmed are kept."""

    nodes: Sequence[NodeProcess]
    confirmed: set[str] = field(default_factory=set)
    attempted: int = 0
    in_flight: bool = False
    """A payment request is waiting for its answer (a kill now lands mid-payment)."""
    running: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    idle: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if not self.running.wait(0.1):
                self.idle.set()
                continue
            self.idle.clear()
            payer = self.attempted % 2
            memo = f"p{self.attempted}"
            self.attempted += 1
            body = {"to": self.nodes[1 - payer].owner, "amount_mc": 1 + self.attempted % 7}
            self.in_flight = True
            try:
                self.nodes[payer].api("POST", "/v1/wallet/pay", {**body, "memo": memo})
            except (ApiError, NoRunningNode, OSError, ValueError):
                time.sleep(0.05)  # a node down or a session refused: carry on
                continue
            finally:
                self.in_flight = False
            self.confirmed.add(memo)
        self.idle.set()

    def pause(self, timeout_s: float = PAY_TIMEOUT_S + 5) -> None:
        """Stop paying and wait until no payment is in flight from here."""
        self.running.clear()
        self.idle.clear()
        self.idle.wait(timeout_s)

    def close(self) -> None:
        self.stopping.set()
        self.running.clear()
        if self._thread is not None:
            self._thread.join(timeout=PAY_TIMEOUT_S + 10)


# ------------------------------------------------------------------------------ the loop


def run(
    kills: int,
    workdir: Path | None = None,
    *,
    seed: int = 0,
    deadline_s: float = 3600.0,
    progress: Callable[[str], None] | None = None,
) -> CategoryResult:
    """``kills`` SIGKILLs of either node, each followed by a check and a restart."""
    result = CategoryResult("crash")
    rng = random.Random(f"{seed}/payments")
    started = time.monotonic()
    mid_payment = 0
    with tempfile.TemporaryDirectory(prefix="ioe-payments-", dir=workdir) as tmp:
        nodes = [init_node(Path(tmp) / name) for name in ("a", "b")]
        payer = Payer(nodes)
        try:
            nodes[0].start(None)
            nodes[1].start(nodes[0].addr)
            _wait(lambda: all(_members(n) == 2 for n in nodes), MEMBERS_TIMEOUT_S, "no membership")
            payer.start()
            for _ in range(kills):
                if time.monotonic() - started > deadline_s:
                    result.fail(f"stopped after {result.tried} kills: {deadline_s:.0f} s ran out")
                    break
                result.tried += 1
                outcome = _one_kill(nodes, payer, rng)
                result.lost += outcome.lost
                mid_payment += outcome.mid_payment
                if outcome.problems:
                    result.fail(f"payments kill {result.tried}: " + "; ".join(outcome.problems))
                else:
                    result.survived += 1
                if progress is not None:
                    progress(
                        f"crash: payments kill {result.tried}/{kills}, "
                        f"{len(payer.confirmed)} of {payer.attempted} payments confirmed"
                    )
        finally:
            payer.close()
            for node in nodes:
                node.stop()
        final = [verify_chains(node.data_dir) for node in nodes]
    result.extra.update(
        {
            "kills": result.tried,
            "kills_mid_payment": mid_payment,
            "payments_attempted": payer.attempted,
            "payments_confirmed": len(payer.confirmed),
            "records_verified_at_end": sum(final),
        }
    )
    result.seconds = time.monotonic() - started
    return result


@dataclass(frozen=True, slots=True)
class KillOutcome:
    problems: list[str]
    lost: int
    mid_payment: bool


def _one_kill(nodes: Sequence[NodeProcess], payer: Payer, rng: random.Random) -> KillOutcome:
    """Resume payments, kill one node, verify it, restart it, settle, judge."""
    payer.running.set()
    time.sleep(rng.uniform(*KILL_AFTER_S))
    victim = rng.randrange(2)
    other = nodes[1 - victim]
    mid_payment = payer.in_flight
    code = nodes[victim].kill()
    payer.pause()
    problems: list[str] = []
    if code != -signal.SIGKILL:
        problems.append(f"node {victim} had already exited with {code}")
    try:
        verify_chains(nodes[victim].data_dir)
    except IoEError as exc:
        problems.append(f"the killed node's chains do not verify: {exc}")
    try:
        nodes[victim].start(other.addr)
        _wait(lambda: all(_members(n) == 2 for n in nodes), MEMBERS_TIMEOUT_S, "no membership")
        _wait(lambda: _settled(nodes), SETTLE_TIMEOUT_S, "a chain is still locked")
        histories = [n.api("GET", "/v1/wallet/history")["items"] for n in nodes]
        balances = [int(n.api("GET", "/v1/wallet")["balance_mc"]) for n in nodes]
    except (ChildFailed, IoEError, OSError) as exc:
        problems.append(f"after the restart: {exc}")
        return KillOutcome(problems, 0, mid_payment)
    judgement = judge(histories, balances, payer.confirmed)
    return KillOutcome(problems + judgement.problems(), judgement.lost, mid_payment)
