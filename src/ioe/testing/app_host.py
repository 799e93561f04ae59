"""An app host in memory: run a Smart Energy App without a node.

:class:`MemoryAppHost` implements :class:`ioe.apps.host.AppHost` with plain Python state: a
device's values, a settings dict, records and zome functions you provide, remote calls answered
by functions you register, payments recorded (and refused when you say so), signals kept in a
list. App developers test their app against it first; the same app then runs on a node through
``ioe.node.app_host.NodeAppHost``.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ioe.apps.host import FetchedRecord, Paid, Service
from ioe.encoding import Value
from ioe.errors import IoEError, ZomeCallError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.value import ValueRules

ZomeFunction = Callable[[Any], object]
RemoteFunction = Callable[[str, str, Value], Awaitable[object]]
"""``answer(zome, function, payload)`` of another agent."""


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment an app made through the host."""

    to: AgentPubKey
    amount_mc: int
    kind: str
    provenance: Value | None
    terms: Value | None
    memo: str


@dataclass
class MemoryAppHost:
    """:class:`~ioe.apps.host.AppHost` in memory (see the module docstring)."""

    agent: AgentPubKey
    device: dict[str, Value] | None = None
    """The device's values; None: the host bridges no device."""
    symbol: str = "kWh-c"
    rules: ValueRules = field(default_factory=ValueRules)
    """The network's value rules (``value_rules()``)."""
    balance: int = 0
    """The wallet's balance in milli-credits (``balance_mc()``); payments take from it."""
    zome_functions: dict[tuple[str, str], ZomeFunction] = field(default_factory=dict)
    records: dict[ActionHash, FetchedRecord] = field(default_factory=dict)
    remote_agents: dict[AgentPubKey, RemoteFunction] = field(default_factory=dict)
    price_mc: Callable[[Value | None], int] = lambda terms: 0
    """The amount the currency's rules give a payment with these terms (``amount_mc=None``)."""
    refuse_payments: str | None = None
    """When set, every payment fails with this reason (a receiver that refuses)."""
    settings: dict[str, Value] = field(default_factory=dict)
    writes: list[tuple[str, Value]] = field(default_factory=list)
    calls: list[tuple[str, str, object]] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    signals: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    observations: list[tuple[AgentPubKey, ActionHash, bool]] = field(default_factory=list)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Notes the app posted to its app network (``post_to_app``)."""
    services: dict[str, tuple[tuple[str, ...], Service]] = field(default_factory=dict)
    published: set[ActionHash] = field(default_factory=set)
    _serial: int = 0

    @property
    def has_device(self) -> bool:
        return self.device is not None

    async def read_device(self) -> dict[str, Value]:
        if self.device is None:
            raise IoEError("this host bridges no device")
        return dict(self.device)

    async def write_device(self, point: str, value: Value) -> None:
        if self.device is None:
            raise IoEError("this host bridges no device")
        self.device[point] = value
        self.writes.append((point, value))

    def get_setting(self, key: str) -> Value | None:
        return copy.deepcopy(self.settings.get(key))

    def put_setting(self, key: str, value: Value) -> None:
        self.settings[key] = copy.deepcopy(value)

    def new_hash(self) -> ActionHash:
        """A fresh action hash (for records the host's zome functions write)."""
        self._serial += 1
        return ActionHash(self._serial.to_bytes(32, "big"))

    async def call_zome(self, zome: str, function: str, payload: object = None) -> object:
        self.calls.append((zome, function, payload))
        found = self.zome_functions.get((zome, function))
        if found is None:
            raise ZomeCallError(f"no zome function {zome}.{function}")
        return found(payload)

    async def fetch_record(self, action: ActionHash) -> FetchedRecord | None:
        return self.records.get(action)

    async def wait_published(self, actions: Sequence[ActionHash], timeout_s: float) -> bool:
        self.published.update(actions)
        return True

    async def remote_call(
        self, agent: AgentPubKey, zome: str, function: str, payload: Value, timeout_s: float
    ) -> object:
        answer = self.remote_agents.get(agent)
        if answer is None:
            raise IoEError(f"{agent.short()} is not reachable")
        return await answer(zome, function, payload)

    def serve(self, name: str, functions: Sequence[str], service: Service) -> None:
        self.services[name] = (tuple(functions), service)

    async def call_service(
        self, caller: AgentPubKey, name: str, function: str, payload: Value
    ) -> object:
        """What a remote call from ``caller`` to a served function does (refused unless the
        function was opened by :meth:`serve`, as a node's grant would)."""
        functions, service = self.services[name]
        if function not in functions:
            raise ZomeCallError(f"{name}.{function} is not open to other agents")
        return await service(function, payload, caller)

    def currency_symbol(self) -> str:
        return self.symbol

    def value_rules(self) -> ValueRules:
        return self.rules

    async def balance_mc(self) -> int:
        return self.balance

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
        if self.refuse_payments is not None:
            raise IoEError(f"the payment was refused: {self.refuse_payments}")
        amount = self.price_mc(terms) if amount_mc is None else amount_mc
        self.payments.append(Payment(to, amount, kind, provenance, terms, memo))
        self.balance -= amount
        return Paid(self.new_hash(), amount)

    def signal(self, zome: str, name: str, payload: dict[str, Any]) -> None:
        self.signals.append((zome, name, payload))

    def observe(self, agent: AgentPubKey, about: ActionHash, *, kept: bool) -> None:
        self.observations.append((agent, about, kept))

    async def post_to_app(self, topic: str, body: dict[str, Any]) -> None:
        self.posts.append((topic, body))
