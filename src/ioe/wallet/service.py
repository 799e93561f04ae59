"""Payments over the network: the node's wallet on the currency zome of its core cell.

A payment is one countersigning session of payer and receiver (``docs/currency.md``):

1. The payer's node asks the receiver's agent for its ``currency.ledger_head`` (a signed remote
   call, :mod:`ioe.services.remote`).
2. It builds the transfer from its own chain and that head with ``currency.prepare_payment``,
   which refuses an over-limit or malformed payment before anyone is asked.
3. It starts a countersigning session with the receiver (``Countersigner.start_session``). The
   receiver's node judges the transfer with :func:`wallet_policy` — it co-signs only valid
   transfers that *pay its own agent* — and both chains commit the same entry.

Every node does two things at start (:meth:`Wallet.start`) so that it can be paid:

- It makes sure its core agent holds an **unrestricted grant for ``currency.ledger_head``**
  (tag :data:`LEDGER_HEAD_TAG`), created once if absent. A payer cannot build a transfer
  without the receiver's head; the head (latest transfer, balance) is what the transfer entry
  publishes anyway. An owner who revokes the grant can no longer be paid. If the chain is
  locked by a session restored at start, the grant is made at the next wallet call.
- It installs :func:`wallet_policy` as each countersigner's policy: transfers go to the
  currency's ``accept_payment``, consumption receipts that name this node's agent as the
  consumer to ``accept_receipt``; every other entry type keeps the default rule (only the
  types named by ``--countersign-accept``).

Nobody trades with an agent whose membership says it may not (an unenrolled device, or one
enrolled with ``--no-trade``): ``prepare_payment`` refuses when this node's own agent may not,
before any session, and the node refuses to pay, be paid by or take a receipt from a
counterparty whose accepted agent info carries such a membership (:func:`counterparty_problem`).
Validation refuses the record of such an agent on every node.

A **consumption receipt** closes the delivery of energy before its trade
(:meth:`Wallet.deliver`): the distributor that attested a generation claim starts a session
with the consumer's node, which co-signs it only as the consumer. A distributor's node never
co-signs a receipt someone else started: a distributor vouches only for deliveries it
measured itself. The consumer then pays the trade with ``pay(kind="trade", terms=...)``.

A refusal because the receiver's head moved (another payment landed between reading it and the
preflight) or its chain was in another session is retried a few times with a fresh head.

The transfer is built by the node's :class:`~ioe.faults.Faults` when they say so (only
tests do: a payer that skips its own checks, so that the *receiver*'s refusal can be seen; its
own chain would refuse the commit anyway).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ioe.conductor import Conductor
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.countersigning import Preflight
from ioe.errors import ChainLocked, IoEError, ZomeCallError
from ioe.faults import NO_FAULTS, Faults
from ioe.hashing import ActionHash, AgentPubKey, DnaHash
from ioe.identity.membership import trade_problem
from ioe.services.countersign import Countersigner, CountersignError, Policy
from ioe.services.grants import ensure_open_grant
from ioe.services.remote import RemoteCalls
from ioe.services.resolve import resolving
from ioe.zomes.currency import api as currency
from ioe.zomes.currency.entries import ConsumptionReceipt, Kind, Transfer
from ioe.zomes.currency.ledger import CurrencyRules, format_mc

log = logging.getLogger(__name__)

CURRENCY_ZOME = currency.coordinator.name
LEDGER_HEAD_TAG = "currency: payers read the ledger head"
PAY_ATTEMPTS = 4
RETRY_PAUSE_S = 0.05
LOCK_POLL_S = 0.01
RETRYABLE = ("stale state", "locked by another session")
"""Refusals that a fresh ledger head (a moment later) can cure."""


class PaymentError(IoEError):
    """A payment was refused (by the counterparty, or its session was abandoned); neither chain
    holds it."""


@dataclass(frozen=True, slots=True)
class Payment:
    """A committed payment, from the payer's side."""

    action_hash: ActionHash
    session_id: bytes
    transfer: Transfer
    attempts: int
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """A consumption receipt committed on the distributor's and the consumer's chains."""

    action_hash: ActionHash
    session_id: bytes
    receipt: ConsumptionReceipt
    elapsed_ms: float


def wallet_policy(
    signer: Countersigner, vet: Callable[[AgentPubKey], str | None] | None = None
) -> Policy:
    """The countersigning policy of a node with a wallet: a transfer is co-signed only by its
    receiver, and only if ``currency.accept_payment`` accepts it; any other entry type goes to
    the countersigner's default rule (the accepted types). ``vet`` (the owner's reputation
    minimum) may refuse any session with another party first."""

    def judge(cell: Cell, preflight: Preflight, value: object) -> str | None:
        if vet is not None and (refused := _vetted(vet, cell, preflight)):
            return refused
        if isinstance(value, Transfer):
            if value.receiver.agent != cell.agent:
                return "this node co-signs only transfers that pay its own agent"
            refused = counterparty_problem(signer.dht, value.spender.agent, "payer")
            return refused or currency.policy(cell, preflight, value)
        if isinstance(value, ConsumptionReceipt):
            if value.consumer != cell.agent:
                return "this node co-signs only receipts of energy its own agent consumed"
            refused = counterparty_problem(signer.dht, value.distributor, "distributor")
            return refused or currency.policy(cell, preflight, value)
        return signer.default_policy(preflight)  # the node's accept-types rule

    return judge


def counterparty_problem(dht: DnaNetwork, agent: AgentPubKey, role: str) -> str | None:
    """Why this node takes no part in a currency session with ``agent`` (the ``role``), or
    None: the membership its accepted agent info carries says it may not trade. Validation
    judges each party on its own record (it cannot read the other party's chain when it
    commits), so this is how an honest node keeps a ``--no-trade`` device off its own chain."""
    info = dht.members().get(agent)
    if info is None:
        return None  # not a member: the session is refused anyway
    problem = trade_problem(agent, info.membrane_proof, dht.dna.properties)
    return None if problem is None else f"the {role} may not trade: {problem}"


def _vetted(
    vet: Callable[[AgentPubKey], str | None], cell: Cell, preflight: Preflight
) -> str | None:
    return next((r for a in preflight.parties if a != cell.agent and (r := vet(a))), None)


def has_currency(cell: Cell) -> bool:
    return any(z.name == CURRENCY_ZOME for z in cell.dna.integrity_zomes)


class WalletHost(Protocol):
    """What the wallet uses of its node: the conductor's cells, each DNA's network and
    countersigner, and remote calls (to read a receiver's ledger head)."""

    @property
    def conductor(self) -> Conductor: ...

    @property
    def dnas(self) -> Mapping[DnaHash, DnaNetwork]: ...

    @property
    def countersigners(self) -> Mapping[DnaHash, Countersigner]: ...

    @property
    def remote(self) -> RemoteCalls: ...

    def call(self, cell: Cell, zome: str, function: str, payload: object = None) -> object: ...

    def core_cell(self) -> Cell: ...


class Wallet:
    """Balance, history and payments of the node's core agent."""

    def __init__(
        self,
        node: WalletHost,
        faults: Faults = NO_FAULTS,
        vet: Callable[[AgentPubKey], str | None] | None = None,
    ) -> None:
        self.node = node
        self.vet = vet
        """Why this node co-signs nothing with an agent now (the owner's reputation minimum)."""
        self.faults = faults
        self.granted = False

    def cell(self) -> Cell:
        """The node's core cell (``IoEError`` if it has none)."""
        return self.node.core_cell()

    def signer(self) -> Countersigner:
        return self.node.countersigners[self.cell().dna.hash]

    def start(self) -> None:
        """Install the payment policy on every countersigner whose DNA has the currency, and
        make sure the ledger head can be read by payers (after the countersigners restored
        their locks)."""
        for signer in self.node.countersigners.values():
            if any(z.name == CURRENCY_ZOME for z in signer.dna.integrity_zomes):
                signer.policy = wallet_policy(signer, self.vet)
        self.ensure_grant()

    def ensure_grant(self) -> None:
        """Create the unrestricted ``currency.ledger_head`` grant if no live grant is one."""
        if self.granted:
            return
        try:
            cell = self.cell()
        except IoEError:
            return
        if not has_currency(cell):
            return
        self.granted = ensure_open_grant(
            self.node.call, cell, CURRENCY_ZOME, "ledger_head", LEDGER_HEAD_TAG
        )

    # --------------------------------------------------------------------------- reads

    def symbol(self) -> str:
        """The unit's symbol (from the DNA's currency settings)."""
        try:
            return CurrencyRules.from_properties(self.cell().dna.properties).symbol
        except ValueError as exc:
            raise ZomeCallError(str(exc)) from exc

    def balance(self) -> currency.Balance:
        self.ensure_grant()
        found = self.node.conductor.call(self.cell(), CURRENCY_ZOME, "balance")
        assert isinstance(found, currency.Balance)
        return found

    def history(self) -> list[currency.HistoryItem]:
        found = self.node.conductor.call(self.cell(), CURRENCY_ZOME, "history")
        assert isinstance(found, list)
        return found

    # --------------------------------------------------------------------------- paying

    async def pay(
        self,
        to: AgentPubKey,
        amount_mc: int | None,
        *,
        kind: str = Kind.TRANSFER,
        provenance: Any = None,
        terms: Any = None,
        memo: str = "",
        timeout_s: float = 10.0,
    ) -> Payment:
        """Pay ``amount_mc`` to ``to``; returns the committed payment. ``terms`` says what a
        trade, fee, reward or cash transfer cites (``currency.prepare_payment``); the records
        it cites are fetched from the network when they are not here, and with them the amount
        may be left to the rules (None). Raises
        ``ZomeCallError`` when this node's own rules refuse it (over the limit, a bad kind),
        :class:`PaymentError` when the receiver refuses it or the session is abandoned,
        ``RemoteCallError`` / ``NetworkError`` when the receiver's head cannot be read, and
        ``ChainLocked`` when this chain is in another session."""
        self.ensure_grant()
        started = time.perf_counter()
        cell = self.cell()
        if to == cell.agent:
            raise ZomeCallError("an agent cannot pay itself")
        signer = self.signer()
        for attempt in range(1, PAY_ATTEMPTS + 1):
            head = await self.node.remote.call(
                cell, to, CURRENCY_ZOME, "ledger_head", None, timeout_s=timeout_s
            )
            payload: dict[str, Any] = {
                "to": to.to_text(),
                "amount_mc": amount_mc,
                "kind": str(kind),
                "memo": memo,
                "receiver_head": head,
            }
            if amount_mc is None:
                del payload["amount_mc"]
            if provenance is not None:
                payload["provenance"] = provenance
            if terms is not None:
                payload["terms"] = terms
            # A first build fetches what the transfer cites (not here yet: a meter's
            # attestation, a plug's claim); the build that counts comes once the chain is free.
            if terms is not None:  # only terms cite records
                dht = self.node.dnas[cell.dna.hash]
                await resolving(dht, functools.partial(self._prepare, cell, to, payload))
            # Our own chain may be co-signing another session (a payment to us): build on it
            # once that settles. Nothing awaits between building and the session's own lock
            # check, so the transfer continues the chain as it stands.
            await self._until_unlocked(cell, timeout_s)
            transfer = self._prepare(cell, to, payload)
            try:
                action, entry = await signer.start_session(
                    cell, [to], transfer, timeout_s=timeout_s
                )
            except CountersignError as exc:
                reason = str(exc)
                if attempt < PAY_ATTEMPTS and any(r in reason for r in RETRYABLE):
                    # jittered, so two payers retrying against each other part ways
                    await asyncio.sleep(RETRY_PAUSE_S * attempt * (0.5 + random.random()))
                    continue
                raise PaymentError(f"the payment was refused: {reason}") from None
            return Payment(
                action,
                entry.session_id,
                transfer,
                attempt,
                round((time.perf_counter() - started) * 1000, 3),
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def deliver(
        self,
        consumer: AgentPubKey,
        attestation: ActionHash,
        energy_wh: int,
        consumer_zone: str,
        *,
        need_index: int = 0,
        timeout_s: float = 10.0,
    ) -> Delivery:
        """As the distributor that made ``attestation``, countersign the receipt of
        ``energy_wh`` delivered to ``consumer`` with the consumer's node. Raises
        ``ZomeCallError`` when this node's rules refuse the receipt (not its attestation, more
        than attested, not a distributor validator), :class:`PaymentError` when the consumer
        refuses or the session is abandoned, ``ChainLocked`` when this chain is busy."""
        cell = self.cell()
        if consumer == cell.agent:
            raise ZomeCallError("a distributor does not deliver to itself")
        started = time.perf_counter()
        payload = {
            "attestation": attestation,
            "consumer": consumer,
            "energy_wh": energy_wh,
            "consumer_zone": consumer_zone,
            "need_index": need_index,
        }

        def prepare() -> ConsumptionReceipt:
            found = self.node.conductor.call(cell, CURRENCY_ZOME, "prepare_receipt", payload)
            assert isinstance(found, ConsumptionReceipt)
            return found

        # The claim the attestation is of may be known here only by its hash: fetch it.
        dht = self.node.dnas[cell.dna.hash]
        await resolving(dht, prepare)
        refused = counterparty_problem(dht, consumer, "consumer")
        if refused:
            raise ZomeCallError(refused)
        await self._until_unlocked(cell, timeout_s)
        receipt = prepare()
        try:
            action, entry = await self.signer().start_session(
                cell, [consumer], receipt, timeout_s=timeout_s
            )
        except CountersignError as exc:
            raise PaymentError(f"the receipt was refused: {exc}") from None
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return Delivery(action, entry.session_id, receipt, elapsed)

    def receipts(self) -> list[currency.ReceiptItem]:
        found = self.node.conductor.call(self.cell(), CURRENCY_ZOME, "receipts")
        assert isinstance(found, list)
        return found

    async def settle(
        self, receipt: ActionHash, *, reputation_pm: int = 1000, timeout_s: float = 10.0
    ) -> Payment:
        """As a receipt's consumer, pay its producer the trade that settles it: the provenance
        is read from the receipt, its attestation and its claim (fetched when not here), and
        the amount is the value the rules give."""
        cell = self.cell()
        offer = await resolving(
            self.node.dnas[cell.dna.hash],
            functools.partial(
                self.node.conductor.call,
                cell,
                CURRENCY_ZOME,
                "trade_for",
                {"receipt": receipt, "reputation_pm": reputation_pm},
            ),
        )
        assert isinstance(offer, currency.TradeOffer)
        return await self.pay(
            offer.to,
            None,
            kind=Kind.TRADE,
            provenance=offer.provenance,
            terms=offer.terms,
            timeout_s=timeout_s,
        )

    @staticmethod
    async def _until_unlocked(cell: Cell, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while cell.lock is not None:
            if time.monotonic() >= deadline:
                raise ChainLocked(f"the chain of {cell.agent.short()} is still in a session")
            await asyncio.sleep(LOCK_POLL_S)

    def _prepare(self, cell: Cell, to: AgentPubKey, payload: dict[str, Any]) -> Transfer:
        now_us = self.node.conductor.clock()
        injected = self.faults.prepare_transfer(cell, to, payload, now_us)
        if injected is not None:
            return injected
        found = self.node.conductor.call(cell, CURRENCY_ZOME, "prepare_payment", payload)
        assert isinstance(found, Transfer)
        refused = counterparty_problem(self.node.dnas[cell.dna.hash], to, "receiver")
        if refused:
            raise ZomeCallError(refused)
        return found


def describe(balance: currency.Balance) -> dict[str, Any]:
    """A balance as the API shows it."""
    return {
        "balance_mc": balance.balance_mc,
        "credit_limit_mc": balance.credit_limit_mc,
        "available_mc": balance.available_mc,
        "unit": balance.symbol,
        "unit_name": balance.name,
        "balance": format_mc(balance.balance_mc, balance.symbol),
        "previous": None if balance.previous is None else balance.previous.to_text(),
    }
