"""Convert OpenNEM 7-day region exports into the compact series shipped in ``src/ioe/data``.

Run from the repository root::

    .venv/bin/python scripts/import_opennem.py /work/shared/data/opennem-nem-7d

Only what the simulated devices and demos need is kept: per region, rooftop solar, outdoor
temperature, price and demand. Each region becomes one JSON file::

    {"region": "NSW1", "network": "NEM", "utc_offset_s": 36000,
     "series": {"price": {"unit": "AUD/MWh", "start_us": ..., "interval_s": 300,
                          "values": [...]}, ...}}

Timestamps are absolute (µs since the Unix epoch); ``utc_offset_s`` is the offset of the
source's own clock (NEM market time, AEST, UTC+10), kept for time-of-day profiles.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "ioe" / "data"
REGIONS = ("nsw1", "sa1")
WANTED = {  # our name -> suffix of the OpenNEM series id
    "solar_rooftop": "fuel_tech.solar_rooftop.power",
    "temperature": "temperature",
    "price": "price",
    "demand": "demand",
}
INTERVALS_S = {"5m": 300, "30m": 1800, "1h": 3600}


def convert(source: dict[str, object]) -> dict[str, object]:
    region = str(source["region"])
    by_id = {str(s["id"]): s for s in source["data"]}  # type: ignore[attr-defined]
    prefix = f"au.{str(source['network']).lower()}.{region.lower()}."
    series: dict[str, object] = {}
    offsets: set[int] = set()
    for name, suffix in WANTED.items():
        item = by_id.get(prefix + suffix)
        if item is None:
            raise SystemExit(f"{region}: no series {prefix + suffix}")
        history = item["history"]
        start = datetime.fromisoformat(history["start"])
        offset = start.utcoffset()
        assert offset is not None
        offsets.add(int(offset.total_seconds()))
        values = history["data"]
        if any(v is None for v in values):
            raise SystemExit(f"{region}/{name}: gaps in the source are not supported")
        series[name] = {
            "unit": item["units"],
            "start_us": int(start.timestamp()) * 1_000_000,
            "interval_s": INTERVALS_S[history["interval"]],
            "values": values,
        }
    if len(offsets) != 1:
        raise SystemExit(f"{region}: series disagree on their UTC offset")
    return {
        "region": region,
        "network": str(source["network"]).upper(),
        "utc_offset_s": offsets.pop(),
        "source": "OpenNEM (MIT licence); market data published by AEMO",
        "series": series,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", type=Path, help="folder holding nem_<region>_7d.json")
    parser.add_argument("--regions", nargs="+", default=list(REGIONS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for region in args.regions:
        path = args.source_dir / f"nem_{region.lower()}_7d.json"
        converted = convert(json.loads(path.read_text()))
        target = args.out / f"nem_{region.lower()}.json"
        target.write_text(json.dumps(converted, separators=(",", ":")) + "\n")
        print(f"{path.name} -> {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
