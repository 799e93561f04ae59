"""Payments between two nodes on the in-memory network (``ioe.wallet.service``)."""

from __future__ import annotations

import asyncio

import pytest

from ioe.engine.capability import CapAccess
from ioe.errors import ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.node.runtime import Node
from ioe.services.countersign import CountersignError
from ioe.services.remote import RemoteCallError
from ioe.wallet.service import LEDGER_HEAD_TAG
from ioe.zomes.currency.entries import ConsumptionReceipt, Kind
from ioe.zomes.currency.ledger import DEFAULT_LIMIT_MC, START, next_transfer
from ioe.zomes.profile.entries import Profile

pytestmark = pytest.mark.anyio


def _agent(node: Node):  # type: ignore[no-untyped-def]
    return node.conductor.owner_cell.agent


async def test_every_node_grants_its_ledger_head_once(pair: tuple[Node, Node]) -> None:
    alice, _ = pair
    cell = alice.conductor.owner_cell
    grants = alice.conductor.call(cell, "capability", "list_grants")
    found = [g for g in grants.values() if g.tag == LEDGER_HEAD_TAG]  # type: ignore[union-attr]
    assert len(found) == 1 and found[0].access is CapAccess.UNRESTRICTED
    assert found[0].functions == ("currency.ledger_head",)
    alice.wallet.granted = False
    alice.wallet.ensure_grant()  # finds it: no second grant
    grants = alice.conductor.call(cell, "capability", "list_grants")
    assert len([g for g in grants.values() if g.tag == LEDGER_HEAD_TAG]) == 1  # type: ignore[union-attr]


async def test_a_payment_lands_on_both_chains(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    payment = await alice.wallet.pay(_agent(bob), 1500, memo="lunch", timeout_s=5)
    assert payment.attempts == 1
    assert alice.wallet.balance().balance_mc == -1500
    assert bob.wallet.balance().balance_mc == 1500
    [paid] = alice.wallet.history()
    [got] = bob.wallet.history()
    assert (paid.delta_mc, got.delta_mc) == (-1500, 1500)
    assert paid.counterparty == _agent(bob) and got.counterparty == _agent(alice)
    assert got.memo == "lunch"
    back = await bob.wallet.pay(_agent(alice), 500, kind="donation", timeout_s=5)
    assert back.transfer.kind is Kind.DONATION
    assert alice.wallet.balance().balance_mc + bob.wallet.balance().balance_mc == 0
    assert bob.wallet.balance().balance_mc == 1000


async def test_the_payer_refuses_an_over_limit_payment_before_any_session(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    head = alice.conductor.owner_cell.head()
    with pytest.raises(ZomeCallError, match="credit limit"):
        await alice.wallet.pay(_agent(bob), DEFAULT_LIMIT_MC + 1, timeout_s=5)
    assert alice.conductor.owner_cell.head() == head
    assert bob.wallet.history() == []


async def test_the_receiver_refuses_an_over_limit_transfer(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    cell = alice.conductor.owner_cell
    transfer = next_transfer(
        cell.agent, START, _agent(bob), START, amount_mc=DEFAULT_LIMIT_MC + 1, kind=Kind.TRANSFER
    )
    heads = cell.head(), bob.conductor.owner_cell.head()
    with pytest.raises(CountersignError, match="credit limit"):
        await alice.countersigners[cell.dna.hash].start_session(
            cell, [_agent(bob)], transfer, timeout_s=5
        )
    assert (cell.head(), bob.conductor.owner_cell.head()) == heads
    assert cell.lock is None and bob.conductor.owner_cell.lock is None


async def test_a_node_never_co_signs_a_transfer_that_makes_it_pay(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    cell = alice.conductor.owner_cell
    # Alice asks Bob to co-sign a transfer in which Bob pays Alice.
    transfer = next_transfer(_agent(bob), START, cell.agent, START, amount_mc=10, kind=Kind.FEE)
    with pytest.raises(CountersignError, match="only transfers that pay its own agent"):
        await alice.countersigners[cell.dna.hash].start_session(
            cell, [_agent(bob)], transfer, timeout_s=5
        )
    assert bob.wallet.history() == [] and alice.wallet.history() == []


async def test_a_node_co_signs_receipts_only_as_their_consumer(pair: tuple[Node, Node]) -> None:
    """A distributor vouches only for deliveries it measured: a receipt another node starts
    naming this node's agent as the distributor is refused before any check of its records,
    and so is a receipt for a third agent's consumption."""
    alice, bob = pair
    cell = alice.conductor.owner_cell
    signer = alice.countersigners[cell.dna.hash]
    made_up = ActionHash(bytes(32))
    as_distributor = ConsumptionReceipt(
        made_up, made_up, _agent(bob), cell.agent, 1_000, "au/nsw/newtown"
    )
    with pytest.raises(CountersignError, match="its own agent consumed"):
        await signer.start_session(cell, [_agent(bob)], as_distributor, timeout_s=5)
    # As the consumer, bob's node judges the receipt by the rules: alice is no distributor.
    as_consumer = ConsumptionReceipt(
        made_up, made_up, cell.agent, _agent(bob), 1_000, "au/nsw/newtown"
    )
    with pytest.raises(CountersignError, match="not a distributor validator"):
        await signer.start_session(cell, [_agent(bob)], as_consumer, timeout_s=5)
    assert cell.lock is None and bob.conductor.owner_cell.lock is None
    assert bob.wallet.receipts() == [] and alice.wallet.receipts() == []


async def test_other_entry_types_keep_the_accept_types_rule(make_pair) -> None:  # type: ignore[no-untyped-def]
    # (Refusing them by default is tests/node/test_countersign_policy.py, under this policy too.)
    alice, bob = await make_pair(countersign_accept=("profile",))
    cell = alice.conductor.owner_cell
    await alice.countersigners[cell.dna.hash].start_session(
        cell, [_agent(bob)], Profile("Deal", "au/nsw"), timeout_s=5
    )
    assert await alice.wallet.pay(_agent(bob), 1, timeout_s=5)


async def test_a_payment_to_oneself_or_to_a_stranger_fails(pair: tuple[Node, Node]) -> None:
    alice, _ = pair
    with pytest.raises(ZomeCallError, match="cannot pay itself"):
        await alice.wallet.pay(_agent(alice), 10)
    with pytest.raises(RemoteCallError, match="not a known member"):
        await alice.wallet.pay(AgentPubKey(bytes(32)), 10)


async def test_payments_crossing_each_other_are_retried_and_both_land(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    for _ in range(3):
        paid = await asyncio.gather(
            alice.wallet.pay(_agent(bob), 300, timeout_s=5),
            bob.wallet.pay(_agent(alice), 100, timeout_s=5),
            return_exceptions=True,
        )
        assert not [p for p in paid if isinstance(p, BaseException)], paid
    assert alice.wallet.balance().balance_mc == -600
    assert bob.wallet.balance().balance_mc == 600
    assert len(alice.wallet.history()) == len(bob.wallet.history()) == 6
