"""The code this release runs for apps installed from the store, and their app networks.

The app store room (:mod:`ioe.appstore.service`) decides which installations run on this node;
this module does what that takes on the node: it makes the app cell and joins its network
(:meth:`InstalledApps.join`), and starts the app's own code where this release has some for
that app id (:data:`LAUNCHERS`), behind a :class:`~ioe.appstore.granted.GrantedAppHost` that
holds it to the capabilities the installation granted. An app with no code here still runs its
network: its members' notes are shared (``ioe apps board``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ioe.apps.demand.service import DemandService, setup_from_settings
from ioe.apps.host import AppHost
from ioe.appstore.granted import GrantedAppHost
from ioe.appstore.host import RunningApp
from ioe.crypto.keys import KeyPair
from ioe.dht.service import DnaNetwork
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.errors import IoEError
from ioe.hashing import DnaHash, ExternalHash
from ioe.zomes.appnet.board import BOARD_ZOME

if TYPE_CHECKING:
    from ioe.node.runtime import Node

log = logging.getLogger(__name__)


class Launched(Protocol):
    async def close(self) -> None: ...


Launcher = Callable[[AppHost, dict[str, Any]], Awaitable[Launched]]


async def launch_demand(host: AppHost, settings: dict[str, Any]) -> Launched:
    """The Demand Management app on a plug (``docs/demand.md``), set up by its settings."""
    service = DemandService(host, setup_from_settings(settings))
    await service.start()
    return service


LAUNCHERS: dict[str, Launcher] = {"demand": launch_demand}
"""App ids whose code ships in this release (an app runs only where its device suits it)."""


class InstalledApps:
    """The app networks and app code of one node (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.launched: dict[ExternalHash, Launched] = {}

    async def join(
        self, dna: DnaDef, agent_index: int, proof_for: Callable[[KeyPair], bytes]
    ) -> tuple[Cell, DnaNetwork]:
        node = self._node
        conductor = node.conductor
        keys = conductor.key_for(conductor.home_device, agent_index)
        cell = conductor.install_cell(
            dna, device=conductor.home_device, agent=agent_index, membrane_proof=proof_for(keys)
        )
        dht = node.dnas.get(dna.hash)
        if dht is None:
            dht = DnaNetwork(
                dna, conductor.db, node.network, clock=conductor.clock, config=node.config.dht
            )
            dht.add_cell(cell, conductor.membrane_proof(cell))
            cell.reader = dht.store
            node.dnas[dna.hash] = dht
            await dht.start()  # it offers its infos to the peers it is connected to
        return cell, dht

    async def leave(self, dna: DnaHash) -> None:
        dht = self._node.dnas.pop(dna, None)
        if dht is None:
            return
        with contextlib.suppress(Exception):
            await dht.depart()
        await dht.close()

    async def run(self, running: RunningApp) -> bool:
        """Start the app's code, where this release has some and the node has a device."""
        launcher = LAUNCHERS.get(running.manifest.app)
        if launcher is None or not self._node.app_host.has_device:
            return False  # no code here for it (or no device to run it on): its network runs

        async def post(topic: str, body: dict[str, Any]) -> None:
            self._node.call(
                running.cell, BOARD_ZOME, "post", {"topic": topic, "body": json.dumps(body)}
            )

        host = GrantedAppHost(
            self._node.app_host, running.manifest.app, running.installation.granted, post
        )
        try:
            settings = json.loads(running.installation.settings or "{}")
            self.launched[running.installation.id] = await launcher(host, settings)
        except (ValueError, OSError, IoEError) as exc:
            log.warning("app %s not started: %s", running.manifest.app, exc)
            self._node.signals.publish(
                {"type": "app_failed", "app": running.manifest.app, "reason": str(exc)}
            )
            return False
        return True

    async def stop(self, running: RunningApp) -> None:
        launched = self.launched.pop(running.installation.id, None)
        if launched is not None:
            await launched.close()

    async def close(self) -> None:
        for launched in self.launched.values():
            with contextlib.suppress(Exception):
                await launched.close()
        self.launched.clear()
