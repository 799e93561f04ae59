"""Warrants between separate ``ioe node run`` processes on loopback: a forker is blocked by every
honest node, a false warrant blocks its signer, garbage blocks nobody (``warrant_tool.py`` plays
the cheats)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, blocked, env, init, members, wait_for

pytestmark = pytest.mark.process

HONEST = 3
TOOL = Path(__file__).with_name("warrant_tool.py")


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[list[NodeProcess], Path]]:
    """Three honest running nodes, all members of each other's network, and one more
    initialised data dir (the cheat's)."""
    dirs = [tmp_path / f"honest{i}" for i in range(HONEST)] + [tmp_path / "cheat"]
    with ThreadPoolExecutor(len(dirs)) as pool:
        owners = list(pool.map(init, dirs))
    nodes = [NodeProcess(d, o) for d, o in zip(dirs[:HONEST], owners[:HONEST], strict=True)]
    cheat = NodeProcess(dirs[-1], owners[-1])
    try:
        nodes[0].start("--no-mdns")
        with ThreadPoolExecutor(HONEST) as pool:
            list(pool.map(lambda n: n.start("--no-mdns", "--bootstrap", nodes[0].addr), nodes[1:]))
        for node in nodes:
            wait_for(lambda n=node: _member_count(n) == HONEST, timeout=20)
        yield [*nodes, cheat], dirs[-1]
    finally:
        for node in [*nodes, cheat]:
            node.stop()


def _member_count(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


def tool(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_forking_agent_is_warranted_and_blocked_by_every_honest_node(
    network: tuple[list[NodeProcess], Path],
) -> None:
    nodes, _ = network
    honest, forker = nodes[:HONEST], nodes[HONEST]
    forker.start("--no-mdns", "--bootstrap", honest[0].addr)
    for node in honest:
        wait_for(lambda n=node: forker.owner in members(n), timeout=20)
    made = tool("fork", str(forker.data_dir))
    assert made["agent"] == forker.owner

    for node in honest:
        found = wait_for(
            lambda n=node: [b for b in blocked(n.data_dir) if b["agent"] == forker.owner],
            timeout=30,
            interval=0.5,
        )
        (item,) = found
        assert item["reason"].startswith("fork: two actions at sequence number")
        assert item["warrant"].startswith("uwrnt")
        assert isinstance(item["since_us"], int)
        assert forker.owner not in members(node)  # refused: no longer a member here
    for node in honest:  # nobody honest was blocked
        assert {b["agent"] for b in blocked(node.data_dir)} == {forker.owner}
    # The blocks are on disk: the CLI reads them with the node stopped too.
    honest[1].stop()
    assert [b["agent"] for b in blocked(honest[1].data_dir)] == [forker.owner]


def test_a_false_warrant_gets_its_signer_blocked(network: tuple[list[NodeProcess], Path]) -> None:
    nodes, cheat_dir = network
    honest = nodes[:HONEST]
    victim = honest[2].owner
    result = tool("lie", str(cheat_dir), honest[0].addr, victim)
    liar = result["agent"]
    for node in honest:
        found = wait_for(
            lambda n=node: [b for b in blocked(n.data_dir) if b["agent"] == liar],
            timeout=30,
            interval=0.5,
        )
        (item,) = found
        assert item["reason"] == "false fork warrant: the same action twice is not a fork"
        assert item["blamed_by"] == liar
    for node in honest:
        assert victim not in {b["agent"] for b in blocked(node.data_dir)}
        assert victim in members(node)


def test_garbled_and_oversized_warrants_are_refused_and_block_nobody(
    network: tuple[list[NodeProcess], Path],
) -> None:
    nodes, cheat_dir = network
    honest = nodes[:HONEST]
    result = tool("garbage", str(cheat_dir), honest[0].addr)
    answers = [a for found in result["results"].values() for a in found]
    assert len(result["results"]) == HONEST
    assert len(answers) == HONEST * 5
    assert all(a.startswith("RequestRefused:") for a in answers), answers
    assert any("at most" in a for a in answers)  # the oversized one, refused by size
    for node in honest:
        assert blocked(node.data_dir) == []
        # each refused one by one as a member's garbage, not turned away as a stranger's
        stats = node.api("GET", "/v1/dht").values()
        assert sum(s["warrants_refused"] for s in stats) == len(answers) // HONEST
        assert sum(s["warrants_upheld"] + s["warrants_false"] for s in stats) == 0
