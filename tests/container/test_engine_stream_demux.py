"""Undoing Docker's 8-byte stream framing (pure)."""

from __future__ import annotations

import struct

import pytest

from pytest_isolate.container.attached_stream import StreamDemultiplexer, StreamFramingError


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def _collect(chunks: list[bytes]) -> tuple[bytes, bytes]:
    demux = StreamDemultiplexer()
    out, err = b"", b""
    for chunk in chunks:
        for stream, piece in demux.feed(chunk):
            if stream == 2:
                err += piece
            else:
                out += piece
    assert not demux.mid_frame
    return out, err


WIRE = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"") + frame(1, b"world")


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 8, 9, 13, len(WIRE)])
def test_frames_split_anywhere_come_out_whole(chunk_size: int) -> None:
    chunks = [WIRE[i : i + chunk_size] for i in range(0, len(WIRE), chunk_size)]
    assert _collect(chunks) == (b"hello world", b"oops")


def test_a_large_frame_is_delivered_in_pieces_as_it_arrives() -> None:
    demux = StreamDemultiplexer()
    wire = frame(1, b"x" * 100_000)
    first = list(demux.feed(wire[:1000]))
    assert first == [(1, b"x" * 992)]
    assert demux.mid_frame


def test_an_unknown_stream_id_is_refused() -> None:
    with pytest.raises(StreamFramingError, match="stream id 7"):
        list(StreamDemultiplexer().feed(frame(7, b"x")))
