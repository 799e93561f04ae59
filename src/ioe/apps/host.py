"""The app host port: everything a Smart Energy App may ask of the node it runs on.

An app (``ioe.apps.<name>``) is handed an :class:`AppHost` and nothing else: reading its
constructor tells what it can touch. The node implements the port (``ioe.node.app_host``); tests
implement it in memory. Apps never import ``ioe.node`` (``tests/test_rooms.py`` checks).

Records an app writes go on the chain of the agent it acts as; what a call cites that this node
lacks is fetched from the network first. Remote calls and services are gated by capability
grants like any zome call (``docs/capabilities.md``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ioe.encoding import Value
from ioe.hashing import ActionHash, AgentPubKey
from ioe.zomes.currency.value import ValueRules

Service = Callable[[str, Value, AgentPubKey], Awaitable[object]]
"""``service(function, payload, caller)``: what an app answers to other agents' remote calls."""


@dataclass(frozen=True, slots=True)
class FetchedRecord:
    """A record read from the network: who wrote it and its entry, decoded."""

    hash: ActionHash
    author: AgentPubKey
    value: object


@dataclass(frozen=True, slots=True)
class Paid:
    """A payment both chains committed."""

    action: ActionHash
    amount_mc: int


class AppHost(Protocol):
    """What an app may ask of its node (see the module docstring)."""

    @property
    def agent(self) -> AgentPubKey:
        """The agent the app acts as."""
        ...

    @property
    def has_device(self) -> bool:
        """Whether the node bridges a device (a plug, an air conditioner, ...)."""
        ...

    async def read_device(self) -> dict[str, Value]:
        """The device's current values by canonical point name."""
        ...

    async def write_device(self, point: str, value: Value) -> None:
        """Set a control point (checked by the driver: ``PointError`` if out of range)."""
        ...

    def get_setting(self, key: str) -> Value | None:
        """A value the app kept (None if never set); keys are ``apps.<name>.<what>``."""
        ...

    def put_setting(self, key: str, value: Value) -> None:
        """Keep a value across restarts (written durably before this returns)."""
        ...

    async def call_zome(self, zome: str, function: str, payload: object = None) -> object:
        """Call a zome function as :attr:`agent` (its writes are published)."""
        ...

    async def fetch_record(self, action: ActionHash) -> FetchedRecord | None:
        """A record by its action hash, from here or the network (None: not to be had)."""
        ...

    async def wait_published(self, actions: Sequence[ActionHash], timeout_s: float) -> bool:
        """Wait until the authorities hold these records of ours; False on timeout."""
        ...

    async def remote_call(
        self, agent: AgentPubKey, zome: str, function: str, payload: Value, timeout_s: float
    ) -> object:
        """Call another agent (under its grant); raises ``RemoteCallError``/``NetworkError``."""
        ...

    def serve(self, name: str, functions: Sequence[str], service: Service) -> None:
        """Answer remote calls of ``name.<function>`` from any member (an unrestricted grant
        of those functions is kept on :attr:`agent`'s chain)."""
        ...

    def currency_symbol(self) -> str:
        """The unit's symbol in the network's currency settings."""
        ...

    def value_rules(self) -> ValueRules:
        """The rules the network values energy by (its core DNA's ``value`` property): the
        rules every reward is paid and validated by, so an app that estimates a reward agrees
        with what is paid."""
        ...

    async def balance_mc(self) -> int:
        """:attr:`agent`'s wallet balance in milli-credits (what rewards are paid into);
        ``IoEError`` when it cannot be read (no currency here, or not granted to the app)."""
        ...

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
        """Pay in the currency (``None``: the amount the rules give for ``terms``)."""
        ...

    def signal(self, zome: str, name: str, payload: dict[str, Any]) -> None:
        """Tell local listeners (the app's page over the node's signal stream)."""
        ...

    def observe(self, agent: AgentPubKey, about: ActionHash, *, kept: bool) -> None:
        """Record in this node's reputation whether ``agent`` kept what ``about`` claimed."""
        ...

    async def post_to_app(self, topic: str, body: dict[str, Any]) -> None:
        """Post a note (a JSON object) under ``topic`` to the members of the app network the
        app runs in, when it was installed into a community from the store; nothing happens
        for an app started by hand, which has no app network (``docs/apps.md``)."""
        ...
