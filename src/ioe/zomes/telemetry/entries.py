"""Entry types of the telemetry zome.

Values are integers in the point's unit with a scale in its name, so nothing signed is a float:
``power_mw`` (milliwatts), ``energy_mwh`` (cumulative milliwatt-hours), ``voltage_mv``,
``temperature_mc`` (milli-°C), ``soc_ppm`` and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SAMPLES_PER_BATCH = 3600
MAX_POINTS_PER_SAMPLE = 32
MAX_POINT_NAME = 32


@dataclass(frozen=True, slots=True)
class Sample:
    at_us: int
    values: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Samples taken by the authoring device, oldest first."""

    samples: list[Sample]
