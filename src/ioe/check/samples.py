"""Valid inputs of every parser the hostile category fuzzes, made the way the project makes
them (real keys, real signatures, a real chain), so that mutations start from bytes a parser
accepts and reach its deepest checks.

Keys come from fixed seeds and times are fixed, so the samples, and therefore the inputs
derived from them, are the same on every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from ioe.community.join import JoinAsk, join_message
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import core_dna
from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.countersigning import CountersignedEntry, Preflight, Response
from ioe.engine.dht import AgentInfo, DhtOp, publishable_ops
from ioe.engine.ops import OpType
from ioe.engine.ports import ChainHead
from ioe.engine.schema import to_value
from ioe.engine.warrants import Warrant, WarrantKind
from ioe.hashing import ExternalHash
from ioe.identity.authority import AuthoritySpec, Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.identity.reputation import EventKind, Observation, ReputationClaim
from ioe.identity.revocation import KeyRevocation
from ioe.identity.service import enrollment_messages, keyset_signing
from ioe.identity.transfer import TransferCertificate
from ioe.net.frames import Frame, FrameKind
from ioe.services.remote import CALL_ENVELOPE, CallRequest
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import membrane_proof_for
from ioe.vocabulary import DeviceType
from ioe.zomes.community.entries import Access, Role

NOW_US = 1_800_000_000_000_000
ALICE = OwnerAccount.from_root_seed(b"\x01" * 32)
BOB = OwnerAccount.from_root_seed(b"\x02" * 32)
AGENT = KeyPair(b"\x03" * 32)
PEER = KeyPair(b"\x04" * 32)


def _certificate(owner: OwnerAccount, device: int) -> EnrollmentCertificate:
    authz = owner.authorization_key()
    keyset = Keyset(single_owner(authz.agent, owner.revocation_key().agent))
    keyset = keyset.extended(keyset.propose(AuthoritySpec.of(1, [authz.agent]), 5).signed_by(authz))
    return issue(
        keyset=keyset,
        owner_agent=owner.agent_key(),
        device=device_agent_key(owner.device_seed(device), 0).agent,
        device_type=DeviceType.MONITOR,
        name="Meter",
        zone="au/nsw",
        networks=("ioe-core",),
        issued_us=9,
        serial=3,
    ).signed_by(authz)


@dataclass(frozen=True, slots=True)
class Identity:
    """Identity documents, as bytes."""

    certificate: bytes
    keyset_change: bytes
    revocation: bytes
    transfer: bytes
    claim: bytes
    membership: bytes


@cache
def identity() -> Identity:
    old, new = _certificate(ALICE, 1), _certificate(BOB, 2)
    revocation = KeyRevocation.new(
        old.keyset, old.device, last_valid_seq=2, issued_us=1, reason="lost"
    ).signed_by(ALICE.authorization_key())
    transfer = (
        TransferCertificate.between(old, new, old_last_seq=4, issued_us=10)
        .signed_by_old(ALICE.authorization_key())
        .signed_by_new(BOB.authorization_key())
    )
    claim = ReputationClaim.make(
        KeyPair(b"\x07" * 32), old.device, [Observation(old.device, EventKind.DR_MISSED, 1)], 2
    )
    return Identity(
        certificate=old.to_bytes(),
        keyset_change=old.keyset.changes[0].to_bytes(),
        revocation=revocation.to_bytes(),
        transfer=transfer.to_bytes(),
        claim=claim.to_bytes(),
        membership=membrane_proof_for(AGENT),
    )


@dataclass(frozen=True, slots=True)
class Chain:
    """What a real chain puts on the wire: ops, actions, entries, an agent's info, a warrant,
    a countersigning session."""

    ops: tuple[bytes, ...]
    actions: tuple[bytes, ...]
    entries: tuple[bytes, ...]
    agent_info: bytes
    warrant: bytes
    preflight: bytes
    countersigned: bytes
    revocation_proof: bytes


@cache
def chain() -> Chain:
    dna = core_dna()
    cell = Cell(dna, AGENT, MemoryDatabase().chain(dna.hash, AGENT.agent))
    proof = membrane_proof_for(AGENT)
    cell.genesis(proof, now_us=NOW_US)
    cell.call("profile", "set_profile", {"name": "Sam", "zone": "au/nsw"}, now_us=NOW_US + 1)
    batch = [[{"at_us": NOW_US + 2, "values": {"energy_mwh": 7, "power_mw": -3}}]]
    cell.call("telemetry", "record_batches", batch, now_us=NOW_US + 3)
    records = cell.query()
    ops = [op for record in records for op in publishable_ops(record)]
    info = AgentInfo.sign(
        AGENT,
        dna_hash=dna.hash,
        peer_id="12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        addrs=["/ip4/127.0.0.1/tcp/4001"],
        now_us=NOW_US,
        ttl_us=60_000_000,
        membrane_proof=proof,
    )
    warrant = Warrant.sign(
        PEER,
        kind=WarrantKind.INVALID_OP,
        dna_hash=dna.hash,
        author=AGENT.agent,
        evidence=[ops[-1]],
        reason="an invalid op",
        now_us=NOW_US,
    )
    preflight = Preflight(
        session_id=b"\x05" * 32,
        dna_hash=dna.hash,
        parties=(AGENT.agent, PEER.agent),
        witness=None,
        entry_zome=0,
        entry_index=0,
        entry=encode({"amount_mc": 5}),
        session_time_us=NOW_US,
        expires_us=NOW_US + 10_000_000,
    )
    head = cell.head()
    assert head is not None
    responses = tuple(
        Response.sign(keys, preflight, ChainHead(head.seq, head.hash, head.timestamp))
        for keys in (AGENT, PEER)
    )
    signed = [op.signed_action for op in ops]
    last = records[-1]
    proof_op = DhtOp(OpType.STORE_RECORD, last.signed_action, last.entry)
    return Chain(
        ops=tuple(op.to_bytes() for op in ops),
        actions=tuple(s.to_bytes() for s in signed),
        entries=tuple(r.entry.to_bytes() for r in records if r.entry is not None),
        agent_info=info.to_bytes(),
        warrant=warrant.to_bytes(),
        preflight=encode(to_value(preflight)),
        countersigned=encode(to_value(CountersignedEntry(preflight, responses))),
        revocation_proof=encode([proof_op.to_bytes(), records[1].signed_action.to_bytes()]),
    )


@dataclass(frozen=True, slots=True)
class Messages:
    """Signed envelopes of the protocols nodes speak outside a DNA, and the frames they ride."""

    call: bytes
    call_request: bytes
    join: bytes
    enrollment: bytes
    signing_request: bytes
    frames: bytes


@cache
def messages() -> Messages:
    request = CallRequest(
        to=PEER.agent,
        caller=AGENT.agent,
        zome="device",
        fn="read",
        payload={"point": "switch"},
        secret=b"\x06" * 32,
        nonce=b"\x07" * 32,
        expires_us=NOW_US + 60_000_000,
        issued_us=NOW_US,
    )
    call = CALL_ENVELOPE.seal(AGENT, {k: v for k, v in request.to_value().items() if k != "from"})
    join = join_message(
        JoinAsk(
            request_id=b"\x08" * 16,
            requester=AGENT.agent,
            community=ExternalHash(b"\x09" * 32),
            member=PEER.agent,
            role=Role.MEMBER,
            allowed=(Access.SEE,),
            time_us=NOW_US,
        ),
        AGENT,
    )
    enrollment = enrollment_messages.sign_message(
        "request", {"nonce": b"\x0a" * 32, "time_us": NOW_US, "name": "plug"}, AGENT
    )
    signing = keyset_signing.ENVELOPE.seal(
        AGENT,
        {
            "id": b"\x0b" * 16,
            "context": next(iter(keyset_signing.DOCUMENT_KINDS)),
            "document": identity().certificate,
            "keyset": b"\x0c" * 32,
            "signers": [bytes(PEER.agent)],
            "required": 1,
            "what": "a certificate",
            "time_us": NOW_US,
        },
        keyset_signing.REQUEST_KIND,
    )
    frames = b"".join(
        Frame(kind, 7, "/ioe/dht/1", payload).to_bytes()
        for kind, payload in (
            (FrameKind.REQUEST, call),
            (FrameKind.REPLY, encode({"ok": 1})),
            (FrameKind.ERROR, b"refused"),
        )
    )
    return Messages(call, request.to_bytes(), join, enrollment, signing, frames)


# ------------------------------------------------------------------------------ JSON texts

RULES = json.dumps(
    {
        "rules": [
            {"when": {"device_type": "generator"}, "then": {"action": "refuse"}},
            {
                "when": {"owner": "mine", "device_type": ["consumption", "storage"]},
                "then": {"action": "invite", "role": "member", "access": ["see", "control"]},
            },
            {
                "when": {"zone": "au/nsw/newtown", "min_reputation": 900},
                "then": {"action": "invite", "role": "observer"},
            },
        ]
    }
).encode()
MANIFEST = json.dumps(
    {
        "app": "demand",
        "name": "Demand Management",
        "version": "1.0.0",
        "description": "Switches a plug off while the price is high.",
        "pricing": {"model": "subscription", "fee_mc": 500, "period_s": 2592000},
        "capabilities": [
            {"point": "power_w", "access": "see"},
            {"point": "switch", "access": "control"},
        ],
        "dna": "board/1",
    }
).encode()
NETWORK = json.dumps(
    {
        "properties": {"currency": {"credit_limits": {"default_mc": 50000, "history_pm": 250}}},
        "network_seed": "king-st-trial",
    }
).encode()
TASMOTA = (
    b'{"Time":"2024-03-01T10:00:00","ENERGY":{"TotalStartTime":"2023-11-04T09:12:44",'
    b'"Total":12.345,"Yesterday":0.456,"Today":0.123,"Period":1,"Power":45,'
    b'"ApparentPower":52,"ReactivePower":26,"Factor":0.87,"Voltage":231,"Current":0.226}}',
    b'{"StatusSNS":{"Time":"2024-03-01T10:00:00","ENERGY":{"Total":0.5,"Power":12}}}',
    b'{"Time":"2024-03-01T10:00:00","Uptime":"0T01:02:03","UptimeSec":3723,"POWER":"ON"}',
    b'{"POWER1":"OFF"}',
    b"ON",
    b"Online",
)
SHELLY = (
    b'{"id":0,"src":"shellyplusplugs-e86beae9a1b0","result":{"id":0,"output":true,'
    b'"apower":8.9,"voltage":237.5,"current":0.068,"aenergy":{"total":6.532,'
    b'"by_minute":[45.199,47.141,88.397],"minute_ts":1654511700},'
    b'"temperature":{"tC":23.5,"tF":74.4}}}',
    b'{"src":"shellyplusplugs-e86beae9a1b0","dst":"shellyplusplugs-e86beae9a1b0/events",'
    b'"method":"NotifyStatus","params":{"ts":1631186545.04,'
    b'"switch:0":{"id":0,"output":false,"source":"button"}}}',
    b'{"id":3,"src":"x","error":{"code":-103,"message":"Invalid argument"}}',
    b"true",
)
OCPP_FRAMES = (
    b'[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"M"}]',
    b'[3,"19223201",{"status":"Accepted","currentTime":"2024-05-01T12:00:00Z","interval":300}]',
    b'[4,"19223201","GenericError","oops",{}]',
    b'[2,"42","MeterValues",{"connectorId":1,"transactionId":17,"meterValue":[{"timestamp":'
    b'"2024-05-01T12:00:00Z","sampledValue":[{"value":"12345.6","measurand":'
    b'"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"},{"value":"7.36",'
    b'"measurand":"Power.Active.Import","unit":"kW"},{"value":"16.1","measurand":'
    b'"Current.Import","phase":"L1","unit":"A"},{"value":"61","measurand":"SoC",'
    b'"location":"EV","unit":"Percent"}]}]}]',
    b'[2,"43","TransactionEvent",{"eventType":"Updated","meterValue":[{"timestamp":'
    b'"2024-05-01T12:00:00Z","sampledValue":[{"value":12.5,"measurand":'
    b'"Energy.Active.Import.Register","unitOfMeasure":{"unit":"kWh"}},{"value":7360,'
    b'"measurand":"Power.Active.Import"}]}]}]',
)
HA_COMMANDS = (b"ON", b"OFF", b"21.5", b"-3", b"auto", b"1e3")
API_BODIES = (
    b'{"name":"Sam","zone":"au/nsw/newtown"}',
    b'{"to":"uhCAkAAAA","amount_mc":1500,"memo":"thanks","kind":"donation"}',
    b'{"agent":"uhCAkAAAA","zome":"device","fn":"read","payload":{"point":"switch"}}',
    b'{"access":"assigned","functions":[["device","read"]],"assignees":["uhCAkAAAA"]}',
    b'{"point":"switch","value":true}',
    b'[1,2,{"a":[{"b":null}]}]',
)
