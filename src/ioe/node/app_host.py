"""The node's side of the app host port (:class:`ioe.apps.host.AppHost`).

An app runs as the node's core agent (until apps have DNAs of their own): its zome calls go to
the core cell and fetch what they cite from its DNA network, its settings share the node's
settings table, its services answer remote calls under an unrestricted grant of the core agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ioe.apps.host import FetchedRecord, Paid, Service
from ioe.encoding import Value
from ioe.engine.cell import Cell
from ioe.errors import IoEError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.services.grants import ensure_open_grant
from ioe.services.resolve import prefetch, resolving
from ioe.zomes.currency.value import ValueRules

if TYPE_CHECKING:
    from ioe.node.runtime import Node

log = logging.getLogger(__name__)

GRANT_RETRY_S = 0.5
GRANT_ATTEMPTS = 120
"""A grant the chain's countersigning lock delays is tried again for about a minute."""


class NodeAppHost:
    """:class:`~ioe.apps.host.AppHost` over a running node."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._tasks: set[asyncio.Task[None]] = set()

    def _cell(self) -> Cell:
        return self._node.core_cell()

    @property
    def agent(self) -> AgentPubKey:
        return self._cell().agent

    @property
    def has_device(self) -> bool:
        return self._node.device is not None

    def _device(self) -> Any:
        if self._node.device is None:
            raise IoEError("this node bridges no device")
        return self._node.device

    async def read_device(self) -> dict[str, Value]:
        values: dict[str, Value] = await self._device().read()
        return values

    async def write_device(self, point: str, value: Value) -> None:
        await self._device().write(point, value)

    def get_setting(self, key: str) -> Value | None:
        return self._node.conductor.db.get_setting(key)

    def put_setting(self, key: str, value: Value) -> None:
        self._node.conductor.db.put_setting(key, value)

    async def call_zome(self, zome: str, function: str, payload: object = None) -> object:
        cell = self._cell()
        call = functools.partial(self._node.call, cell, zome, function, payload)
        return await resolving(self._node.dht_for(cell), call)

    async def fetch_record(self, action: ActionHash) -> FetchedRecord | None:
        cell = self._cell()
        dht = self._node.dht_for(cell)
        await prefetch(dht, [action])
        record = dht.store.get_record(action)
        if record is None:
            return None
        return FetchedRecord(action, record.action.author, cell.entry_value(record))

    async def wait_published(self, actions: Sequence[ActionHash], timeout_s: float) -> bool:
        return await self._node.dht_for(self._cell()).wait_published(
            list(actions), timeout_s=timeout_s
        )

    async def remote_call(
        self, agent: AgentPubKey, zome: str, function: str, payload: Value, timeout_s: float
    ) -> object:
        return await self._node.remote.call(
            self._cell(), agent, zome, function, payload, timeout_s=timeout_s
        )

    def serve(self, name: str, functions: Sequence[str], service: Service) -> None:
        self._node.remote.services[name] = service
        for function in functions:
            if not ensure_open_grant(
                self._node.call, self._cell(), name, function, f"{name} (app)"
            ):
                self._retry_grant(name, function)

    def _retry_grant(self, name: str, function: str) -> None:
        async def retry() -> None:
            for _ in range(GRANT_ATTEMPTS):
                await asyncio.sleep(GRANT_RETRY_S)
                if ensure_open_grant(
                    self._node.call, self._cell(), name, function, f"{name} (app)"
                ):
                    return
            log.warning(
                "the %s.%s grant could not be made: the chain stayed locked", name, function
            )

        task = asyncio.create_task(retry(), name=f"grant {name}.{function}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def currency_symbol(self) -> str:
        return self._node.wallet.symbol()

    def value_rules(self) -> ValueRules:
        """The core DNA's rules: the ones its currency zome pays and validates rewards by."""
        return ValueRules.from_properties(self._cell().dna.properties)

    async def balance_mc(self) -> int:
        return self._node.wallet.balance().balance_mc

    async def pay(
        self,
        to: AgentPubKey,
        amount_mc: int | None,
        *,
        kind: str,
        provenance: Value | None = None,
        terms: Value | None = None,
        memo: str = "",
    ) -> Paid:
        payment = await self._node.wallet.pay(
            to, amount_mc, kind=kind, provenance=provenance, terms=terms, memo=memo
        )
        return Paid(payment.action_hash, payment.transfer.amount_mc)

    def signal(self, zome: str, name: str, payload: dict[str, Any]) -> None:
        self._node.signals.publish(
            {"type": "signal", "zome": zome, "name": name, "payload": payload}
        )

    async def post_to_app(self, topic: str, body: dict[str, Any]) -> None:
        """An app started by hand runs in no app network: nothing to post to."""

    def observe(self, agent: AgentPubKey, about: ActionHash, *, kept: bool) -> None:
        self._node.reputation.reduction_judged(agent, about, delivered=kept)
