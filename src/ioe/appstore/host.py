"""The app store room's port: what its services may ask of the node they run on.

Beside what the identity room may ask (:class:`~ioe.identity.service.host.IdentityHost`), the
store pays subscriptions through the node's wallet, reads communities through the node's
community service, and starts and stops app networks and the apps that run in them. The node
(``ioe.node.runtime``) implements it; the room never imports the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ioe.community.service import CommunityService
from ioe.crypto.keys import KeyPair
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.hashing import ActionHash, DnaHash
from ioe.identity.service.host import IdentityHost
from ioe.wallet.service import Wallet
from ioe.zomes.appstore.entries import AppManifest, Installation


@dataclass(frozen=True, slots=True)
class RunningApp:
    """An installed app running on this node: its installation, manifest and app cell."""

    installation_at: ActionHash
    installation: Installation
    manifest: AppManifest
    cell: Cell

    @property
    def dna_hash(self) -> DnaHash:
        return self.cell.dna.hash


class AppStoreHost(IdentityHost, Protocol):
    """What the app store room uses of its node (see the module docstring)."""

    @property
    def wallet(self) -> Wallet: ...

    @property
    def communities(self) -> CommunityService: ...

    async def join_app_network(
        self, dna: DnaDef, agent_index: int, proof_for: Callable[[KeyPair], bytes]
    ) -> tuple[Cell, DnaNetwork]:
        """Run ``dna`` under this node's app key ``agent_index`` (its cell is made once, with
        the membrane proof ``proof_for(app keys)`` in its genesis) and join its network."""
        ...

    async def leave_app_network(self, dna: DnaHash) -> None:
        """Say goodbye to that network and stop serving it (the chain stays on disk)."""
        ...

    async def run_app(self, running: RunningApp) -> bool:
        """Start what this node does for the app: its code, if this release has some for it
        and this node suits it (the demand app needs a device). Whether any started."""
        ...

    async def stop_app(self, running: RunningApp) -> None: ...
