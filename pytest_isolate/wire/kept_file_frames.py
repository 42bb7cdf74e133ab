"""A failing test's ``tmp_path`` files, as they cross the channel from a private target.

pytest keeps a failing test's ``tmp_path`` so that the user can look at what
it wrote. A target whose files are its own (seccomp's and chroot's private
temporary space, a container, a guest) sends them after a failing test:
one ``kept-file`` frame per file, then one ``kept-files`` frame that names
what it left out. The broker writes them where a plain run's ``tmp_path``
would be (``broker.kept_files``).

Hostile input until parsed here: a path is relative, made of plain names (no
``..``, no empty or dot parts, no NUL), bounded in length and depth; files
and bytes are capped per test.

Runs in targets too (the constructors): Python 3.9 syntax.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, List, Tuple

from pytest_isolate.wire.frames import ProtocolViolation

KEPT_FILE_FRAME = "kept-file"
KEPT_FILES_END = "kept-files"
MAX_FILES = 500
MAX_BYTES = 16 * 1024 * 1024
MAX_PATH = 1024
MAX_PART = 255
MAX_DEPTH = 32
MAX_LEFT_OUT = 50


@dataclass(frozen=True)
class KeptFile:
    """One file of the test's ``tmp_path``: its path below it, and its bytes."""

    path: Tuple[str, ...]
    data: bytes


def kept_file_frame(path: str, data: bytes) -> dict[str, Any]:
    return {
        "type": KEPT_FILE_FRAME,
        "path": path,
        "data": base64.b64encode(data).decode("ascii"),
    }


def kept_files_end(left_out: List[str]) -> dict[str, Any]:
    """The last frame: what was not sent (too big, too many, not a regular file)."""
    return {
        "type": KEPT_FILES_END,
        "left_out": [text[:MAX_PATH] for text in left_out[:MAX_LEFT_OUT]],
    }


def check_path(text: Any) -> Tuple[str, ...]:
    """A relative path of plain names, or ProtocolViolation."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PATH or "\x00" in text:
        raise ProtocolViolation(f"kept-file: {str(text)[:80]!r} is not a relative path")
    parts = tuple(text.split("/"))
    if len(parts) > MAX_DEPTH or any(
        part in ("", ".", "..") or len(part) > MAX_PART for part in parts
    ):
        raise ProtocolViolation(
            f"kept-file: {text[:80]!r} is not a path of plain names below tmp_path"
        )
    return parts


def parse_kept_file(message: Mapping[str, Any]) -> KeptFile:
    if set(message) != {"type", "path", "data"}:
        raise ProtocolViolation("kept-file: a frame has exactly type, path and data")
    parts = check_path(message["path"])
    data = message["data"]
    if not isinstance(data, str) or len(data) > (MAX_BYTES * 4) // 3 + 4:
        raise ProtocolViolation(f"kept-file: data is not base64 of at most {MAX_BYTES} bytes")
    try:
        return KeptFile(parts, base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise ProtocolViolation("kept-file: data is not base64") from None


def parse_kept_files_end(message: Mapping[str, Any]) -> List[str]:
    if set(message) != {"type", "left_out"}:
        raise ProtocolViolation("kept-files: a frame has exactly type and left_out")
    left_out = message["left_out"]
    if not isinstance(left_out, list) or len(left_out) > MAX_LEFT_OUT:
        raise ProtocolViolation(f"kept-files: left_out is not a list of at most {MAX_LEFT_OUT}")
    if not all(isinstance(text, str) and len(text) <= MAX_PATH for text in left_out):
        raise ProtocolViolation("kept-files: left_out holds something other than short texts")
    return list(left_out)
