"""``ioe device plug-in``, and ``ioe device run`` on a never-enrolled directory: an unenrolled
device that asks to be enrolled, then runs enrolled.

The data directory starts with a provisional identity (an owner-style keystore unlocked by the
0600 device key file, as ``ioe device run`` makes) and a pairing code in ``DIR/pairing-code``
(0600, made on first start from the OS's random bytes, reused after). The node runs
:class:`~ioe.identity.service.enrollment.DeviceEnrollment` until an owner provisions it: it speaks
only the enrollment protocol and is a member of no DNA network (no certificate, no membership). The
device seed and certificate then replace the provisional keystore, and the node restarts in-process
as the enrolled device (its agent joins the core DNA with the certificate as membrane proof).
An ownership transfer (:mod:`ioe.identity.service.transfer`) replaces the keystore the same way,
and the node restarts again, as the new owner's device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from ioe.apps.demand.service import DemandSetup
from ioe.conductor import KEYSTORE_FILE, Conductor
from ioe.crypto.keystore import Unlock, write_keystore
from ioe.identity.device_account import DeviceAccount
from ioe.identity.pairing import format_code, generate_code, normalise_code
from ioe.identity.service.enrollment import (
    DeviceEnrollment,
    EnrolledDeviceRole,
    EnrollmentRole,
    PlugIn,
)
from ioe.node.runtime import Node, NodeConfig
from ioe.services.device import DeviceSetup
from ioe.vocabulary import NodeType

PAIRING_CODE_FILE = "pairing-code"
SETTLE_S = 0.5
"""How long the device keeps its provisional node up after enrollment, so its reply is sent."""


def pairing_code(data_dir: Path) -> str:
    """The device's pairing code: read from ``DIR/pairing-code``, made there (0600) if absent."""
    path = data_dir / PAIRING_CODE_FILE
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(format_code(generate_code(os.urandom(7))) + "\n")
    return normalise_code(path.read_text())


def _announce(node: Node) -> None:
    line = {
        "peer_id": node.network.peer_id,
        "addrs": node.network.listen_addrs(),
        "api": node.api_url,
        "agent": node.conductor.owner_cell.agent.to_text(),
        "enrollment": node.enrollment.enrollment.value,
    }
    if node.demand is not None:
        line["page"] = f"{node.api_url}/app/demand/#token={node.token}"
    print(json.dumps(line), flush=True)


async def run_plug_in(
    data_dir: Path,
    unlock: Unlock,
    config: NodeConfig,
    plug_in: PlugIn,
    *,
    device: DeviceSetup | None = None,
    demand: DemandSetup | None = None,
    demand_rewards: bool = False,
) -> None:
    """Run until SIGINT/SIGTERM: unenrolled first, then (in the same process) enrolled. With
    ``device`` (``ioe device run``), the device is bridged in both phases: unenrolled, it
    reports to its own chain under the factory-default policy and joins no network."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def persist(account: DeviceAccount) -> None:
        write_keystore(data_dir / KEYSTORE_FILE, account.to_secrets(), unlock, overwrite=True)

    while not stop.is_set():
        with Conductor.open(data_dir, unlock) as conductor:
            enrolled = isinstance(conductor.account, DeviceAccount)
            role: EnrollmentRole
            if enrolled:
                role = EnrolledDeviceRole(NodeType(plug_in.device_type))
            else:
                role = DeviceEnrollment(plug_in, persist)
            node = Node(
                conductor,
                config,
                enrollment=role,
                device=device,
                demand=demand,
                demand_rewards=demand_rewards and enrolled,
            )
            node.transfers.persist = persist  # a transfer re-keys it: restart as the new agent
            await node.start()
            try:
                _announce(node)
                waits = [
                    asyncio.create_task(stop.wait()),
                    asyncio.create_task(node.transfers.adopted.wait()),
                ]
                if isinstance(role, DeviceEnrollment):
                    waits.append(asyncio.create_task(role.enrolled.wait()))
                _, left = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in left:
                    task.cancel()
                if not stop.is_set():
                    await asyncio.sleep(SETTLE_S)
            finally:
                await node.close()
