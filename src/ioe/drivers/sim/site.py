"""A ready-made household for demos: appliances, an AC, rooftop PV, a battery and an EV behind
one smart meter, all following the bundled data of one region."""

from __future__ import annotations

from ioe.data import load_series
from ioe.drivers.sim.aircon import SimAirConditioner
from ioe.drivers.sim.base import SimDevice
from ioe.drivers.sim.battery import SimBattery
from ioe.drivers.sim.ev import SimEv, SimEvCharger
from ioe.drivers.sim.meter import SimMeter
from ioe.drivers.sim.plug import SimPlug
from ioe.drivers.sim.pv import SimPvInverter


def example_site(start_us: int, *, region: str = "nsw1") -> dict[str, SimDevice]:
    """Devices by name; ``"meter"`` nets all the others."""
    outdoor = load_series(region, "temperature")
    local = outdoor.utc_offset_s
    devices: dict[str, SimDevice] = {
        "fridge": SimPlug("fridge", start_us=start_us, utc_offset_s=local),
        "kettle": SimPlug("kettle", start_us=start_us, utc_offset_s=local),
        "tv": SimPlug("tv", start_us=start_us, utc_offset_s=local),
        "aircon": SimAirConditioner(outdoor.at, start_us=start_us),
        "pv": SimPvInverter(6.6, start_us=start_us, region=region),
        "battery": SimBattery(start_us=start_us, capacity_wh=13_500.0),
        "ev_charger": SimEvCharger(start_us=start_us, ev=SimEv()),
    }
    devices["meter"] = SimMeter(list(devices.values()), start_us=start_us)
    return devices
