"""Recovering an owner: the device rescan's gap rule, and restoring a chain from the network
(verified whole before anything is written; refused when forged, forked or broken; repeatable
after an interruption). Nodes run on the in-memory network."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import FAST, eventually
from ioe.conductor import RESTORE_SETTING, Conductor
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keystore import Unlock, create_device_key_file
from ioe.engine.ops import OpType
from ioe.engine.records import Entry, Record, SignedAction
from ioe.errors import ChainError, ChainIntegrityError
from ioe.hashing import ActionHash
from ioe.identity.certificate import DeviceVisibility
from ioe.identity.device_account import DeviceAccount
from ioe.identity.rescan import GAP_LIMIT, Rescan, next_device_index
from ioe.identity.service.enrollment import (
    DEVICES_SETTING,
    NEXT_INDEX_SETTING,
    PendingDevice,
    owner_certificate,
)
from ioe.identity.service.recovery import (
    ChainNotFound,
    ForkFound,
    RestoreError,
    assemble_chain,
    restore_pending,
    write_restored,
)
from ioe.net.memory import MemoryHub, MemoryNetwork
from ioe.node.restore import restore_over_network
from ioe.node.runtime import Node, NodeConfig

pytestmark = pytest.mark.anyio

# ------------------------------------------------------------------------------ the gap rule


def _scan(used: set[int], gap: int) -> tuple[Rescan, list[int]]:
    scan, probed = Rescan(gap), []
    for _ in range(10_000):  # bounded: the scan must end long before
        index = scan.probe()
        if index is None:
            break
        probed.append(index)
        scan = scan.record(index, index in used)
    return scan, probed


@given(st.sets(st.integers(1, 60), max_size=12), st.integers(1, 8))
def test_the_scan_finds_every_device_before_a_gap_of_k(used: set[int], gap: int) -> None:
    scan, probed = _scan(used, gap)
    assert scan.done
    # what it found: exactly the used indices reachable through gaps shorter than ``gap``
    reachable, misses = [], 0
    for index in range(1, 200):
        if misses >= gap:
            break
        if index in used:
            reachable.append(index)
            misses = 0
        else:
            misses += 1
    assert list(scan.found) == reachable
    assert probed == list(range(1, len(probed) + 1))
    assert probed[-gap:] == [i for i in probed[-gap:] if i not in used]  # ended on K misses


@given(st.sets(st.integers(1, 10_000), max_size=20), st.none() | st.integers(-5, 20_000))
def test_the_next_index_is_never_one_already_given(found: set[int], stored: int | None) -> None:
    nxt = next_device_index(found, stored)
    assert nxt >= 1
    assert all(nxt > i for i in found)
    if stored is not None and stored >= 1:
        assert nxt >= stored


def test_the_scan_refuses_out_of_order_probes_and_a_zero_gap() -> None:
    with pytest.raises(ValueError, match="expected 1"):
        Rescan().record(2, True)
    with pytest.raises(ValueError, match="at least 1"):
        Rescan(0)
    assert GAP_LIMIT == 5
    scan, _ = _scan({1, 2, 8}, GAP_LIMIT)
    assert scan.found == (1, 2)  # 3..7 are five misses: device 8 is past the gap


# -------------------------------------------------------------------------------- a network


@dataclasses.dataclass
class World:
    tmp: Path
    hub: MemoryHub = dataclasses.field(default_factory=MemoryHub)
    nodes: list[Node] = dataclasses.field(default_factory=list)
    conductors: list[Conductor] = dataclasses.field(default_factory=list)

    def unlock(self, name: str) -> Unlock:
        key = self.tmp / f"{name}.key"
        if not key.exists():
            create_device_key_file(key)
        return Unlock(key_file=key)

    async def run(self, conductor: Conductor, *, connect_to: Node | None = None) -> Node:
        node = Node(conductor, NodeConfig(dht=FAST), network=MemoryNetwork(self.hub))
        await node.start()
        self.nodes.append(node)
        if connect_to is not None:
            await node.network.connect(connect_to.network.listen_addrs()[0])
        return node

    async def stop(self, node: Node) -> None:
        await node.close()
        self.nodes.remove(node)
        node.conductor.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        for node in list(made.nodes):
            await node.close()
            node.conductor.close()
        for conductor in made.conductors:
            conductor.close()


async def _enrolled_device(world: World, owner: Conductor, index: int, via: Node) -> Node:
    """Device ``index`` of ``owner``, provisioned and certified as enrollment does, running."""
    account = owner.account
    assert isinstance(account, OwnerAccount)
    seed = account.device_seed(index)
    agent = device_agent_key(seed, 0).agent
    pending = PendingDevice(agent, f"Plug {index}", "consumption", None, via.network.peer_id, (), 0)
    cert = owner_certificate(
        account, pending, agent, "au/nsw", DeviceVisibility.PUBLIC, owner.clock(), index
    )
    directory = world.tmp / f"device{index}"
    directory.mkdir()
    device = Conductor.adopt_device(
        directory, world.unlock(f"device{index}"), DeviceAccount.of(seed, index, cert)
    )
    node = await world.run(device, connect_to=via)
    await _published(node)
    return node


def _chain(conductor: Conductor) -> list[ActionHash]:
    return [r.action_hash for r in conductor.owner_cell.store.iter_records()]


async def _published(node: Node) -> None:
    cell = node.conductor.owner_cell
    hashes = _chain(node.conductor)
    assert await node.dht_for(cell).wait_published(hashes, timeout_s=20)


async def _owner_with_history(world: World) -> tuple[str, Node, Node, list[ActionHash]]:
    """Owner A (a profile and its wallet grant on its chain) and a keeper node C holding it."""
    conductor_a, mnemonic = Conductor.init(world.tmp / "a", world.unlock("a"))
    conductor_c, _ = Conductor.init(world.tmp / "c", world.unlock("c"))
    keeper = await world.run(conductor_c)
    node_a = await world.run(conductor_a, connect_to=keeper)
    await eventually(lambda: len(keeper.dht_for(keeper.conductor.owner_cell).members()) == 2)
    node_a.call(conductor_a.owner_cell, "profile", "set_profile", {"name": "A", "zone": "au/nsw"})
    await _published(node_a)
    chain = _chain(conductor_a)
    # what A wrote before it knew the keeper reaches it by gossip
    await eventually(lambda: _held_activity(keeper, conductor_a) == len(chain), timeout=30)
    return mnemonic, node_a, keeper, chain


def _held_activity(holder: Node, of: Conductor) -> int:
    store = holder.dht_for(holder.conductor.owner_cell).store
    return len(store.ops_at(of.owner_cell.agent, [OpType.REGISTER_AGENT_ACTIVITY]))


async def _recovered(world: World, mnemonic: str, name: str = "a2") -> Conductor:
    conductor = Conductor.recover(world.tmp / name, mnemonic, world.unlock(name), restore=True)
    world.conductors.append(conductor)
    return conductor


async def _restore(world: World, conductor: Conductor, keeper: Node, **kw: Any) -> Any:
    config = NodeConfig(dht=FAST, bootstrap=(keeper.network.listen_addrs()[0],))
    return await restore_over_network(conductor, config, network=MemoryNetwork(world.hub), **kw)


# ------------------------------------------------------------------------------- the restore


async def test_recover_writes_nothing_until_restored(world: World) -> None:
    conductor_a, mnemonic = Conductor.init(world.tmp / "a", world.unlock("a"))
    conductor_a.close()
    recovered = await _recovered(world, mnemonic)
    assert restore_pending(recovered)
    assert recovered.owner_cell.head() is None  # no genesis: it would fork the old chain
    recovered.close()
    world.conductors.remove(recovered)
    again = Conductor.open(world.tmp / "a2", world.unlock("a2"))
    world.conductors.append(again)
    assert again.owner_cell.head() is None  # opening does not write one either
    fresh = Conductor.recover(world.tmp / "a3", mnemonic, world.unlock("a3"))
    world.conductors.append(fresh)
    assert not restore_pending(fresh) and fresh.owner_cell.has_genesis()  # --fresh


async def test_a_lost_owner_gets_its_chain_and_devices_back(world: World) -> None:
    mnemonic, node_a, keeper, old_chain = await _owner_with_history(world)
    await _enrolled_device(world, node_a.conductor, 1, keeper)
    await _enrolled_device(world, node_a.conductor, 3, keeper)  # index 2 failed halfway
    await world.stop(node_a)  # the machine is lost

    recovered = await _recovered(world, mnemonic)
    recovered.db.put_setting(NEXT_INDEX_SETTING, 2)  # a stale floor is raised, never lowered
    report = await _restore(world, recovered, keeper, timeout_s=20)

    assert _chain(recovered) == old_chain
    assert report.chains == {recovered.owner_cell.agent.to_text(): len(old_chain)}
    assert recovered.db.verify_all({recovered.owner_cell.dna.hash: recovered.owner_cell.dna})
    devices = recovered.db.get_setting(DEVICES_SETTING)
    assert isinstance(devices, list)
    assert [(d["index"], d["name"], d["type"]) for d in devices] == [
        (1, "Plug 1", "consumption"),
        (3, "Plug 3", "consumption"),
    ]
    assert recovered.db.get_setting(NEXT_INDEX_SETTING) == 4
    assert not restore_pending(recovered)

    # The recovered owner writes after its old head: no fork, so nobody warrants it.
    world.conductors.remove(recovered)
    node = await world.run(recovered, connect_to=keeper)
    node.call(recovered.owner_cell, "profile", "set_profile", {"name": "A again", "zone": "au"})
    await _published(node)
    assert _chain(recovered)[: len(old_chain)] == old_chain
    dht = keeper.dht_for(keeper.conductor.owner_cell)
    assert not dht.is_blocked(recovered.owner_cell.agent)
    assert dht.stats.warrants_signed == 0


async def test_nothing_found_fails_unless_fresh(world: World) -> None:
    conductor_c, _ = Conductor.init(world.tmp / "c", world.unlock("c"))
    keeper = await world.run(conductor_c)
    conductor_a, mnemonic = Conductor.init(world.tmp / "a", world.unlock("a"))
    conductor_a.close()  # never ran a node: the network has no chain of it
    recovered = await _recovered(world, mnemonic)
    with pytest.raises(ChainNotFound, match="--fresh"):
        await _restore(world, recovered, keeper, timeout_s=1.5)
    assert recovered.owner_cell.head() is None and restore_pending(recovered)
    report = await _restore(world, recovered, keeper, timeout_s=1.5, fresh=True)
    assert report.fresh and recovered.owner_cell.has_genesis()
    assert not restore_pending(recovered)


# -------------------------------------------------------------------- refusing a bad copy


def _records(conductor: Conductor) -> list[Record]:
    return list(conductor.owner_cell.store.iter_records())


def _resigned(signed: SignedAction, **changes: Any) -> SignedAction:
    """``signed`` altered and sent with its old signature (decoded as a peer's answer is)."""
    action = dataclasses.replace(signed.action, **changes)
    return SignedAction.from_bytes(dataclasses.replace(signed, action=action).to_bytes())


@pytest.fixture
def two_chains(tmp_path: Path) -> Iterator[tuple[Conductor, Conductor]]:
    """One owner's chain, and an empty directory of the same owner to restore it into."""
    key = tmp_path / "k"
    create_device_key_file(key)
    source, mnemonic = Conductor.init(tmp_path / "src", Unlock(key_file=key))
    source.call(source.owner_cell, "profile", "set_profile", {"name": "A", "zone": "au"})
    target = Conductor.recover(tmp_path / "dst", mnemonic, Unlock(key_file=key), restore=True)
    yield source, target
    source.close()
    target.close()


def test_a_forged_signature_a_gap_or_a_stranger_is_refused(
    two_chains: tuple[Conductor, Conductor],
) -> None:
    source, target = two_chains
    actions = [r.signed_action for r in _records(source)]
    agent = target.owner_cell.agent
    assert [a.hash for a in assemble_chain(agent, list(reversed(actions)))] == [
        a.hash for a in actions
    ]
    forged = _resigned(actions[2], timestamp=actions[2].action.timestamp + 1)
    with pytest.raises(RestoreError, match="not signed"):
        assemble_chain(agent, [*actions[:2], forged, *actions[3:]])
    with pytest.raises(RestoreError, match="seq 2 is missing"):
        assemble_chain(agent, [*actions[:2], *actions[3:]])
    stranger = Conductor.init(
        source.data_dir.parent / "x", Unlock(key_file=source.data_dir.parent / "k")
    )[0]
    with pytest.raises(RestoreError, match="among"):
        assemble_chain(agent, [*actions, *(r.signed_action for r in _records(stranger))])
    stranger.close()


def test_a_fork_is_refused(tmp_path: Path, two_chains: tuple[Conductor, Conductor]) -> None:
    source, target = two_chains
    mnemonic_twin = Conductor.recover(
        tmp_path / "twin",
        _mnemonic(source),
        Unlock(key_file=tmp_path / "k"),
        clock=lambda: source.clock() + 7,
    )  # the same key wrote another genesis: a fork at seq 0
    theirs = [r.signed_action for r in _records(mnemonic_twin)]
    with pytest.raises(ForkFound, match="fork"):
        assemble_chain(
            target.owner_cell.agent, [*(r.signed_action for r in _records(source)), *theirs]
        )
    mnemonic_twin.close()


def _mnemonic(conductor: Conductor) -> str:
    account = conductor.account
    assert isinstance(account, OwnerAccount)
    return account.mnemonic()


def test_a_broken_chain_writes_nothing(two_chains: tuple[Conductor, Conductor]) -> None:
    source, target = two_chains
    records = _records(source)
    cell = target.owner_cell
    profile = next(i for i, r in enumerate(records) if r.entry is not None and i >= 4)
    swapped = Record(records[profile].signed_action, Entry.app(b"\xa0"))
    for bad in (
        [*records[:profile], swapped, *records[profile + 1 :]],  # an entry not its own
        [records[0], records[2], records[1], *records[3:]],  # out of order: links broken
        [*records[:profile], Record(records[profile].signed_action), *records[profile + 1 :]],
    ):
        with pytest.raises(RestoreError, match="refused"):
            write_restored(cell, bad)
        assert cell.head() is None  # nothing was written
    assert write_restored(cell, records) == len(records)
    assert _chain(target) == _chain(source)


def test_an_interrupted_restore_runs_again(
    two_chains: tuple[Conductor, Conductor], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = two_chains
    records = _records(source)
    cell = target.owner_cell
    store = cell.store
    real: Callable[..., None] = store._insert  # type: ignore[attr-defined]

    def crash(conn: Any, rows: Any) -> None:
        real(conn, rows[:2])  # half of it reaches the transaction, then the power goes
        raise ChainError("simulated crash")

    monkeypatch.setattr(store, "_insert", crash)
    with pytest.raises(ChainError, match="simulated"):
        write_restored(cell, records)
    monkeypatch.undo()
    assert cell.head() is None  # the transaction rolled back whole
    # Written, but stopped before the mark was cleared: the next run finds a prefix, adds
    # what is missing, and the result verifies.
    assert write_restored(cell, records[:3]) == 3
    assert target.db.get_setting(RESTORE_SETTING)
    assert write_restored(cell, records) == len(records) - 3
    assert write_restored(cell, records) == 0
    assert _chain(target) == _chain(source)
    target.db.verify_all({cell.dna.hash: cell.dna})


def test_a_lost_private_entry_is_accepted_only_where_restore_said_so(
    two_chains: tuple[Conductor, Conductor],
) -> None:
    source, target = two_chains
    source.call(
        source.owner_cell,
        "capability",
        "grant",
        {"tag": "t", "access": "unrestricted", "functions": ["profile.get_profile"]},
    )
    records = _records(source)
    private = [i for i, r in enumerate(records) if r.is_private()]
    assert private
    bare = [Record(r.signed_action) if r.is_private() else r for r in records]
    cell = target.owner_cell
    write_restored(cell, bare)
    dnas = {cell.dna.hash: cell.dna}
    assert target.db.verify_all(dnas) == len(records)
    # the same gap anywhere restore did not record it is still caught
    target.db.put_setting(cell.store._forgotten_key, [])  # type: ignore[attr-defined]
    with pytest.raises(ChainIntegrityError, match="entry is missing"):
        target.db.verify_all(dnas)
