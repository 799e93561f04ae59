"""The identity room's port: what its services may ask of the node they run on.

The node (``ioe.node.runtime``) implements it and hands itself to the room's services; they
never import the node. Beside the conductor, the network and the DNA networks, the port carries
the room's own services as the node assembled them (an owner's or a device's enrollment role,
transfers, rotation, keyset signing, reputation), so each can reach the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from ioe.conductor import Conductor
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell
from ioe.errors import IoEError
from ioe.hashing import DnaHash
from ioe.net.interface import Network, PeerId
from ioe.services.signals import SignalHub

if TYPE_CHECKING:
    from ioe.identity.service.enrollment import EnrollmentRole
    from ioe.identity.service.keyset_signing import KeysetSigning
    from ioe.identity.service.reputation import NodeReputation
    from ioe.identity.service.rotation import RotationService
    from ioe.identity.service.transfer import TransferService


class IdentityHost(Protocol):
    """What the identity room's services use of their node (see the module docstring)."""

    @property
    def conductor(self) -> Conductor: ...

    @property
    def network(self) -> Network: ...

    @property
    def signals(self) -> SignalHub: ...

    @property
    def dnas(self) -> Mapping[DnaHash, DnaNetwork]: ...

    @property
    def stopping(self) -> asyncio.Event:
        """Set to stop the node (a device restarts as its new self after a transfer)."""
        ...

    @property
    def api_url(self) -> str: ...

    def core_cell(self) -> Cell:
        """The owner agent's cell of the core DNA (``IoEError`` if the node has none)."""
        ...

    def dht_for(self, cell: Cell) -> DnaNetwork: ...

    def call(self, cell: Cell, zome: str, function: str, payload: object = None) -> object:
        """A zome call whose writes are published."""
        ...

    @property
    def enrollment(self) -> EnrollmentRole: ...

    @property
    def transfers(self) -> TransferService: ...

    @property
    def rotation(self) -> RotationService: ...

    @property
    def keyset_signing(self) -> KeysetSigning: ...

    @property
    def reputation(self) -> NodeReputation: ...


class ProtocolService:
    """A service of this room that answers one protocol between nodes while its node runs
    (:meth:`start` to :meth:`close`); :attr:`node` raises until it is started."""

    PROTOCOL: str
    NAME: str

    def __init__(self) -> None:
        self._node: IdentityHost | None = None
        self._lock = asyncio.Lock()

    @property
    def node(self) -> IdentityHost:
        if self._node is None:
            raise IoEError(f"the {self.NAME} service is not running")
        return self._node

    async def start(self, node: IdentityHost) -> None:
        self._node = node
        node.network.set_handler(self.PROTOCOL, self._handle)

    async def close(self) -> None:
        self._node = None

    def _now(self) -> int:
        return self.node.conductor.clock()

    async def _handle(self, peer: PeerId, data: bytes) -> bytes:
        raise NotImplementedError


IDENTITY_HOST: web.AppKey[IdentityHost] = web.AppKey("identity_host")
"""Where the room's HTTP handlers find their host (set by :func:`add_host`)."""


def add_host(app: web.Application, host: IdentityHost) -> None:
    app[IDENTITY_HOST] = host
