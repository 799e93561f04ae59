"""What the issuance tests share: a cast of agents on real cells of the core DNA (one in-memory
database, so every cell reads every other cell's records as an authority holding them would),
and the steps of the life of a token as zome calls."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import Value, encode
from ioe.engine.cell import CallContext, Cell
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response, commit_session
from ioe.engine.dna import DnaDef
from ioe.engine.schema import decode_as, to_value
from ioe.engine.zome import CoordinatorZome
from ioe.errors import ValidationError
from ioe.hashing import ActionHash
from ioe.sim.in_process import commit_in_process, countersign_in_process
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.zomes.currency.entries import (
    ClaimAttestation,
    ConsumptionReceipt,
    GenerationClaim,
    Transfer,
)

NOW = 1_700_000_000_000_000
HOUR = 3_600_000_000
CAST = {
    "pv": "generator",
    "gas": "generator",
    "battery": "storage",
    "grid": "distributor",
    "meter": "monitor",
    "home": None,
    "shop": None,
    "plug": None,
    "market": None,
    "appdev": None,
    "reserve": "reserve",
    "oracle": None,
    "pool": "pool",
    "funder": None,
}
ZONES = {
    "pv": "au/nsw/newtown/king-st/12",
    "gas": "au/nsw/tomago",
    "battery": "au/nsw/newtown/king-st/16",
    "grid": "au/nsw/newtown",
    "meter": "au/nsw/newtown/king-st/14",
    "home": "au/nsw/newtown/king-st/14",
    "shop": "au/nsw/newtown/enmore-rd/3",
    "plug": "au/nsw/newtown/king-st/14",
}
KEYS = {name: KeyPair(bytes([i + 120]) * 32) for i, name in enumerate(CAST)}
_sessions = itertools.count(1)


def session_id() -> bytes:
    return next(_sessions).to_bytes(16, "big")


def properties(**currency: Any) -> dict[str, Value]:
    base: dict[str, Value] = {
        "device_types": {KEYS[n].agent.to_text(): t for n, t in CAST.items() if t},
        "credit_limits": {"by_device_type": {"reserve": 10**9}},
        "oracles": [KEYS["oracle"].agent.to_text()],
        "fees": {"boundary_pm": 10, "market_pm": 20, "app_pm": 5},
    }
    device_types = currency.pop("device_types", None)
    if isinstance(device_types, dict):
        base["device_types"] = {**base["device_types"], **device_types}
    base.update(currency)
    return {"currency": base}


forge = CoordinatorZome("forge")


@forge.function
def run(ctx: CallContext, fn: Any) -> Any:
    """Run ``fn(ctx)``: writes what the honest zome functions never would."""
    return fn(ctx)


@dataclass
class World:
    dna: DnaDef
    cells: dict[str, Cell]
    now: int = NOW
    sessions: list[bytes] = field(default_factory=list)

    def __getitem__(self, name: str) -> Cell:
        return self.cells[name]

    def tick(self) -> int:
        self.now += 1_000
        return self.now

    def call(self, name: str, function: str, payload: Any = None) -> Any:
        return self.cells[name].call("currency", function, payload, now_us=self.tick())

    def balance(self, name: str) -> int:
        balance: int = self.call(name, "balance").balance_mc
        return balance

    # ------------------------------------------------------------------ the life of a token

    def claim(self, name: str, energy_wh: int, source: str = "solar", **extra: Any) -> ActionHash:
        payload = {
            "energy_wh": energy_wh,
            "source": source,
            "zone": ZONES[name],
            "start_us": self.now - HOUR,
            "end_us": self.now,
        }
        claim: ActionHash = self.call(name, "claim_generation", payload | extra)
        return claim

    def attest(self, claim: ActionHash, by: str = "grid", **extra: Any) -> ActionHash:
        attestation: ActionHash = self.call(by, "attest", {"claim": claim} | extra)
        return attestation

    def receipt(
        self, attestation: ActionHash, consumer: str, energy_wh: int, need_index: int = 0
    ) -> ConsumptionReceipt:
        payload = {
            "attestation": attestation,
            "consumer": self[consumer].agent,
            "energy_wh": energy_wh,
            "consumer_zone": ZONES[consumer],
            "need_index": need_index,
        }
        receipt: ConsumptionReceipt = self.call("grid", "prepare_receipt", payload)
        return receipt

    def deliver(
        self, attestation: ActionHash, consumer: str, energy_wh: int, need_index: int = 0
    ) -> ActionHash:
        """The receipt countersigned by the grid and the consumer: the consumer's record."""
        receipt = self.receipt(attestation, consumer, energy_wh, need_index)
        _, received = countersign_in_process(
            self["grid"], self[consumer], receipt, session_id=session_id(), now_us=self.tick()
        )
        return received

    def prepare(self, spender: str, receiver: str, **payload: Any) -> Transfer:
        head = self.call(receiver, "ledger_head")
        transfer: Transfer = self.call(
            spender,
            "prepare_payment",
            {"to": self[receiver].agent, "receiver_head": head} | payload,
        )
        return transfer

    def commit(self, transfer: Transfer) -> tuple[ActionHash, ActionHash]:
        spender = self._cell_of(transfer, spender=True)
        receiver = self._cell_of(transfer, spender=False)
        return commit_in_process(
            spender, receiver, transfer, session_id=session_id(), now_us=self.now
        )

    def pay(self, spender: str, receiver: str, **payload: Any) -> tuple[ActionHash, ActionHash]:
        return self.commit(self.prepare(spender, receiver, **payload))

    def trade(
        self, consumer: str, producer: str, receipt: ActionHash, reputation_pm: int = 1000
    ) -> Transfer:
        """The trade settling ``receipt`` (its provenance read back from the records)."""
        record = self[consumer].get(receipt)
        assert record is not None
        session = self[consumer].entry_value(record)
        assert isinstance(session, CountersignedEntry)
        delivered = decode_as(ConsumptionReceipt, session.preflight.entry)
        attestation = self[consumer].get(delivered.attestation)
        claim = self[consumer].get(delivered.claim)
        assert attestation is not None and claim is not None
        attested = self[consumer].entry_value(attestation)
        claimed = self[consumer].entry_value(claim)
        assert isinstance(attested, ClaimAttestation) and isinstance(claimed, GenerationClaim)
        provenance = {
            "energy_wh": delivered.energy_wh,
            "source": str(claimed.source),
            "clean": claimed.clean,
            "origin_zone": claimed.zone,
            "trust": int(attested.level),
            "claim": delivered.claim,
            "receipt": receipt,
        }
        return self.prepare(
            consumer,
            producer,
            kind="trade",
            provenance=provenance,
            terms={"reputation_pm": reputation_pm},
        )

    def create(self, name: str, value: object) -> ActionHash:
        """Commit ``value`` as a plain entry on ``name``'s chain (no zome function would)."""
        action: ActionHash = self[name].call(
            "forge", "run", lambda ctx: ctx.create(value), now_us=self.tick()
        )
        return action

    def _cell_of(self, transfer: Transfer, *, spender: bool) -> Cell:
        agent = transfer.spender.agent if spender else transfer.receiver.agent
        return next(c for c in self.cells.values() if c.agent == agent)

    # --------------------------------------------------------------------------- forgeries

    def forced_set(self, value: object, parties: list[str]) -> CountersignedEntry:
        """A signed session set for ``value`` (nobody's policy asked)."""
        entry_type, _ = self.dna.entry_type_for(type(value))
        when = self.tick()
        preflight = Preflight(
            session_id(),
            self.dna.hash,
            tuple(self[p].agent for p in parties),
            None,
            entry_type.zome_index,
            entry_type.entry_index,
            encode(to_value(value)),
            when,
            when + 10_000_000,
        )
        responses = []
        for name in parties:
            head = self[name].head()
            assert head is not None
            responses.append(Response.sign(self[name].keys, preflight, head))
        return CountersignedEntry(preflight, tuple(responses))

    def refused_by_all(self, value: object, parties: list[str], match: str) -> None:
        """Every party's own validation refuses ``value`` forced into a signed session."""
        entry = self.forced_set(value, parties)
        for name in parties:
            with pytest.raises(ValidationError, match=match):
                commit_session(self[name], entry)


def world(currency: Mapping[str, Any] | None = None, now: int = NOW) -> World:
    core = core_dna(properties(**dict(currency or {})))
    dna = DnaDef(
        name=core.name,
        integrity_zomes=core.integrity_zomes,
        coordinator_zomes=(*core.coordinator_zomes, forge),
        properties=core.properties,
    )
    db = MemoryDatabase()
    cells = {}
    for name, keys in KEYS.items():
        cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
        cell.genesis(membrane_proof_for(cell.keys), now_us=now)
        cells[name] = cell
    return World(dna, cells, now + HOUR)
