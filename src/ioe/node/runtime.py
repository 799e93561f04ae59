"""The node: a conductor's cells, the network, discovery, the DHT workflows and the HTTP API.

``Node.run()`` is the whole lifetime: start everything, write ``node.json``, wait for the stop
signal, shut down in reverse order. Zome calls made through the node tell the DHT to publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ioe.apps.demand.rewarder import DemandRewarder
from ioe.apps.demand.runner import DemandApp
from ioe.apps.demand.service import DemandService, DemandSetup
from ioe.appstore.host import RunningApp
from ioe.appstore.service import AppStore
from ioe.community.access import CommunityAccess
from ioe.community.service import CommunityService
from ioe.conductor import Conductor
from ioe.crypto.keys import KeyPair
from ioe.dht.service import DhtConfig, DnaNetwork
from ioe.dnas import CORE_DNA_NAME, is_app_dna
from ioe.engine.cell import Cell
from ioe.engine.dna import DnaDef
from ioe.errors import IoEError
from ioe.faults import NO_FAULTS, Faults
from ioe.hashing import AgentPubKey, DnaHash
from ioe.identity.certificate import may_control
from ioe.identity.device_account import DeviceAccount
from ioe.identity.service.enrollment import EnrollmentRole, OwnerEnrollment
from ioe.identity.service.keyset_signing import KeysetSigning
from ioe.identity.service.reputation import NodeReputation
from ioe.identity.service.rotation import RotationService
from ioe.identity.service.transfer import TransferService
from ioe.net.dialling import BackoffPolicy
from ioe.net.interface import Network, NetworkError, PeerId
from ioe.net.mdns import Enrollment, IoeServiceRecord, MdnsDiscovery, dial_discovered
from ioe.net.p2p import P2PConfig, P2PNetwork
from ioe.node.api import start_api
from ioe.node.app_host import NodeAppHost
from ioe.node.installed_apps import InstalledApps
from ioe.node.nodefile import NodeFile, remove_node_file, write_node_file
from ioe.services.countersign import Countersigner
from ioe.services.device import DeviceBridge, DeviceSetup
from ioe.services.remote import RemoteCalls
from ioe.services.signals import SignalHub
from ioe.wallet.service import Wallet

log = logging.getLogger(__name__)

BOOTSTRAP_RETRY_S = 1.0
MEMBER_PEERS_S = 1.0
BOOTSTRAP_BACKOFF = BackoffPolicy(first_s=BOOTSTRAP_RETRY_S, cap_s=60.0)
"""A bootstrap address that does not answer is dialled again after 1, 2, 4 … at most 60 s."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    mdns_interfaces: tuple[str, ...] | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 0
    dht: DhtConfig = field(default_factory=DhtConfig)
    countersign_accept: tuple[str, ...] = ()
    """Entry types this node co-signs when another agent asks (apps set their own policies)."""


def listen_multiaddr(host_port: str) -> str:
    """``HOST:PORT`` (``127.0.0.1:0``, ``[::1]:4001``) as a TCP multiaddr."""
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--listen takes HOST:PORT, not {host_port!r}")
    host = host.strip("[]")
    family = "ip6" if ":" in host else "ip4"
    return f"/{family}/{host}/tcp/{int(port)}"


class Node:
    def __init__(
        self,
        conductor: Conductor,
        config: NodeConfig,
        *,
        network: Network | None = None,
        device: DeviceSetup | None = None,
        enrollment: EnrollmentRole | None = None,
        demand: DemandSetup | None = None,
        demand_rewards: bool = False,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.conductor = conductor
        self.faults = faults
        """Where tests break this node on purpose (:mod:`ioe.faults`); none by default."""
        self.device = (
            DeviceBridge(device, conductor.owner_cell, conductor.clock) if device else None
        )
        self.config = config
        seed = conductor.owner_cell.keys.seed()
        self.network = network or P2PNetwork(seed, P2PConfig(listen=config.listen))
        self.dnas: dict[DnaHash, DnaNetwork] = {}
        self.countersigners: dict[DnaHash, Countersigner] = {}
        self.mdns: MdnsDiscovery | None = None
        self.api_url = ""
        self.token = secrets.token_urlsafe(24)
        self._tasks: list[asyncio.Task[None]] = []
        self._api_runner: Any = None
        self.stopping = asyncio.Event()
        self.signals = SignalHub()
        self.remote = RemoteCalls(conductor.clock, self.signals)
        self.reputation = NodeReputation(conductor.db, conductor.clock)
        if isinstance(conductor.account, DeviceAccount):  # its certificate says who commands it
            cert = conductor.account.certificate
            self.remote.controllers = lambda caller: may_control(cert.policy, caller, cert.owner)
        self.enrollment = enrollment if enrollment is not None else OwnerEnrollment()
        self.transfers = TransferService()
        self.rotation = RotationService()  # key rotation; restarts through self.transfers
        self.keyset_signing = KeysetSigning(self)  # officers' approvals (/ioe/keyset-sign/1)
        self.wallet = Wallet(self, faults, vet=self.reputation.refusal)
        self.communities = CommunityService(self)  # founding and finding communities
        # a device's memberships become grants on its chain (none on an owner's node)
        self.community_access = (
            CommunityAccess(self)
            if self.device is not None and isinstance(conductor.account, DeviceAccount)
            else None
        )
        self.app_host = NodeAppHost(self)  # all the node's apps may ask of it
        self.installed_apps = InstalledApps(self)  # app networks, and the code of known apps
        self.appstore = AppStore(self)  # publishing, installing, paying and running apps
        self.demand = DemandService(self.app_host, demand) if demand is not None else None
        self.rewarder = DemandRewarder(self.app_host) if demand_rewards else None
        if self.device is not None:
            self.remote.services["device"] = self.device.serve
            self.device.on_remote_write = self._device_written

    async def start(self) -> None:
        await self.network.start()
        # A provisional (unenrolled) device is no member of any DNA network: it only speaks the
        # enrollment protocol until its owner provisions it.
        member = self.enrollment.enrollment is not Enrollment.UNENROLLED
        for cell in self.conductor.cells() if member else ():
            if is_app_dna(cell.dna):
                continue  # an app network runs only while the app store says so
            dht = self.dnas.get(cell.dna.hash)
            if dht is None:
                dht = DnaNetwork(
                    cell.dna,
                    self.conductor.db,
                    self.network,
                    clock=self.conductor.clock,
                    config=self.config.dht,
                )
                dht.on_presence = self._presence
                dht.on_blocked = self.reputation.warrant_upheld
                self.dnas[cell.dna.hash] = dht
            dht.add_cell(cell, self.conductor.membrane_proof(cell))
            cell.reader = dht.store  # what the cell cites from others: held or fetched here
        for dht in self.dnas.values():
            cells = [c for c in self.conductor.cells() if c.dna.hash == dht.dna.hash]
            # Countersigning locks left by a previous run are restored first: nothing else may
            # write to a locked chain, and remote calls are only served after this.
            self.countersigners[dht.dna.hash] = Countersigner(
                dht, cells, clock=self.conductor.clock, faults=self.faults
            )
            self.countersigners[dht.dna.hash].accept_types = frozenset(
                self.config.countersign_accept
            )
            self.countersigners[dht.dna.hash].on_finish = self.reputation.session_finished
            self.countersigners[dht.dna.hash].on_response = self.reputation.response_received
            await self.countersigners[dht.dna.hash].start()
            self.remote.attach(dht, cells)
            await dht.start()
        self.wallet.start()  # payment policy and ledger_head grant, after lock recovery
        self._tasks.append(asyncio.create_task(self._keep_member_peers(), name="member peers"))
        for addr in self.config.bootstrap:
            self._tasks.append(asyncio.create_task(self._keep_dialling(addr), name="bootstrap"))
        if self.device is not None:
            await self.device.start()
        if self.community_access is not None and self.dnas:
            self.community_access.start()
        if self.dnas:
            self.communities.start()
            self.appstore.start()
        if self.rewarder is not None:
            self.rewarder.start()
        if self.demand is not None:
            await self.demand.start()
        self.keyset_signing.start()
        await self.enrollment.start(self)
        await self.transfers.start(self)
        await self.rotation.start(self)
        if self.config.mdns:
            self.mdns = MdnsDiscovery(
                self.network.peer_id,
                self.network.listen_addrs(),
                IoeServiceRecord(
                    self.enrollment.node_type, self.enrollment.enrollment, tuple(self.dnas)
                ),
                interfaces=list(self.config.mdns_interfaces)
                if self.config.mdns_interfaces
                else None,
                on_peer=dial_discovered(self.network),
            )
            await self.mdns.start()
        self._api_runner, self.api_url = await start_api(
            self, self.config.api_host, self.config.api_port
        )
        write_node_file(
            self.conductor.data_dir,
            NodeFile(
                peer_id=self.network.peer_id,
                addrs=self.network.listen_addrs(),
                api=self.api_url,
                token=self.token,
                pid=os.getpid(),
            ),
        )

    async def close(self) -> None:
        remove_node_file(self.conductor.data_dir, self.token)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        if self.mdns is not None:
            await self.mdns.close()
        if self.demand is not None:
            await self.demand.close()
        await self.app_host.close()
        await self.appstore.close()
        await self.installed_apps.close()
        await self.communities.close()
        if self.community_access is not None:
            await self.community_access.close()
        if self.device is not None:
            await self.device.close()
        await self.rotation.close()
        await self.transfers.close()
        await self.enrollment.close()
        await self.remote.close()
        for signer in self.countersigners.values():
            await signer.close()
        for dht in self.dnas.values():
            with contextlib.suppress(Exception):  # leaving politely must not stop the close
                await dht.depart()
            await dht.close()
        await self.network.close()

    async def run(self) -> None:
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            await self.close()

    def member_peers(self) -> frozenset[PeerId]:
        """The peers of every member of this node's networks (and this node's own)."""
        peers = {self.network.peer_id}
        for dht in list(self.dnas.values()):
            peers.update(PeerId(info.peer_id) for info in dht.members().values())
        return frozenset(peers)

    async def _keep_member_peers(self) -> None:
        """Tell the network who the members' peers are, every :data:`MEMBER_PEERS_S` (only
        they may send large frames on streams they open)."""
        while True:
            self.network.set_member_peers(self.member_peers())
            await asyncio.sleep(MEMBER_PEERS_S)

    async def _keep_dialling(self, addr: str) -> None:
        """Dial a bootstrap address until it answers, then again whenever we have no peers;
        while it does not answer, less and less often (:data:`BOOTSTRAP_BACKOFF`)."""
        failures = 0
        while True:
            if self.network.connected_peers():
                failures = 0
            else:
                try:
                    await self.network.connect(addr)
                    failures = 0
                except NetworkError as exc:
                    failures += 1
                    wait = BOOTSTRAP_BACKOFF.delay(failures)
                    log.info(
                        "bootstrap %s not reachable (%d failed dial(s)); next in %.0f s: %s",
                        addr,
                        failures,
                        wait,
                        exc,
                    )
            await asyncio.sleep(max(BOOTSTRAP_RETRY_S, BOOTSTRAP_BACKOFF.delay(failures)))

    # ------------------------------------------------------------------------------ calls

    def core_cell(self) -> Cell:
        """The owner agent's cell of the core DNA (identity, telemetry, the currency)."""
        owner = self.conductor.owner_cell.agent
        for cell in self.conductor.cells():
            if cell.dna.name == CORE_DNA_NAME and cell.agent == owner:
                return cell
        raise IoEError("this node has no core cell")

    def dht_for(self, cell: Cell) -> DnaNetwork:
        return self.dnas[cell.dna.hash]

    def call(self, cell: Cell, zome: str, function: str, payload: object = None) -> object:
        result = self.conductor.call(cell, zome, function, payload)
        if cell.dna.hash in self.dnas:  # a provisional device's chain is not published
            self.dht_for(cell).notify_commit()
        return result

    def agents(self) -> Sequence[Cell]:
        return self.conductor.cells()

    # ------------------------------------------------------------------------------ apps

    def demand_app(self) -> DemandApp | None:
        """The Demand Management app running here: started by hand (``--demand-prices``) or
        installed into the device's community from the store."""
        if self.demand is not None and self.demand.app is not None:
            return self.demand.app
        for launched in self.installed_apps.launched.values():
            if isinstance(launched, DemandService) and launched.app is not None:
                return launched.app
        return None

    async def join_app_network(
        self, dna: DnaDef, agent_index: int, proof_for: Callable[[KeyPair], bytes]
    ) -> tuple[Cell, DnaNetwork]:
        return await self.installed_apps.join(dna, agent_index, proof_for)

    async def leave_app_network(self, dna: DnaHash) -> None:
        await self.installed_apps.leave(dna)

    async def run_app(self, running: RunningApp) -> bool:
        return await self.installed_apps.run(running)

    async def stop_app(self, running: RunningApp) -> None:
        await self.installed_apps.stop(running)

    def _presence(self, agent: AgentPubKey, present: bool) -> None:
        """A member joined or left (its own signed word, or its node stopped or started
        answering): a ``presence`` event on the signal stream, for the owner's apps and pages."""
        self.signals.publish({"type": "presence", "agent": agent.to_text(), "present": present})
        if isinstance(self.enrollment, OwnerEnrollment):  # the owner's own devices, singled out
            self.enrollment.device_presence(agent)
        self.communities.presence(agent, present)  # the manager's members and zones

    def _device_written(self, point: str, value: object, caller: AgentPubKey) -> None:
        self.signals.publish(
            {"type": "device_write", "point": point, "value": value, "by": caller.to_text()}
        )
