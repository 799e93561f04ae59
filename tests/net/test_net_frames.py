"""Frames of the request/response protocol: round trips in any chunking, and hostile input."""

from __future__ import annotations

import itertools

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.encoding import encode
from ioe.net.frames import (
    HEADER,
    MAX_FRAME,
    MAX_PROTOCOL,
    MAX_REQUEST_ID,
    Frame,
    FrameDecoder,
    FrameKind,
    parse_body,
)
from ioe.net.interface import MAX_PAYLOAD, MalformedFrame

frames = st.builds(
    Frame,
    kind=st.sampled_from(FrameKind),
    request_id=st.integers(0, MAX_REQUEST_ID),
    protocol=st.text(min_size=1, max_size=MAX_PROTOCOL),
    payload=st.binary(max_size=2048),
)


def header(length: int) -> bytes:
    return length.to_bytes(HEADER, "big")


def framed(body: bytes) -> bytes:
    return header(len(body)) + body


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


def decode_all(chunks: list[bytes]) -> list[Frame]:
    decoder = FrameDecoder()
    out: list[Frame] = []
    for chunk in chunks:
        decoder.feed(chunk)
        for _ in range(len(chunk) + 1):  # at most one frame per byte fed
            frame = decoder.next_frame()
            if frame is None:
                break
            out.append(frame)
    assert decoder.buffered() == 0
    return out


@given(st.lists(frames, max_size=8), st.lists(st.integers(min_value=0), max_size=30))
def test_frames_round_trip_in_any_chunking(sent: list[Frame], cuts: list[int]) -> None:
    data = b"".join(frame.to_bytes() for frame in sent)
    assert decode_all(chunked(data, cuts)) == sent


@given(frames)
def test_a_frame_round_trips_byte_by_byte(frame: Frame) -> None:
    data = frame.to_bytes()
    assert int.from_bytes(data[:HEADER], "big") == len(data) - HEADER
    assert parse_body(data[HEADER:]) == frame
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == [frame]


def test_the_largest_frame_fits() -> None:
    frame = Frame(FrameKind.REPLY, MAX_REQUEST_ID, "p" * MAX_PROTOCOL, bytes(MAX_PAYLOAD))
    data = frame.to_bytes()
    assert len(data) - HEADER <= MAX_FRAME
    assert decode_all([data[: len(data) // 2], data[len(data) // 2 :]]) == [frame]


def test_an_error_frame_carries_its_reason() -> None:
    frame = Frame(FrameKind.ERROR, 7, "/ioe/x/1", "refusé".encode())
    assert decode_all([frame.to_bytes()])[0].payload.decode() == "refusé"


def test_a_frame_too_large_to_send_is_refused() -> None:
    with pytest.raises(MalformedFrame):
        Frame(FrameKind.REQUEST, 1, "p", bytes(MAX_FRAME)).to_bytes()


@pytest.mark.parametrize("size", [MAX_FRAME + 1, 2**32 - 1])
def test_an_oversized_announced_length_is_rejected_before_the_body(size: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(header(size)[:2])
    with pytest.raises(MalformedFrame, match="announced"):
        decoder.feed(header(size)[2:])
    assert decoder.buffered() == HEADER  # nothing of the body was waited for


def test_the_largest_announced_length_is_accepted() -> None:
    decoder = FrameDecoder()
    decoder.feed(header(MAX_FRAME))
    assert decoder.next_frame() is None


def test_an_empty_frame_is_rejected() -> None:
    with pytest.raises(MalformedFrame, match="empty"):
        FrameDecoder().feed(header(0))


def test_a_truncated_frame_waits_for_the_rest() -> None:
    data = Frame(FrameKind.REQUEST, 1, "p", b"abc").to_bytes()
    decoder = FrameDecoder()
    decoder.feed(data[:-1])
    assert decoder.next_frame() is None
    assert decoder.buffered() == len(data) - 1
    decoder.feed(data[-1:])
    assert decoder.next_frame() == Frame(FrameKind.REQUEST, 1, "p", b"abc")


def test_a_bad_body_does_not_desynchronise_the_stream() -> None:
    good = Frame(FrameKind.REPLY, 2, "p", b"ok")
    decoder = FrameDecoder()
    decoder.feed(framed(b"\xff\xfe") + good.to_bytes())
    with pytest.raises(MalformedFrame):
        decoder.next_frame()
    assert decoder.next_frame() == good


@pytest.mark.parametrize(
    "value",
    [
        [0, 1, "p"],
        [0, 1, "p", b"", b""],
        {"kind": 0},
        [3, 1, "p", b""],
        [-1, 1, "p", b""],
        [True, 1, "p", b""],
        [0, -1, "p", b""],
        [0, MAX_REQUEST_ID + 1, "p", b""],
        [0, True, "p", b""],
        [0, 1, "", b""],
        [0, 1, "p" * (MAX_PROTOCOL + 1), b""],
        [0, 1, b"p", b""],
        [0, 1, "p", "payload"],
        [0, 1, "p", None],
        [0, 1, "p", bytes(MAX_PAYLOAD + 1)],
        "a string",
        None,
    ],
)
def test_well_formed_cbor_of_the_wrong_shape_is_malformed(value: object) -> None:
    with pytest.raises(MalformedFrame):
        parse_body(encode(value))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        cbor2.dumps([0, 1, "p", b""]) + b"\x00",  # trailing byte
        bytes.fromhex("84") + bytes.fromhex("1800") + bytes.fromhex("0161") + b"p" + b"\x40",
        cbor2.dumps([0, 1.0, "p", b""]),  # a float
        cbor2.dumps(cbor2.CBORTag(1, [0, 1, "p", b""])),  # a tag
        bytes.fromhex("9f00016170 40ff".replace(" ", "")),  # indefinite-length array
    ],
)
def test_non_canonical_cbor_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        parse_body(body)


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_garbage_bodies_raise_malformed_frame_and_nothing_else(body: bytes) -> None:
    try:
        frame = parse_body(body)
    except MalformedFrame:
        return
    assert isinstance(frame, Frame)
    assert frame.to_bytes()[HEADER:] == body  # whatever parses is canonical


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=16)
    | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=300)
@given(
    st.one_of(
        cbor_values,
        st.lists(cbor_values, min_size=4, max_size=4),
        st.tuples(st.integers(-2, 4), cbor_values, cbor_values, cbor_values),
    )
)
def test_any_canonical_value_is_a_frame_or_malformed(value: object) -> None:
    try:
        frame = parse_body(encode(value))
    except MalformedFrame:
        return
    assert isinstance(frame, Frame)


@settings(max_examples=300)
@given(st.binary(max_size=512), st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_streams_raise_malformed_frame_and_nothing_else(
    data: bytes, cuts: list[int]
) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in chunked(data, cuts):
            decoder.feed(chunk)
            for _ in range(len(chunk) + 1):
                if decoder.next_frame() is None:
                    break
    except MalformedFrame:
        pass
    assert decoder.buffered() <= len(data)
