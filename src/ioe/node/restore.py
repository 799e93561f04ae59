"""Restoring a recovered owner's chains before its node starts (``ioe recover``, then
``ioe node run``): the node joins the network just long enough for
:func:`ioe.identity.service.recovery.restore` to fetch its chains and find its devices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from ioe.conductor import Conductor
from ioe.dht.service import DnaNetwork
from ioe.hashing import DnaHash
from ioe.identity.service.recovery import (
    DEFAULT_RESTORE_TIMEOUT_S,
    POLL_S,
    RestoreReport,
    restore,
    restore_proof,
)
from ioe.net.interface import Network, NetworkError
from ioe.net.p2p import P2PConfig, P2PNetwork
from ioe.node.runtime import NodeConfig


async def restore_over_network(
    conductor: Conductor,
    config: NodeConfig,
    *,
    timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S,
    fresh: bool = False,
    network: Network | None = None,
) -> RestoreReport:
    """Join the network just long enough to restore (:func:`restore`): the node serves nothing
    and writes nothing else meanwhile; ``ioe node run`` starts the node afterwards."""
    net = network or P2PNetwork(conductor.owner_cell.keys.seed(), P2PConfig(listen=config.listen))
    await net.start()
    dhts: dict[DnaHash, DnaNetwork] = {}
    try:
        for cell in conductor.cells():
            dht = dhts.get(cell.dna.hash)
            if dht is None:
                dht = DnaNetwork(
                    cell.dna, conductor.db, net, clock=conductor.clock, config=config.dht
                )
                dhts[cell.dna.hash] = dht
            dht.add_cell(cell, restore_proof(conductor, cell))
        for dht in dhts.values():
            await dht.start()
        dialling = asyncio.create_task(_dial(net, config.bootstrap), name="restore-bootstrap")
        try:
            return await restore(conductor, dhts, timeout_s=timeout_s, fresh=fresh)
        finally:
            dialling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dialling
    finally:
        for dht in dhts.values():
            await dht.close()
        await net.close()


async def _dial(net: Network, addrs: Sequence[str]) -> None:
    """Dial the bootstrap addresses until one answers, and again whenever no peer is left."""
    while addrs:
        if not net.connected_peers():
            for addr in addrs:
                with contextlib.suppress(NetworkError):
                    await net.connect(addr)
        await asyncio.sleep(POLL_S)
