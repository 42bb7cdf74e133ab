"""Hypothesis examples found in a target, as they cross the channel: names, bytes, bounds.

Hypothesis keeps failing examples in a directory database: one directory
per test (named by a hash of the test's key), one file per example (named by
a hash of its bytes). A target never writes the host's database; it sends
what its test added to or removed from it, and the broker writes that where
hypothesis will look on the next run (``integrations.hypothesis``).

Everything here is hostile input until ``parse_example_frame`` has checked
it: names are hypothesis's 16 hex digits and nothing else (no path can be
spelled), a saved example's name must be the hash of its bytes, and a test
may change only so many examples of so many bytes.

Runs in targets too (the constructor): Python 3.9 syntax.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.wire.frames import ProtocolViolation

EXAMPLES_FRAME = "examples"
#: One frame per change; a test's changes beyond this many break the protocol.
MAX_CHANGES_PER_TEST = 2000
#: Hypothesis's examples are choice sequences of a few kilobytes at most.
MAX_EXAMPLE_BYTES = 1024 * 1024
_NAME = re.compile(r"[0-9a-f]{16}")


def example_name(value: bytes) -> str:
    """The file name hypothesis's directory database gives ``value`` (its ``_hash``)."""
    return hashlib.sha384(value).hexdigest()[:16]


@dataclass(frozen=True)
class ExampleChange:
    """One example saved under (or deleted from) one test's directory of the database."""

    key: str  # the test's directory: 16 hex digits
    name: str  # the example's file: 16 hex digits, the hash of ``value``
    value: bytes | None  # None: deleted

    @property
    def deleted(self) -> bool:
        return self.value is None


def example_frame(key: str, name: str, value: bytes | None) -> dict[str, Any]:
    """The frame for one change (target side)."""
    data = None if value is None else base64.b64encode(value).decode("ascii")
    return {"type": EXAMPLES_FRAME, "key": key, "name": name, "value": data}


def _name(message: Mapping[str, Any], field: str) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ProtocolViolation(
            f"examples: {field} {str(value)[:40]!r} is not a hypothesis database name "
            "(16 hex digits)"
        )
    return value


def parse_example_frame(message: Mapping[str, Any]) -> ExampleChange:
    """Check a target's examples frame; raise ProtocolViolation on anything else."""
    if set(message) != {"type", "key", "name", "value"}:
        raise ProtocolViolation("examples: a frame has exactly type, key, name and value")
    key, name = _name(message, "key"), _name(message, "name")
    data = message["value"]
    if data is None:
        return ExampleChange(key, name, None)
    if not isinstance(data, str) or len(data) > (MAX_EXAMPLE_BYTES * 4) // 3 + 4:
        raise ProtocolViolation(
            f"examples: a value is not base64 of at most {MAX_EXAMPLE_BYTES} bytes"
        )
    try:
        value = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolViolation("examples: a value is not base64") from None
    if example_name(value) != name:
        raise ProtocolViolation(
            f"examples: {name} is not the name of the bytes sent with it "
            "(hypothesis names an example by the hash of its bytes)"
        )
    return ExampleChange(key, name, value)
