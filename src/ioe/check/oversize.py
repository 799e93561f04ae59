"""Oversized input is dropped before it is parsed.

Each probe hands a parser one input just over its size limit, built to be otherwise well-formed
(a CBOR byte string, a run of JSON text, a frame header announcing one byte too many), and
checks that the refusal is the size refusal: the parser's documented error, naming the limit. A
parser that decoded first would refuse for another reason (a type, a missing field), or accept,
or spend the memory the limit is there to save.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ioe.check import samples
from ioe.community.join import MAX_JOIN_BYTES, JoinRefused, open_join
from ioe.community.rules import MAX_RULE_FILE_BYTES, RuleError, parse_rules
from ioe.dht.revocation_gossip import MAX_MESSAGE_BYTES as MAX_REVOCATION_MESSAGE
from ioe.dht.revocation_gossip import RevocationMessage
from ioe.encoding import DEFAULT_MAX_SIZE, decode, encode
from ioe.engine.dht import MAX_AGENT_INFO_BYTES, MAX_OP_BYTES, AgentInfo, DhtOp
from ioe.errors import EncodingError
from ioe.identity.certificate import MAX_CERTIFICATE_BYTES, EnrollmentCertificate
from ioe.net.frames import HEADER, MAX_FRAME, FrameDecoder
from ioe.net.interface import MAX_PAYLOAD, MalformedFrame, RequestRefused
from ioe.services.remote import open_signed_call
from ioe.zomes.appstore.entries import (
    MAX_MANIFEST_FILE_BYTES,
    ManifestFileError,
    manifest_from_json,
)

SIZE_WORDS = re.compile(r"at most|over|limit|announced", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Probe:
    """``call()`` must raise ``refusal`` with a message about size."""

    name: str
    call: Callable[[], object]
    refusal: type[BaseException]


def _frame_header() -> None:
    decoder = FrameDecoder()
    try:
        decoder.feed((MAX_FRAME + 1).to_bytes(HEADER, "big"))
    finally:
        if decoder.buffered() > HEADER:  # refused on the header, nothing more held
            raise AssertionError(f"the decoder holds {decoder.buffered()} bytes")


def _cbor_over(limit: int) -> bytes:
    """A canonical CBOR byte string of just over ``limit`` bytes."""
    return encode(b"\x00" * limit)


def _manifest() -> None:
    text = '{"app": "' + "a" * MAX_MANIFEST_FILE_BYTES + '"}'
    manifest_from_json(text, samples.AGENT.agent, 0)


PROBES: tuple[Probe, ...] = (
    Probe("frame-header", _frame_header, MalformedFrame),
    Probe("cbor", lambda: decode(_cbor_over(DEFAULT_MAX_SIZE)), EncodingError),
    Probe("envelope.call", lambda: open_signed_call(_cbor_over(MAX_PAYLOAD)), RequestRefused),
    Probe("envelope.join", lambda: open_join(_cbor_over(MAX_JOIN_BYTES), 0), JoinRefused),
    Probe(
        "identity.certificate",
        lambda: EnrollmentCertificate.from_bytes(_cbor_over(MAX_CERTIFICATE_BYTES)),
        EncodingError,
    ),
    Probe("dht.op", lambda: DhtOp.from_bytes(_cbor_over(MAX_OP_BYTES)), EncodingError),
    Probe(
        "dht.agent-info",
        lambda: AgentInfo.from_bytes(_cbor_over(MAX_AGENT_INFO_BYTES)),
        EncodingError,
    ),
    Probe(
        "dht.revocation-message",
        lambda: RevocationMessage.from_bytes(_cbor_over(MAX_REVOCATION_MESSAGE)),
        EncodingError,
    ),
    Probe(
        "community.rules",
        lambda: parse_rules('{"rules": [' + " " * MAX_RULE_FILE_BYTES + "]}"),
        RuleError,
    ),
    Probe("appstore.manifest-file", _manifest, ManifestFileError),
)


def run_probe(probe: Probe) -> str | None:
    """None if the probe's input was refused for its size; otherwise what happened."""
    try:
        probe.call()
    except probe.refusal as exc:
        if SIZE_WORDS.search(str(exc)):
            return None
        return f"refused for another reason (parsed first?): {str(exc)[:120]}"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return "accepted"
