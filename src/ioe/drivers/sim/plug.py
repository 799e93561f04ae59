"""A smart plug with an appliance behind it, following a named daily load profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ioe.drivers.model import POINTS, DeviceDescription, PointValue
from ioe.drivers.sim.base import SimDevice
from ioe.vocabulary import DeviceType

PLUG_MAX_W = 3680.0  # 16 A at 230 V


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadProfile:
    """An appliance's power (W) as a function of the local time of day (seconds, 0–86400)."""

    name: str
    description: str
    power_w: Callable[[float], float]


def _between(seconds: float, start_h: float, end_h: float) -> bool:
    return start_h * 3600 <= seconds < end_h * 3600


def _fridge(seconds: float) -> float:
    if _between(seconds, 3.0, 3.0 + 20 / 60):  # daily defrost heater
        return 250.0
    phase = seconds % 2100.0  # a 35-minute compressor cycle, 12 minutes of it running
    if phase < 60.0:
        return 120.0  # start-up draw
    if phase < 720.0:
        return 95.0
    return 2.0


_KETTLE_TIMES_H = (6.75, 10.5, 13.0, 15.5, 19.5)


def _kettle(seconds: float) -> float:
    return 2200.0 if any(_between(seconds, h, h + 0.05) for h in _KETTLE_TIMES_H) else 0.0


def _tv(seconds: float) -> float:
    if _between(seconds, 6.5, 8.0) or _between(seconds, 18.0, 23.0):
        return 95.0
    return 0.5


PROFILES: Mapping[str, LoadProfile] = {
    p.name: p
    for p in (
        LoadProfile(
            name="fridge",
            description="compressor 12 min in every 35 (95 W), 20 min defrost at 03:00",
            power_w=_fridge,
        ),
        LoadProfile(
            name="kettle",
            description="2.2 kW for 3 minutes at 06:45, 10:30, 13:00, 15:30 and 19:30",
            power_w=_kettle,
        ),
        LoadProfile(
            name="pool_pump",
            description="a 1.1 kW pool pump, running steadily while it has power",
            power_w=lambda _seconds: 1100.0,
        ),
        LoadProfile(
            name="tv",
            description="95 W 06:30-08:00 and 18:00-23:00, 0.5 W standby",
            power_w=_tv,
        ),
    )
}


class SimPlug(SimDevice):
    """A relay and a power meter in front of one appliance."""

    def __init__(
        self,
        profile: str | LoadProfile = "fridge",
        *,
        start_us: int,
        utc_offset_s: int = 0,
        voltage_v: float = 230.0,
        switch: bool = True,
    ) -> None:
        description = DeviceDescription(
            device_type=DeviceType.CONSUMPTION,
            driver="sim",
            manufacturer="IoE simulation",
            model="smart plug",
            points=(
                POINTS["switch"],
                POINTS["power_w"].with_range(0, PLUG_MAX_W),
                POINTS["energy_wh"],
                POINTS["voltage_v"],
                POINTS["current_a"].with_range(0, 16),
            ),
        )
        super().__init__(description, start_us=start_us)
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"no load profile {profile!r} (have: {', '.join(PROFILES)})")
            profile = PROFILES[profile]
        self.profile = profile
        self.utc_offset_s = utc_offset_s
        self.voltage_v = voltage_v
        self.switch = switch

    def _load_w(self, t_us: int) -> float:
        seconds = (t_us / 1_000_000 + self.utc_offset_s) % 86_400
        return min(max(self.profile.power_w(seconds), 0.0), PLUG_MAX_W)

    @property
    def power_w(self) -> float:
        return self._load_w(self.now_us) if self.switch and self.supplied else 0.0

    def _advance(self, dt_s: float, end_us: int) -> None:
        self._count(self.power_w, dt_s)

    def values(self) -> dict[str, PointValue]:
        power = self.power_w
        return {
            "switch": self.switch,
            "power_w": power,
            "energy_wh": self.import_wh,
            "voltage_v": self.voltage_v if self.supplied else 0.0,
            "current_a": power / self.voltage_v,
        }

    def _apply(self, point: str, value: PointValue) -> None:
        self.switch = bool(value)
