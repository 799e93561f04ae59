"""Five ``ioe node run`` processes on loopback: profiles spread, survive their author, and a
restarted node catches up."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nodes import NodeProcess, init, members, wait_for

from ioe.node.client import ApiError
from ioe.node.nodefile import NoRunningNode

pytestmark = pytest.mark.process

COUNT = 5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    dirs = [tmp_path / f"node{i}" for i in range(COUNT)]
    with ThreadPoolExecutor(COUNT) as pool:
        owners = list(pool.map(init, dirs))
    nodes = [NodeProcess(d, o) for d, o in zip(dirs, owners, strict=True)]
    try:
        nodes[0].start("--no-mdns")
        with ThreadPoolExecutor(COUNT) as pool:
            list(pool.map(lambda n: n.start("--no-mdns", "--bootstrap", nodes[0].addr), nodes[1:]))
        for node in nodes:  # everyone knows everyone before the test begins
            wait_for(lambda n=node: _member_count(n) == COUNT, timeout=20)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _member_count(node: NodeProcess) -> int:
    members = node.api("GET", "/v1/peers")["members"]
    return max((len(m) for m in members.values()), default=0)


def _profile(node: NodeProcess, agent: str) -> dict[str, str] | None:
    try:
        return node.api("GET", f"/v1/profile/{agent}")  # type: ignore[no-any-return]
    except ApiError:
        return None


def test_a_profile_set_at_one_node_is_visible_at_every_other(cluster: list[NodeProcess]) -> None:
    author = cluster[1]
    result = author.api("POST", "/v1/profile", {"name": "Ann", "zone": "au/nsw/newtown"})
    assert result["agent"] == author.owner
    for node in cluster:
        profile = wait_for(lambda n=node: _profile(n, author.owner), timeout=10)
        assert profile == {
            "agent": author.owner,
            "name": "Ann",
            "zone": "au/nsw/newtown",
            "hash": result["hash"],
        }


def test_a_profile_outlives_its_author_and_a_restarted_node_catches_up(
    cluster: list[NodeProcess],
) -> None:
    author, reader, sleeper = cluster[2], cluster[3], cluster[4]
    sleeper.stop()
    author.api("POST", "/v1/profile", {"name": "Bo", "zone": "au/vic/brunswick"})
    wait_for(lambda: _published(author), timeout=45)  # generous: shared, noisy machines
    assert author.stop(signal.SIGKILL) == -signal.SIGKILL
    profile = wait_for(lambda: _profile(reader, author.owner), timeout=15)
    assert profile["name"] == "Bo"

    sleeper.start()
    profile = wait_for(lambda: _profile(sleeper, author.owner), timeout=20)
    assert profile["zone"] == "au/vic/brunswick"


def _published(node: NodeProcess) -> bool:
    stats = next(iter(node.api("GET", "/v1/dht").values()))
    return bool(stats["publishing"] == 0 and stats["published"] > 0)


def test_an_invalid_profile_is_refused_by_its_own_node(cluster: list[NodeProcess]) -> None:
    with pytest.raises(ApiError, match="zone"):
        cluster[0].api("POST", "/v1/profile", {"name": "Cy", "zone": "Not A Zone!"})


def test_no_node_for_a_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoRunningNode, match="no node is running"):
        NodeProcess(tmp_path, "").api("GET", "/v1/info")


def test_three_nodes_with_no_bootstrap_find_each_other_over_mdns(tmp_path: Path) -> None:
    dirs = [tmp_path / f"m{i}" for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        owners = list(pool.map(init, dirs))
    nodes = [NodeProcess(d, o) for d, o in zip(dirs, owners, strict=True)]
    try:
        with ThreadPoolExecutor(3) as pool:  # --mdns binds to the listen interface: 127.0.0.1
            list(pool.map(lambda n: n.start("--mdns"), nodes))
        owners = {node.owner for node in nodes}
        for node in nodes:
            # at least these three: any other node on this machine's loopback that answers
            # mDNS at the same time (a demo, another test run) is on the same core network
            wait_for(lambda n=node: owners <= members(n), timeout=30)
            peers = node.api("GET", "/v1/peers")["connected"]
            assert {other.info["peer_id"] for other in nodes if other is not node} <= set(peers)
    finally:
        for node in nodes:
            node.stop()
