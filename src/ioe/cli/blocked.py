"""``ioe node blocked``: the agents this node blocks, and why (see docs/warrants.md).

Reads the data directory's database directly, so it works whether or not the node runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ioe.cli.common import data_dir, emit_json
from ioe.conductor import open_database
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
    items = blocked_list(data_dir(args))
    if args.json:
        emit_json(items)
        return 0
    if not items:
        print("no blocked agents")
        return 0
    print(f"{'agent':<20} {'since (µs)':<18} reason")
    for item in items:
        agent = str(item["agent"])
        print(f"{agent[:9]}…{agent[-6:]:<10} {item['since_us']:<18} {item['reason']}")
    return 0
