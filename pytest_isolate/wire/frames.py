"""Length-prefixed JSON frames: the only thing that crosses from a target to the broker.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON encoding one object with a string ``type``. The decoder is the security
boundary's first gate: it checks the length *before* buffering the body,
bounds the bytes and frames a target may send per test, and rejects deep
nesting, non-finite numbers and oversized integers. Nothing here ever
evaluates what it reads.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


class ProtocolViolation(Exception):
    """The target sent something that is not a well-formed, bounded frame."""


@dataclass(frozen=True)
class FrameLimits:
    """Hard caps on what one target may send during one test."""

    max_frame_bytes: int = 16 * 1024 * 1024
    max_total_bytes: int = 128 * 1024 * 1024
    max_frames: int = 100_000
    max_depth: int = 48


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """Serialize one message; raises ValueError for non-JSON values (NaN included)."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = body.encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(data)) + data


def _reject_constant(name: str) -> Any:
    raise ProtocolViolation(f"non-finite number {name} in frame")


def _finite_float(text: str) -> float:
    """Every JSON float as it is parsed: ``1e999`` overflows to infinity, and is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolViolation("non-finite number in frame")
    return value


def _check_depth(text: str, value: Any, limit: int) -> None:
    """At most ``limit`` levels of nesting; an iterative walk, so no stack to exhaust.

    Each level opens a bracket, so a text with no more brackets than the
    limit (every report of an ordinary test) needs no walk: counting them
    costs a tenth of walking the parsed value.
    """
    if text.count("[") + text.count("{") <= limit:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ProtocolViolation(f"frame nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def decode_body(body: bytes, limits: FrameLimits) -> dict[str, Any]:
    """Parse and check one frame body (without its header)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolViolation(f"frame is not UTF-8 ({exc.reason})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ProtocolViolation:
        raise
    except RecursionError:
        raise ProtocolViolation(f"frame nested deeper than {limits.max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int too large to convert
        raise ProtocolViolation(f"frame is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ProtocolViolation(f"frame is a JSON {type(value).__name__}, not an object")
    message_type = value.get("type")
    if not isinstance(message_type, str):
        raise ProtocolViolation("frame has no string 'type'")
    _check_depth(text, value, limits.max_depth)
    return value


class FrameDecoder:
    """Incremental decoder for one target's byte stream.

    ``feed`` yields the complete frames one by one, so frames that arrived
    before a violation in the same chunk are still handled (a test's setup
    report is not lost to the garbage after it). It raises
    :class:`ProtocolViolation` as soon as a cap is crossed, before the
    offending bytes are held: a frame header announcing more than
    ``max_frame_bytes`` is refused on its first four bytes.
    """

    def __init__(self, limits: FrameLimits | None = None) -> None:
        self.limits = limits or FrameLimits()
        self._buffer = bytearray()
        self._expected: int | None = None
        self.total_bytes = 0
        self.frames = 0

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self.total_bytes += len(data)
        if self.total_bytes > self.limits.max_total_bytes:
            raise ProtocolViolation(
                f"sent more than {self.limits.max_total_bytes} bytes in one test"
            )
        self._buffer += data
        while True:
            if self._expected is None:
                if len(self._buffer) < HEADER_SIZE:
                    break
                (length,) = _HEADER.unpack_from(self._buffer)
                if length > self.limits.max_frame_bytes:
                    raise ProtocolViolation(
                        f"announced a frame of {length} bytes (limit {self.limits.max_frame_bytes})"
                    )
                del self._buffer[:HEADER_SIZE]
                self._expected = length
            if len(self._buffer) < self._expected:
                break
            body = bytes(self._buffer[: self._expected])
            del self._buffer[: self._expected]
            self._expected = None
            self.frames += 1
            if self.frames > self.limits.max_frames:
                raise ProtocolViolation(f"sent more than {self.limits.max_frames} frames")
            yield decode_body(body, self.limits)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame still held (a truncated stream at EOF)."""
        return len(self._buffer) + (HEADER_SIZE if self._expected is not None else 0)
