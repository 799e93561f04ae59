"""An installed app's view of its node: only the capabilities its installation granted.

An app installed from the store runs with a :class:`GrantedAppHost` around the node's app host
(:class:`ioe.apps.host.AppHost`): it reads only the device points granted *see*, writes only
those granted *control*, pays and reads the wallet's balance only with a *trade* grant, and its
notes go to its own app network's board. Uninstalling drops the wrapper with the app, so nothing
it was granted outlives it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ioe.apps.host import AppHost, FetchedRecord, Paid, Service
from ioe.encoding import Value
from ioe.errors import IoEError
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.appstore.entries import Capability
from ioe.zomes.community.entries import Access
from ioe.zomes.currency.value import ValueRules


class NotGranted(IoEError):
    """The app asked for something its installation did not grant."""


Post = Callable[[str, dict[str, Any]], Awaitable[None]]


class GrantedAppHost:
    """:class:`~ioe.apps.host.AppHost` limited to ``granted`` (see the module docstring)."""

    def __init__(self, inner: AppHost, app: str, granted: Sequence[Capability], post: Post) -> None:
        self._inner = inner
        self._app = app
        self._see = {c.point for c in granted if c.access is Access.SEE}
        self._control = {c.point for c in granted if c.access is Access.CONTROL}
        self._trade = any(c.access is Access.TRADE for c in granted)
        self._post = post

    @property
    def agent(self) -> AgentPubKey:
        return self._inner.agent

    @property
    def has_device(self) -> bool:
        return self._inner.has_device

    async def read_device(self) -> dict[str, Value]:
        values = await self._inner.read_device()
        return {point: value for point, value in values.items() if point in self._see}

    async def write_device(self, point: str, value: Value) -> None:
        if point not in self._control:
            raise NotGranted(f"app {self._app!r} was not granted control of {point!r}")
        await self._inner.write_device(point, value)

    def get_setting(self, key: str) -> Value | None:
        return self._inner.get_setting(key)

    def put_setting(self, key: str, value: Value) -> None:
        self._inner.put_setting(key, value)

    async def call_zome(self, zome: str, function: str, payload: object = None) -> object:
        return await self._inner.call_zome(zome, function, payload)

    async def fetch_record(self, action: ActionHash) -> FetchedRecord | None:
        return await self._inner.fetch_record(action)

    async def wait_published(self, actions: Sequence[ActionHash], timeout_s: float) -> bool:
        return await self._inner.wait_published(actions, timeout_s)

    async def remote_call(
        self, agent: AgentPubKey, zome: str, function: str, payload: Value, timeout_s: float
    ) -> object:
        return await self._inner.remote_call(agent, zome, function, payload, timeout_s)

    def serve(self, name: str, functions: Sequence[str], service: Service) -> None:
        self._inner.serve(name, functions, service)

    def currency_symbol(self) -> str:
        return self._inner.currency_symbol()

    def value_rules(self) -> ValueRules:
        return self._inner.value_rules()

    async def balance_mc(self) -> int:
        """The wallet is the owner's business: an app sees its balance only with *trade*."""
        if not self._trade:
            raise NotGranted(f"app {self._app!r} was not granted trade (the wallet)")
        return await self._inner.balance_mc()

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
        if not self._trade:
            raise NotGranted(f"app {self._app!r} was not granted trade")
        return await self._inner.pay(
            to, amount_mc, kind=kind, provenance=provenance, terms=terms, memo=memo
        )

    def signal(self, zome: str, name: str, payload: dict[str, Any]) -> None:
        self._inner.signal(zome, name, payload)

    def observe(self, agent: AgentPubKey, about: ActionHash, *, kept: bool) -> None:
        self._inner.observe(agent, about, kept=kept)

    async def post_to_app(self, topic: str, body: dict[str, Any]) -> None:
        await self._post(topic, body)
