"""Real data shipped with the package: a week of Australian market series (see ATTRIBUTION.md).

Simulated devices follow these so demos and tests see real shapes: rooftop solar for a PV
inverter, outdoor temperature for an air conditioner's room, price and demand for markets::

    solar = load_series("nsw1", "solar_rooftop")
    solar.at(now_us)          # MW, linearly interpolated

:meth:`Series.at` accepts any time: the series repeats with a period of whole days (a week for
most series), so a simulation run today follows the recorded week at the same time of day; a
gap between the last sample and the start of the next period is bridged linearly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["REGIONS", "SERIES", "Series", "load_series"]

REGIONS = ("nsw1", "sa1")
SERIES = ("solar_rooftop", "temperature", "price", "demand")
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class Series:
    """Evenly spaced samples of one quantity; timestamps in µs since the Unix epoch (UTC)."""

    region: str
    name: str
    unit: str
    start_us: int
    interval_us: int
    values: tuple[float, ...]
    utc_offset_s: int = 0

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a series needs at least one value")
        if self.interval_us <= 0:
            raise ValueError("interval must be positive")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def timestamps_us(self) -> tuple[int, ...]:
        return tuple(self.start_us + i * self.interval_us for i in range(len(self.values)))

    @property
    def end_us(self) -> int:
        """Timestamp of the last sample."""
        return self.start_us + (len(self.values) - 1) * self.interval_us

    @property
    def period_us(self) -> int:
        """The span, rounded up to whole days (at least one), after which :meth:`at` repeats.

        A week of samples with both ends included (11:30 to 11:30) repeats every seven days:
        its last sample then stands at the start of the next period."""
        span = self.end_us - self.start_us
        return max(-(-span // DAY_US), 1) * DAY_US

    def peak(self) -> float:
        return max(self.values)

    def at(self, t_us: int) -> float:
        """The value at ``t_us``, linearly interpolated, repeating every :attr:`period_us`."""
        offset = (t_us - self.start_us) % self.period_us
        last_offset = self.end_us - self.start_us
        if offset >= last_offset:  # in the gap before the next period: bridge to the first value
            gap = self.period_us - last_offset
            fraction = (offset - last_offset) / gap
            return self.values[-1] + (self.values[0] - self.values[-1]) * fraction
        index = offset // self.interval_us
        fraction = (offset - index * self.interval_us) / self.interval_us
        low, high = self.values[index], self.values[index + 1]
        return low + (high - low) * fraction

    def local_hour(self, t_us: int) -> float:
        """Hour of the day (0–24) at ``t_us`` on the source's clock (NEM time for AEMO data)."""
        seconds = (t_us // 1_000_000 + self.utc_offset_s) % 86_400
        return seconds / 3600

    def index_of(self, t_us: int) -> int:
        """The index of the last sample at or before ``t_us`` (clamped to the series)."""
        return min(max((t_us - self.start_us) // self.interval_us, 0), len(self.values) - 1)


@cache
def _region(region: str) -> dict[str, object]:
    key = region.lower()
    if key not in REGIONS:
        raise KeyError(f"no bundled data for region {region!r} (have: {', '.join(REGIONS)})")
    text = resources.files(__name__).joinpath(f"nem_{key}.json").read_text(encoding="utf-8")
    data: dict[str, object] = json.loads(text)
    return data


@cache
def load_series(region: str, name: str) -> Series:
    """One bundled series, e.g. ``load_series("nsw1", "solar_rooftop")``."""
    data = _region(region)
    series = data["series"]
    assert isinstance(series, dict)
    item = series.get(name)
    if item is None:
        raise KeyError(f"region {region!r} has no series {name!r} (have: {', '.join(series)})")
    offset = data["utc_offset_s"]
    assert isinstance(offset, int)
    return Series(
        region=str(data["region"]),
        name=name,
        unit=str(item["unit"]),
        start_us=int(item["start_us"]),
        interval_us=int(item["interval_s"]) * 1_000_000,
        values=tuple(float(v) for v in item["values"]),
        utc_offset_s=offset,
    )
