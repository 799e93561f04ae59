"""``ioe demo``: the book's smart plug, run for real on this machine's loopback.

Four nodes talk over libp2p (TCP + Noise on 127.0.0.1): a home owner's node, and three devices
of the home — a smart plug (a simulated pool pump behind it), the site meter and a PV inverter.

1. **Plug-in, discovery, enrollment.** Each device starts unenrolled, with a provisional key and
   a pairing code, and asks the peers it reaches to be enrolled. The owner's node lists it as
   pending; the owner enrolls it with its code; the device receives its seed and certificate and
   restarts as an enrolled member of the network (the same flow as ``ioe device plug-in`` and
   ``ioe owner enroll``).
2. **A community and an app from the store.** The owner founds the home's community, makes the
   plug a member, publishes the Demand Management app's manifest to the store (as its
   developer) and installs it into the community, granting what it asks: to see the plug's
   power and control its switch. The plug's node starts the app in the app's own network.
3. **Demand management.** The plug runs the app on real AEMO prices (NSW, January 2023,
   bundled), replayed fast from an hour before the recording's first price peak: it switches
   the pump off while the price peaks more than the threshold over its trailing average, and
   back on when the peak passes.
4. **Credits.** Each off-period is claimed from the site meter, which checks the claim and pays
   the demand-reduction credits with a countersigned ``reward`` transfer; both wallets show it.
5. **Verification.** At the end every chain is verified from genesis, and a copy of the plug's
   database with one flipped bit is shown to be caught.

The app's page is served by the plug's node; its address is printed at the start. The demo ends
after ``--duration`` seconds, or on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ioe.apps.demand.rule import PeakSettings, decide_all
from ioe.apps.demand.runner import DemandApp
from ioe.appstore.service import AppStoreError
from ioe.community.service import CommunityError
from ioe.conductor import DB_FILE, KEYSTORE_FILE, Conductor, known_dnas, open_database
from ioe.crypto.keystore import Unlock, create_device_key_file, write_keystore
from ioe.dht.service import DhtConfig
from ioe.drivers.registry import DriverOptions
from ioe.drivers.sim import ScenarioClock
from ioe.errors import ChainIntegrityError
from ioe.identity.device_account import DeviceAccount
from ioe.identity.service.enrollment import (
    DeviceEnrollment,
    EnrolledDeviceRole,
    OwnerEnrollment,
    PlugIn,
)
from ioe.market_data import PricePoint, bundled_prices
from ioe.market_data.opennem import price_csv_text
from ioe.net.mdns import NodeType
from ioe.node.plugin import SETTLE_S, pairing_code
from ioe.node.runtime import Node, NodeConfig
from ioe.services.device import DeviceSetup
from ioe.zomes.currency.ledger import format_mc

ZONE = "au/nsw/newtown/king-st/12"
REGION = "nsw1"
DEFAULT_SPEED = 600.0
"""Recorded 5-minute intervals replayed every half second."""
THRESHOLD_PCT = 30.0
SETTLE_WAIT_S = 30.0
"""How long the demo waits at the end for the site meter to pay what the plug claimed."""
LEAD_IN_S = 3600
"""The replay starts this long before the recording's first price peak."""
ENROLL_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class _Device:
    name: str
    dir_name: str
    node_type: NodeType
    sim: str


PLUG = _Device("Pool pump plug", "plug", NodeType.CONSUMPTION, "pump")
METER = _Device("Site meter", "meter", NodeType.MONITOR, "meter")
PV = _Device("Rooftop PV", "pv", NodeType.GENERATOR, "pv")


def run_demo(
    *,
    duration_s: float = 20.0,
    data_dir: Path | None = None,
    speed: float = DEFAULT_SPEED,
    out: Callable[[str], None] = print,
) -> int:
    # the devices' provisional nodes are gone after enrollment; libp2p logs every failed dial
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    owned_tmp = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="ioe-demo-")) if data_dir is None else data_dir
    try:
        summary = asyncio.run(_run(root, duration_s, speed, out))
    finally:
        if owned_tmp:
            shutil.rmtree(root, ignore_errors=True)
    out(json.dumps(summary))
    return 0 if summary["verified"] and summary["tamper_detected"] else 1


def _unlock(data_dir: Path) -> Unlock:
    """An account unlocked by a 0600 key file, as on an unattended gateway (made if absent)."""
    key_file = data_dir / "device.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        create_device_key_file(key_file)
    unlock = Unlock(key_file=key_file)
    if not (data_dir / KEYSTORE_FILE).exists():
        conductor, _mnemonic = Conductor.init(data_dir, unlock)
        conductor.close()
    return unlock


def replay_window(points: list[PricePoint], threshold_pct: float) -> list[PricePoint]:
    """The recording from :data:`LEAD_IN_S` before its sharpest peak: the interval the rule
    with ``threshold_pct`` switches off in whose price stands furthest above its threshold
    (all of the recording if it has no peak)."""
    interval_s = (points[1].end_us - points[0].end_us) // 1_000_000
    settings = PeakSettings(threshold_pct=threshold_pct)
    decisions = decide_all(settings, points, interval_s)
    peaks = [
        (d.price / d.threshold, i)
        for i, d in enumerate(decisions)
        if not d.on and d.threshold is not None and d.threshold > 0
    ]
    if not peaks:
        return points
    _, sharpest = max(peaks)
    first = sharpest
    while first > 0 and not decisions[first - 1].on:
        first -= 1
    lead = LEAD_IN_S // interval_s
    return points[max(0, first - lead) :]


async def _enroll(
    owner: Node, device: _Device, root: Path, dht: DhtConfig, out: Callable[[str], None]
) -> Unlock:
    """Plug ``device`` in and have the owner enroll it (nothing to do if it already is)."""
    data_dir = root / device.dir_name
    unlock = _unlock(data_dir)
    code = pairing_code(data_dir)
    owner_role = owner.enrollment
    assert isinstance(owner_role, OwnerEnrollment)
    with Conductor.open(data_dir, unlock) as conductor:
        if isinstance(conductor.account, DeviceAccount):
            return unlock

        def persist(account: DeviceAccount) -> None:
            write_keystore(data_dir / KEYSTORE_FILE, account.to_secrets(), unlock, overwrite=True)

        role = DeviceEnrollment(PlugIn(device.name, device.node_type.value, ZONE, code), persist)
        config = NodeConfig(dht=dht, bootstrap=(owner.network.listen_addrs()[0],))
        node = Node(conductor, config, enrollment=role)
        await node.start()
        try:
            provisional = conductor.owner_cell.agent.to_text()
            async with asyncio.timeout(ENROLL_TIMEOUT_S):
                while provisional not in {p["device"] for p in owner_role.pending_list()}:
                    await asyncio.sleep(0.05)
                out(f"  {device.name}: plugged in, pending at the owner's node")
                enrolled = await owner_role.enroll(provisional, code, zone=ZONE)
                await role.enrolled.wait()
            await asyncio.sleep(SETTLE_S)
            out(f"  {device.name}: enrolled as {enrolled['agent'][:20]}…")
        finally:
            await node.close()
    return unlock


async def _run(
    root: Path, duration_s: float, speed: float, out: Callable[[str], None]
) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    out(f"IoE demo: an owner and three devices on 127.0.0.1, data in {root}")
    dht = DhtConfig(gossip_interval_s=1.0)
    owner_unlock = _unlock(root / "home")
    stack = contextlib.AsyncExitStack()
    stats: dict[str, Any] = {}
    async with stack:
        owner_conductor = stack.enter_context(Conductor.open(root / "home", owner_unlock))
        owner = Node(owner_conductor, NodeConfig(dht=dht))
        await owner.start()
        stack.push_async_callback(owner.close)
        out(f"owner   {owner_conductor.owner_cell.agent.to_text()}")
        out("plug-in → discovery → enrollment:")
        unlocks = {}
        for device in (METER, PV, PLUG):
            unlocks[device] = await _enroll(owner, device, root, dht, out)
        bootstrap = (owner.network.listen_addrs()[0],)
        prices = replay_window(bundled_prices(REGION), THRESHOLD_PCT)
        prices_file = root / "prices.csv"
        prices_file.write_text(price_csv_text(prices), encoding="utf-8")
        # the simulated devices live in the replayed day (its sun, its fridge cycles), from the
        # moment the app's replay starts, at the replay's pace
        scenario = ScenarioClock(prices[0].end_us, speed)

        async def start(device: _Device, **extra: Any) -> Node:
            conductor = stack.enter_context(Conductor.open(root / device.dir_name, unlocks[device]))
            node = Node(
                conductor,
                NodeConfig(dht=dht, bootstrap=bootstrap),
                device=DeviceSetup(
                    DriverOptions(driver="sim", sim=device.sim, clock=scenario),
                    name=device.name,
                    interval_s=0.25,
                    batch_every_s=1.0,
                ),
                enrollment=EnrolledDeviceRole(device.node_type),
                **extra,
            )
            await node.start()
            stack.push_async_callback(node.close)
            return node

        meter = await start(METER, demand_rewards=True)
        pv = await start(PV)
        plug = await start(PLUG)
        settings = {
            "prices": str(prices_file),
            "speed": speed,
            "peak": {"threshold_pct": THRESHOLD_PCT},
            "rewarder": meter.conductor.owner_cell.agent.to_text(),
            "zone": ZONE,
        }
        app = await _install_demand(owner, plug, settings, out)
        scenario.start()  # the app's replay has begun: the devices' day moves with it
        out(f"the plug's page: {plug.api_url}/app/demand/#token={plug.token}")
        out(
            f"prices: AEMO NSW1, replayed from {prices_file.name} at {speed:g}x; the plug is"
            f" off while a price is more than {THRESHOLD_PCT:g} % over its trailing average"
        )
        stats = await _watch(
            app=app, plug=plug, meter=meter, pv=pv, duration_s=duration_s, stop=stop, out=out
        )
    stats.update(_verify(root, out))
    return stats


async def _install_demand(
    owner: Node, plug: Node, settings: dict[str, Any], out: Callable[[str], None]
) -> DemandApp:
    """Found the home's community with the plug in it, publish the demand app's manifest and
    install it there; the plug's app store starts it. Bounded by :data:`INSTALL_TIMEOUT_S`."""
    listed = await owner.communities.create("Home", ZONE)
    community = listed.charter.id.to_text()
    plug_agent = plug.conductor.owner_cell.agent.to_text()
    manifest = (resources.files("ioe.apps.demand") / "manifest.json").read_text()
    async with asyncio.timeout(INSTALL_TIMEOUT_S):
        while True:  # the plug's chain reaches the network once it runs
            try:
                await owner.communities.add_member(community, plug_agent, role="member")
                break
            except CommunityError:
                await asyncio.sleep(0.25)
        out(f"community {community[:20]}… 'Home': the plug is a member")
        listing = await owner.appstore.publish(manifest)
        out(f"the store lists {listing.manifest.name} {listing.manifest.app_version}")
        while True:  # the listing reaches its authorities
            try:
                installed = await owner.appstore.install(community, "demand", settings=settings)
                break
            except AppStoreError:
                await asyncio.sleep(0.25)
        granted = ", ".join(f"{g['access']} {g['point']}" for g in installed["granted"])
        out(f"installed into the community, granting: {granted}")
        while (app := plug.demand_app()) is None:
            await asyncio.sleep(0.1)
    out("the plug runs the app in its own network")
    return app


async def _watch(
    *,
    app: DemandApp,
    plug: Node,
    meter: Node,
    pv: Node,
    duration_s: float,
    stop: asyncio.Event,
    out: Callable[[str], None],
) -> dict[str, Any]:
    assert plug.device is not None
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(1.0, max(0.0, deadline - time.monotonic()))):
                await stop.wait()
        if time.monotonic() >= deadline or stop.is_set():
            await app.stop_deciding()  # the last tick and the totals below agree
        state = app.state()
        last = state["prices"][-1] if state["prices"] else None
        pv_power = (await pv.device.read()).get("power_w") if pv.device else None
        if last is None:
            out("  waiting for the first price")
            continue
        threshold = "—" if last["threshold"] is None else f"{last['threshold']:8.2f}"
        out(
            f"  {last['time'][11:16]}  price {last['price']:8.2f} $/MWh  threshold {threshold}"
            f"  plug {_plug_now(await plug.device.read())}"
            f"  PV {-(pv_power or 0) if isinstance(pv_power, int | float) else 0:5.0f} W out"
            f"  credits {state['credits']}"
        )
    await app.stop_deciding()
    if not stop.is_set():
        await _await_settled(app, SETTLE_WAIT_S, out)
    plug_balance = await _balance(plug)
    meter_balance = await _balance(meter)
    report = app.report()
    out(
        f"the plug was off {report['hours_off']:.2f} h of {report['intervals']} intervals,"
        f" avoided {report['kwh_avoided']:.3f} kWh, earned {report['credits']:.3f} credits"
        f" ({report['settled_credits']:.3f} paid by the site meter)"
    )
    out(f"wallets: plug {plug_balance}, site meter {meter_balance}")
    recorder = plug.device.recorder
    return {
        "batches": len(recorder.committed) if recorder else 0,
        "samples": recorder.samples_taken if recorder else 0,
        "intervals": report["intervals"],
        "off_intervals": report["off_intervals"],
        "credits_mc": report["credits_mc"],
        "settled_mc": report["settled_mc"],
        "plug_balance": plug_balance,
    }


def _plug_now(values: dict[str, Any]) -> str:
    """The plug's switch and power read at one moment (one device read), so an OFF plug never
    shows the power it drew before it was switched."""
    on = values.get("switch")
    power = values.get("power_w")
    watts = f"{power:6.1f} W" if isinstance(power, int | float) else "     ? W"
    return f"{'ON ' if on else 'OFF'} {watts}"


async def _await_settled(app: DemandApp, timeout_s: float, out: Callable[[str], None]) -> None:
    """Give the site meter a moment to pay for the off-periods that closed (claims,
    attestations and rewards go over the network; bounded)."""

    def unpaid() -> int:
        return sum(
            1
            for p in app.state()["off_periods"]
            if p["end"] and not p["settled"] and p["credits_mc"]
        )

    if not unpaid():
        return
    out(f"waiting up to {timeout_s:.0f} s for the site meter to pay {unpaid()} off-period(s)")
    await app.settle_closed()
    deadline = time.monotonic() + timeout_s
    while unpaid() and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        await app.settle_closed()


async def _balance(node: Node) -> str:
    balance = node.wallet.balance()
    return format_mc(balance.balance_mc, balance.symbol)


def _verify(root: Path, out: Callable[[str], None]) -> dict[str, Any]:
    records = chains = 0
    for name in ("home", PLUG.dir_name, METER.dir_name, PV.dir_name):
        with open_database(root / name, verify=False) as db:
            records += db.verify_all(known_dnas(db))
            chains += len(db.cells())
    out(f"verified {records} records on {chains} chains from genesis (signatures, links, rules)")

    tampered_dir = root / "tampered"
    tampered_dir.mkdir(exist_ok=True)
    with open_database(root / "plug", verify=False) as db:
        db.backup_to(tampered_dir / DB_FILE)
    with open_database(tampered_dir, verify=False) as db:
        db.flip_entry_bit()
    detected = False
    with open_database(tampered_dir, verify=False) as db:
        try:
            db.verify_all(known_dnas(db))
        except ChainIntegrityError as exc:
            detected = True
            out(f"one flipped bit in a stored reading is caught: {exc}")
    if not detected:
        out("a tampered reading was NOT detected")
    return {"verified": True, "records": records, "chains": chains, "tamper_detected": detected}
