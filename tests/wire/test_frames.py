"""The frame decoder: the first gate of everything a target sends."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_isolate.wire.frames import (
    FrameDecoder,
    FrameLimits,
    ProtocolViolation,
    decode_body,
    encode_frame,
)

SMALL = FrameLimits(max_frame_bytes=4096, max_total_bytes=64 * 1024, max_frames=50, max_depth=8)
SHALLOW = FrameLimits(max_depth=8)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
    lambda d: {**d, "type": "report"}
)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_but_protocol_violation(data: bytes) -> None:
    decoder = FrameDecoder(SMALL)
    try:
        for message in decoder.feed(data):
            assert isinstance(message, dict)
            assert isinstance(message["type"], str)
    except ProtocolViolation:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1024))
def test_arbitrary_frame_bodies_never_raise_anything_but_protocol_violation(body: bytes) -> None:
    with contextlib.suppress(ProtocolViolation):
        list(FrameDecoder(SMALL).feed(frame(body)))


@settings(max_examples=200, deadline=None)
@given(messages)
def test_encode_then_decode_round_trips(message: dict[str, object]) -> None:
    assert list(FrameDecoder().feed(encode_frame(message))) == [message]


@settings(max_examples=100, deadline=None)
@given(st.lists(messages, min_size=1, max_size=5), st.integers(min_value=1, max_value=64))
def test_frames_split_at_any_byte_boundary_decode_the_same(
    batch: list[dict[str, object]], chunk: int
) -> None:
    wire = b"".join(encode_frame(m) for m in batch)
    decoder = FrameDecoder()
    decoded = []
    for start in range(0, len(wire), chunk):
        decoded.extend(decoder.feed(wire[start : start + chunk]))
    assert decoded == batch
    assert decoder.pending == 0


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (struct.pack(">I", 0xFFFFFFFF), "announced a frame of 4294967295 bytes"),
        (frame(b'{"type": "x", "n": ' + b"9" * 5000 + b"}"), "integer string conversion"),
        (frame(b"[1, 2]"), "frame is a JSON list, not an object"),
        (frame(b'{"no": "type"}'), "no string 'type'"),
        (frame(b'{"type": 3}'), "no string 'type'"),
        (frame(b'{"type": "x", "n": NaN}'), "non-finite number"),
        (frame(b'{"type": "x", "n": Infinity}'), "non-finite number"),
        (frame(b'{"type": "x", "n": 1e999}'), "non-finite number"),
        (frame(b'{"type": "x", "n": [1.5, -1e999]}'), "non-finite number"),
        (frame(b'{"type": "\xff"}'), "not UTF-8"),
        (frame(b'{"type": "x",'), "not valid JSON"),
        (frame(b'{"type": "x", "a": ' + b"[" * 9 + b"]" * 9 + b"}"), "nested deeper than 8"),
        (frame(b'{"type": "x", "a": ' + b"[" * 50000 + b"]" * 50000 + b"}"), "nested deeper"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(wire: bytes, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason.replace("[", r"\[")):
        list(FrameDecoder(SHALLOW).feed(wire))


def test_brackets_inside_strings_are_not_nesting() -> None:
    """Many brackets in text (a traceback's ``[...]``) with shallow nesting: accepted."""
    message = {"type": "x", "text": "[{" * 100, "a": [[[1.25]]]}
    assert list(FrameDecoder(SHALLOW).feed(encode_frame(message))) == [message]


def test_nesting_is_still_counted_among_many_brackets() -> None:
    text = '{"type": "x", "s": "' + "[" * 100 + '", "a": ' + "[" * 9 + "]" * 9 + "}"
    with pytest.raises(ProtocolViolation, match="nested deeper than 8"):
        list(FrameDecoder(SHALLOW).feed(frame(text.encode())))


def test_header_over_the_frame_cap_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(SMALL)
    with pytest.raises(ProtocolViolation, match="limit 4096"):
        list(decoder.feed(struct.pack(">I", 4097)))


def test_total_bytes_per_test_are_capped() -> None:
    decoder = FrameDecoder(SMALL)
    one = encode_frame({"type": "report", "pad": "x" * 3000})
    with pytest.raises(ProtocolViolation, match="more than 65536 bytes"):
        for _ in range(100):
            list(decoder.feed(one))


def test_frame_count_per_test_is_capped() -> None:
    decoder = FrameDecoder(SMALL)
    with pytest.raises(ProtocolViolation, match="more than 50 frames"):
        list(decoder.feed(encode_frame({"type": "x"}) * 51))


def test_frames_before_a_violation_in_the_same_chunk_are_still_delivered() -> None:
    decoder = FrameDecoder(SMALL)
    received = []
    with pytest.raises(ProtocolViolation):
        for message in decoder.feed(encode_frame({"type": "ok"}) + struct.pack(">I", 1 << 31)):
            received.append(message)
    assert received == [{"type": "ok"}]


def test_truncated_stream_leaves_pending_bytes() -> None:
    decoder = FrameDecoder(SMALL)
    assert list(decoder.feed(encode_frame({"type": "x"})[:-2])) == []
    assert decoder.pending > 0


def test_encoder_refuses_nan_so_a_target_cannot_send_what_the_broker_refuses() -> None:
    with pytest.raises(ValueError):
        encode_frame({"type": "x", "n": float("nan")})


def test_decode_body_accepts_unicode_text() -> None:
    body = json.dumps({"type": "x", "t": "héllo ✓"}, ensure_ascii=False).encode()
    assert decode_body(body, SMALL) == {"type": "x", "t": "héllo ✓"}
