"""Entry types of the telemetry zome.

Values are integers in the point's unit with a scale in its name, so nothing signed is a float:
``power_mw`` (milliwatts), ``energy_mwh`` (cumulative milliwatt-hours), ``voltage_mv``,
``temperature_mc`` (milli-°C), ``soc_ppm`` and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ioe.hashing import ActionHash, AgentPubKey

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


@dataclass(frozen=True, slots=True)
class Attestation:
    """A monitor's (a meter's) check of another device's reading batch over a time window.

    ``claimed_mwh`` is the energy the batch itself shows in the window (its ``power_mw``
    integrated, see :func:`~ioe.zomes.telemetry.validation.window_energy_mwh`);
    ``measured_mwh`` is what the monitor measured over the same window. Both are signed like
    power: positive = import/consumption, negative = export/generation. ``agrees`` says whether
    they match within the DNA's tolerance; validation recomputes both ``claimed_mwh`` and
    ``agrees``, so neither can be made up.
    """

    subject: AgentPubKey
    batch: ActionHash
    start_us: int
    end_us: int
    measured_mwh: int
    claimed_mwh: int
    agrees: bool
