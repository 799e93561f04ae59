"""``ioe node blocked``: the agents this node blocks, and why (see docs/warrants.md).

Reads the data directory's database directly, so it works whether or not the node runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ioe.conductor import default_data_dir, open_database
from ioe.store.dht import blocked_agents


def blocked_list(data_dir: Path) -> list[dict[str, object]]:
    """One JSON-ready item per blocked agent (per DNA), oldest block first."""
    with open_database(data_dir, verify=False) as db:
        found = blocked_agents(db)
    return [
        {
            "agent": blocked.agent.to_text(),
            "reason": blocked.reason,
            "since_us": blocked.since_us,
            "warrant": blocked.warrant.to_text(),
            "blamed_by": blocked.blamed_by.to_text(),
            "dna": blocked.dna_hash.to_text(),
        }
        for blocked in found
    ]


def cmd_node_blocked(args: argparse.Namespace) -> int:
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    items = blocked_list(data_dir)
    if args.json:
        print(json.dumps(items, separators=(", ", ": ")))
        return 0
    if not items:
        print("no blocked agents")
        return 0
    print(f"{'agent':<20} {'since (µs)':<18} reason")
    for item in items:
        agent = str(item["agent"])
        print(f"{agent[:9]}…{agent[-6:]:<10} {item['since_us']:<18} {item['reason']}")
    return 0
