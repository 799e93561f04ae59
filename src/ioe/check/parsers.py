"""Every parser of untrusted input, as a fuzz :class:`~ioe.check.fuzz.Target`.

"Untrusted" means bytes another party chose: a peer (frames, DHT ops, agent infos, warrants,
signed envelopes of the protocols outside a DNA, identity documents), a device or its broker
(MQTT payloads of Tasmota, Shelly and Home Assistant, OCPP-J frames, Modbus/TCP answers and
SunSpec register maps), a file a user was handed (a network file, a community's rules, an app
manifest) or a local client of the HTTP API (its JSON). Each target feeds the raw bytes to the
parser the way the code that receives them does, and names the errors the parser documents;
anything else it raises is a crash.

Where a parser takes something other than bytes, the wrapper does what its caller does first
(decode text, write the file, split registers) and nothing more.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ocpp.charge_point import camel_to_snake_case

from ioe.check import samples
from ioe.check.fuzz import Format, Target
from ioe.community.join import JoinRefused, open_join
from ioe.community.rules import RuleError, parse_rules
from ioe.dht.revocation_gossip import RevocationMessage, RevocationProof
from ioe.dnas import load_network
from ioe.drivers import homeassistant, ocpp_cs, shelly, sunspec, sunspec_maps, tasmota
from ioe.drivers.model import POINTS, DeviceProtocolError, PointDef, PointError, ValueKind
from ioe.drivers.mqtt import MAX_PAYLOAD_BYTES
from ioe.encoding import decode
from ioe.engine.countersigning import CountersignedEntry, Preflight
from ioe.engine.dht import AgentInfo, DhtOp
from ioe.engine.records import Entry, SignedAction
from ioe.engine.schema import decode_as
from ioe.engine.warrants import Warrant
from ioe.errors import EncodingError
from ioe.hashing import ActionHash, DnaHash
from ioe.identity.authority import KeysetChange
from ioe.identity.certificate import EnrollmentCertificate
from ioe.identity.membership import OwnerMembership
from ioe.identity.reputation import ReputationClaim
from ioe.identity.revocation import KeyRevocation
from ioe.identity.service import enrollment_messages, keyset_signing
from ioe.identity.transfer import TransferCertificate
from ioe.net import mdns
from ioe.net.frames import HEADER, MAX_FRAME, FrameDecoder
from ioe.net.interface import MalformedFrame, RequestRefused
from ioe.services.http import json_depth
from ioe.services.remote import CallRequest, open_signed_call
from ioe.testing.sunspec_server import RawValue, SunSpecMap
from ioe.vocabulary import Enrollment, NodeType
from ioe.zomes.appstore.entries import AppManifest, ManifestFileError, manifest_from_json

# ------------------------------------------------------------------------------ wrappers


def frames(data: bytes) -> None:
    """Bytes off a stream, in three reads, each followed by taking every complete frame out,
    as the reader loop does. The decoder must never hold more than one frame's worth plus what
    one read brought (it checks a frame's announced length before buffering it)."""
    decoder = FrameDecoder()
    third = max(1, len(data) // 3)
    for start in range(0, len(data), third):
        chunk = data[start : start + third]
        decoder.feed(chunk)
        while decoder.next_frame() is not None:
            pass
        if decoder.buffered() > HEADER + MAX_FRAME + len(chunk):
            raise AssertionError(f"the frame decoder holds {decoder.buffered()} bytes")


def _now(fn: Callable[[bytes, int], object]) -> Callable[[bytes], object]:
    return lambda data: fn(data, samples.NOW_US)


def manifest_file(data: bytes) -> None:
    """A manifest file's text (read as UTF-8 by whoever hands it to the app store)."""
    manifest_from_json(data.decode("utf-8", "replace"), samples.AGENT.agent, samples.NOW_US)


@cache
def _network_file() -> Path:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
        prefix="ioe-fuzz-network-", suffix=".json", delete=False
    )
    handle.close()
    return Path(handle.name)


def network_file(data: bytes) -> None:
    """A network file as ``--network FILE`` reads it (from disk, as text)."""
    path = _network_file()
    path.write_bytes(data)
    load_network(path)


def forget_network_file() -> None:
    """Remove the scratch file :func:`network_file` writes to (if it was made)."""
    if _network_file.cache_info().currsize:
        _network_file().unlink(missing_ok=True)
        _network_file.cache_clear()


def _quietly(parse: Callable[[bytes], object], data: bytes) -> object:
    """``parse(data)``, with its documented refusal taken as an answer."""
    try:
        return parse(data)
    except DeviceProtocolError:
        return None


def tasmota_payload(data: bytes) -> None:
    """A payload on any Tasmota topic, through each parser that may see it."""
    if len(data) > MAX_PAYLOAD_BYTES:  # the MQTT client drops it unread
        return
    for parse in (
        tasmota.parse_sensor,
        tasmota.parse_result,
        tasmota.parse_state,
        tasmota.parse_power,
        tasmota.parse_lwt,
    ):
        _quietly(parse, data)


def shelly_payload(data: bytes) -> None:
    """A payload on a Shelly RPC or online topic: the frame, then the values it carries."""
    if len(data) > MAX_PAYLOAD_BYTES:
        return
    _quietly(shelly.parse_online, data)
    frame = _quietly(shelly.parse_frame, data)
    if isinstance(frame, shelly.RpcFrame):
        try:
            shelly.notify_values(frame, 0)
            if frame.result is not None:
                shelly.switch_values(frame.result)
        except DeviceProtocolError:
            pass


_HA_POINTS = (
    PointDef(name="switch", kind=ValueKind.BOOL, writable=True),
    PointDef(name="setpoint_c", kind=ValueKind.NUMBER, writable=True, minimum=16, maximum=30),
    PointDef(name="mode", kind=ValueKind.ENUM, writable=True, choices=("auto", "cool", "heat")),
)


def homeassistant_command(data: bytes) -> None:
    """A Home Assistant command payload, for a switch, a number and a mode point."""
    if len(data) > MAX_PAYLOAD_BYTES:
        return
    for point in _HA_POINTS:
        with contextlib.suppress(PointError):
            point.check(homeassistant.parse_command(point, data))


def ocpp_frame(data: bytes) -> None:
    """An OCPP-J frame off a charger's WebSocket: judged first (never raising), then, if it is
    a call carrying meter values, those values as the ``ocpp`` library hands them over."""
    for version in ocpp_cs.OcppVersion:
        if ocpp_cs.frame_problem(data, version) is not None:
            continue
        frame = json.loads(data)
        payload = camel_to_snake_case(frame[-1])
        if isinstance(payload, dict) and "meter_value" in payload:
            ocpp_cs.parse_meter_values(version, payload["meter_value"])


def modbus_answer(data: bytes) -> None:
    """Bytes a Modbus/TCP device sent back (judged before pymodbus sees them; never raising)."""
    sunspec.frame_problem(data, 1)


def _registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)]


def sunspec_map(data: bytes) -> None:
    """A register image from the SunSpec base address on, scanned and read the way the driver
    does: the marker, the model headers up to the end model, the profile, every model block
    and every value, the storage control and its points."""
    registers = _registers(data)
    if not sunspec_maps.is_marker(registers):
        return
    headers: list[sunspec_maps.ModelHeader] = []
    address = 2
    for _ in range(sunspec_maps.MAX_MODELS):
        if address + 2 > len(registers):
            break
        model_id, length = registers[address : address + 2]
        if model_id == sunspec_maps.END_MODEL_ID:
            break
        header = sunspec_maps.ModelHeader(model_id, address, length)
        headers.append(header)
        address = sunspec_maps.next_model_address(header)
    profile = sunspec_maps.profile(headers)
    blocks = {
        h.address: sunspec_maps.ModelBlock(h, tuple(registers[h.address : h.address + h.registers]))
        for h in (*profile.models, *([profile.common] if profile.common else []))
    }
    profile.values(blocks)
    if profile.common is not None:
        for name in ("Mn", "Md", "SN"):
            blocks[profile.common.address].raw(name)
    control = None
    if profile.control_model is not None:
        control = sunspec_maps.storage_control(blocks[profile.control_model.address])
    profile.points(control)


# ------------------------------------------------------------------------------ samples


def _sunspec_samples() -> tuple[bytes, ...]:
    common: tuple[int, dict[str, RawValue]] = (1, {"Mn": "ACME", "Md": "Hybrid 5", "SN": "A-1"})
    maps: tuple[list[tuple[int, dict[str, RawValue]]], ...] = (
        [common, (103, {"W": 4200, "W_SF": 0, "WH": 12000, "WH_SF": 0, "A": 18, "A_SF": 0})],
        [
            common,
            (103, {"W": -120, "W_SF": 1, "PhVphA": 2305, "V_SF": -1}),
            (
                124,
                {
                    "WChaMax": 500,
                    "WChaMax_SF": 1,
                    "StorCtl_Mod": 3,
                    "InWRte": 50,
                    "OutWRte": -50,
                    "InOutWRte_SF": 0,
                },
            ),
        ],
        [common, (203, {"W": 310, "W_SF": 0, "TotWhImp": 900, "TotWh_SF": 0})],
    )
    return tuple(
        b"".join(r.to_bytes(2, "big") for r in SunSpecMap(models, base_address=0).registers)
        for models in maps
    )


def _mdns_samples() -> tuple[bytes, ...]:
    peer = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
    addrs = ["/ip4/192.168.1.20/tcp/4001", "/ip6/fe80::1/tcp/4001"]
    record = mdns.IoeServiceRecord(
        NodeType.CONSUMPTION, Enrollment.ENROLLED, (DnaHash(b"\x01" * 32),)
    )
    return (mdns.build_p2p_txt(peer, addrs), mdns.build_ioe_txt(peer, addrs, record))


def _parse_mdns(data: bytes) -> None:
    for parse in (mdns.parse_p2p_txt, mdns.parse_ioe_txt):
        with contextlib.suppress(mdns.MalformedAdvert):
            parse(data)


def _revocation_message() -> bytes:
    proof = samples.chain().revocation_proof
    return RevocationMessage(have=(ActionHash(b"\x01" * 32),), give=(proof,)).to_bytes()


def _manifest_bytes() -> bytes:
    text = samples.MANIFEST.decode()
    return manifest_from_json(text, samples.AGENT.agent, samples.NOW_US).to_bytes()


_MODBUS_ANSWERS = (
    bytes.fromhex("000100000007010304536e5375"),  # a read of two registers: "SunS"
    bytes.fromhex("0002000000060110009c4000020000"),
    bytes.fromhex("00030000000301830200"),
)


@cache
def targets() -> tuple[Target, ...]:
    """Every target, each with its samples built once."""
    identity, chain, messages = samples.identity(), samples.chain(), samples.messages()
    cbor_everything = (
        *chain.ops,
        *chain.actions,
        chain.agent_info,
        chain.warrant,
        identity.certificate,
        messages.call,
    )
    json_api = samples.API_BODIES
    return (
        Target("cbor", decode, (EncodingError,), cbor_everything, weight=3),
        Target("frames", frames, (MalformedFrame,), (messages.frames,), Format.BYTES, weight=3),
        Target("envelope.call", open_signed_call, (RequestRefused,), (messages.call,), weight=2),
        Target("envelope.join", _now(open_join), (JoinRefused,), (messages.join,)),
        Target(
            "envelope.enrollment",
            enrollment_messages.open_message,
            (enrollment_messages.EnrollmentError,),
            (messages.enrollment,),
        ),
        Target(
            "envelope.keyset-signing",
            _now(keyset_signing.open_request),
            (keyset_signing.RequestRefused,),
            (messages.signing_request,),
        ),
        Target(
            "remote.call-request",
            CallRequest.from_bytes,
            (EncodingError,),
            (messages.call_request,),
        ),
        Target(
            "identity.certificate",
            EnrollmentCertificate.from_bytes,
            (EncodingError,),
            (identity.certificate,),
        ),
        Target(
            "identity.keyset-change",
            KeysetChange.from_bytes,
            (EncodingError,),
            (identity.keyset_change,),
        ),
        Target(
            "identity.revocation",
            KeyRevocation.from_bytes,
            (EncodingError,),
            (identity.revocation,),
        ),
        Target(
            "identity.transfer",
            TransferCertificate.from_bytes,
            (EncodingError,),
            (identity.transfer,),
        ),
        Target(
            "identity.reputation-claim",
            ReputationClaim.from_bytes,
            (EncodingError,),
            (identity.claim,),
        ),
        Target(
            "identity.membership",
            OwnerMembership.from_bytes,
            (EncodingError,),
            (identity.membership,),
        ),
        Target("dht.op", DhtOp.from_bytes, (EncodingError,), chain.ops, weight=2),
        Target("dht.agent-info", AgentInfo.from_bytes, (EncodingError,), (chain.agent_info,)),
        Target("dht.warrant", Warrant.from_bytes, (EncodingError,), (chain.warrant,)),
        Target(
            "dht.revocation-proof",
            RevocationProof.from_bytes,
            (EncodingError,),
            (chain.revocation_proof,),
        ),
        Target(
            "dht.revocation-message",
            RevocationMessage.from_bytes,
            (EncodingError,),
            (_revocation_message(),),
        ),
        Target("chain.action", SignedAction.from_bytes, (EncodingError,), chain.actions),
        Target("chain.entry", Entry.from_bytes, (EncodingError,), chain.entries),
        Target(
            "countersign.preflight",
            lambda data: decode_as(Preflight, data),
            (EncodingError,),
            (chain.preflight,),
        ),
        Target(
            "countersign.entry",
            lambda data: decode_as(CountersignedEntry, data),
            (EncodingError,),
            (chain.countersigned,),
        ),
        Target(
            "appstore.manifest",
            AppManifest.from_bytes,
            (EncodingError,),
            (_manifest_bytes(),),
        ),
        Target(
            "appstore.manifest-file",
            manifest_file,
            (ManifestFileError,),
            (samples.MANIFEST,),
            Format.JSON,
        ),
        Target("community.rules", parse_rules, (RuleError,), (samples.RULES,), Format.JSON),
        Target(
            "network-file",
            network_file,
            (ValueError,),
            (samples.NETWORK,),
            Format.JSON,
        ),
        Target("mdns.txt", _parse_mdns, (), _mdns_samples(), Format.BYTES),
        Target("mqtt.tasmota", tasmota_payload, (), samples.TASMOTA, Format.JSON),
        Target("mqtt.shelly", shelly_payload, (), samples.SHELLY, Format.JSON),
        Target("mqtt.homeassistant", homeassistant_command, (), samples.HA_COMMANDS, Format.JSON),
        Target("ocpp.frames", ocpp_frame, (), samples.OCPP_FRAMES, Format.JSON, weight=2),
        Target("modbus.answers", modbus_answer, (), _MODBUS_ANSWERS, Format.BYTES),
        Target(
            "sunspec.registers",
            sunspec_map,
            (sunspec_maps.MapError,),
            _sunspec_samples(),
            Format.BYTES,
            max_input=1024,
            weight=2,
        ),
        Target("http.json-depth", json_depth, (), json_api, Format.JSON),
    )


POINT_NAMES = tuple(POINTS)
"""The canonical points (the Home Assistant target uses its own three kinds of point)."""
