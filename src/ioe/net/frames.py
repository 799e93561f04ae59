"""Frames of the request/response protocol spoken on a long-lived stream between two nodes.

Opening a libp2p stream costs a multistream-select negotiation (milliseconds), so each pair of
nodes keeps one stream open and multiplexes requests on it by id. A frame is::

    u32 big-endian length || canonical CBOR [kind, request_id, protocol, payload]

kind 0 = request, 1 = reply, 2 = error reply (payload = UTF-8 reason). The decoder is pure
(bytes in, frames out, in the style of h11) and checks the length before buffering anything, so a
hostile peer cannot make it allocate more than one frame's limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ioe.encoding import decode, encode
from ioe.errors import EncodingError
from ioe.net.interface import MAX_PAYLOAD, MalformedFrame

HEADER = 4
MAX_FRAME = MAX_PAYLOAD + 1024
MAX_PROTOCOL = 256
MAX_REQUEST_ID = 2**63 - 1


class FrameKind(IntEnum):
    REQUEST = 0
    REPLY = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    request_id: int
    protocol: str
    payload: bytes

    def to_bytes(self) -> bytes:
        body = encode([int(self.kind), self.request_id, self.protocol, self.payload])
        if len(body) > MAX_FRAME:
            raise MalformedFrame(f"frame of {len(body)} bytes is over the limit")
        return len(body).to_bytes(HEADER, "big") + body


def parse_body(body: bytes) -> Frame:
    """One frame body (without its length header), checked field by field."""
    try:
        value = decode(body, max_size=MAX_FRAME)
    except EncodingError as exc:
        raise MalformedFrame(f"frame is not canonical CBOR: {exc}") from exc
    if type(value) is not list or len(value) != 4:
        raise MalformedFrame("a frame is [kind, request_id, protocol, payload]")
    kind, request_id, protocol, payload = value
    if type(kind) is not int or kind not in (0, 1, 2):
        raise MalformedFrame(f"unknown frame kind {kind!r}")
    if type(request_id) is not int or not 0 <= request_id <= MAX_REQUEST_ID:
        raise MalformedFrame("bad request id")
    if type(protocol) is not str or not 0 < len(protocol) <= MAX_PROTOCOL:
        raise MalformedFrame("bad protocol id")
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD:
        raise MalformedFrame("bad payload")
    return Frame(FrameKind(kind), request_id, protocol, payload)


class FrameDecoder:
    """Feed bytes as they arrive; take complete frames out. ``max_frame`` is the largest frame
    this peer may announce now (it may change between feeds: a stranger's limit is smaller)."""

    __slots__ = ("_buffer", "_needed", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._needed: int | None = None
        self.max_frame = min(max_frame, MAX_FRAME)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if self._needed is None and len(self._buffer) >= HEADER:
            self._needed = int.from_bytes(self._buffer[:HEADER], "big")
            if self._needed > self.max_frame:
                raise MalformedFrame(
                    f"peer announced a frame of {self._needed} bytes (at most {self.max_frame})"
                )
            if self._needed == 0:
                raise MalformedFrame("empty frame")

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        if self._needed is None or len(self._buffer) < HEADER + self._needed:
            return None
        end = HEADER + self._needed
        body = bytes(self._buffer[HEADER:end])
        del self._buffer[:end]
        self._needed = None
        self.feed(b"")  # read the next header if it is already here
        return parse_body(body)

    def buffered(self) -> int:
        return len(self._buffer)
