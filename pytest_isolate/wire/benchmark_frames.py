"""pytest-benchmark's results from a target, as they cross the channel: names and timings.

pytest-benchmark keeps each benchmark's timings in the process that ran it,
and its table and JSON are written at the session's end from that list. A
target sends each benchmark its test ran (``target.benchmark_results``) and
the broker adds it to its own list (``integrations.benchmark``), so the table,
``--benchmark-json``, saving and comparing see it as in a plain run.

Hostile input until ``parse_benchmark_frame`` has checked it: texts are
bounded and shown escaped (they reach the terminal's table), timings are
finite non-negative numbers, and their count is capped. What names the
benchmark (its test's name, node id and parameters) is not sent: the broker
takes it from the test it ran, so a target cannot report for another test.

Runs in targets too (the constructor): Python 3.9 syntax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Dict, Tuple, Union

from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.text import escape_controls

BENCHMARK_FRAME = "benchmark"
#: Timings of one benchmark (pytest-benchmark's rounds); beyond this a frame is refused.
MAX_ROUNDS = 500_000
MAX_TEXT = 4096
MAX_ENTRIES = 200  # params, extra_info, options

Scalar = Union[None, bool, int, float, str]
_FIELDS = {
    "type",
    "group",
    "extra_info",
    "options",
    "iterations",
    "has_error",
    "data",
}


@dataclass(frozen=True)
class BenchmarkRecord:
    """One benchmark a target ran: with its test, what pytest-benchmark's ``Metadata`` needs."""

    group: str | None
    extra_info: Dict[str, Scalar]
    options: Dict[str, Scalar]
    iterations: int
    has_error: bool
    data: Tuple[float, ...]


def _scalar(value: Any) -> Scalar:
    """A JSON scalar as is; anything else as its ``repr`` (the table shows text anyway)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return repr(value)[:MAX_TEXT]


def _scalars(mapping: Any) -> dict[str, Scalar] | None:
    if not isinstance(mapping, Mapping):
        return None
    return {
        str(key)[:MAX_TEXT]: _scalar(value) for key, value in list(mapping.items())[:MAX_ENTRIES]
    }


def benchmark_frame(metadata: Any) -> dict[str, Any]:
    """The frame for one of pytest-benchmark's ``Metadata`` objects (target side)."""
    options = {
        str(key): (getattr(value, "__name__", repr(value)) if callable(value) else _scalar(value))
        for key, value in dict(metadata.options).items()
    }
    return {
        "type": BENCHMARK_FRAME,
        "group": None if metadata.group is None else str(metadata.group),
        "extra_info": _scalars(metadata.extra_info) or {},
        "options": options,
        "iterations": int(metadata.iterations),
        "has_error": bool(metadata.has_error),
        "data": [float(value) for value in metadata.stats.data],
    }


def _text(value: Any, field: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ProtocolViolation(
            f"benchmark: {field} is not a text of at most {MAX_TEXT} characters"
        )
    return escape_controls(value)


def _checked_scalars(value: Any, field: str) -> dict[str, Scalar]:
    if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
        raise ProtocolViolation(
            f"benchmark: {field} is not a mapping of at most {MAX_ENTRIES} entries"
        )
    checked: dict[str, Scalar] = {}
    for key, item in value.items():
        if item is not None and not isinstance(item, (bool, int, float, str)):
            raise ProtocolViolation(f"benchmark: {field} holds something other than a scalar")
        if isinstance(item, str):
            item = _text(item, field)
        checked[str(_text(key, field))] = item
    return checked


def parse_benchmark_frame(message: Mapping[str, Any]) -> BenchmarkRecord:
    """Check a target's benchmark frame; raise ProtocolViolation on anything else."""
    if set(message) != _FIELDS:
        raise ProtocolViolation("benchmark: a frame has exactly " + ", ".join(sorted(_FIELDS)))
    iterations = message["iterations"]
    if (
        isinstance(iterations, bool)
        or not isinstance(iterations, int)
        or not 0 < iterations < 2**40
    ):
        raise ProtocolViolation("benchmark: iterations is not a positive integer")
    if not isinstance(message["has_error"], bool):
        raise ProtocolViolation("benchmark: has_error is not a boolean")
    data = message["data"]
    if not isinstance(data, list) or not 0 < len(data) <= MAX_ROUNDS:
        raise ProtocolViolation(f"benchmark: data is not a list of 1 to {MAX_ROUNDS} timings")
    for value in data:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ProtocolViolation("benchmark: a timing is not a finite number of seconds")
    return BenchmarkRecord(
        group=_text(message["group"], "group", optional=True),
        extra_info=_checked_scalars(message["extra_info"], "extra_info"),
        options=_checked_scalars(message["options"], "options"),
        iterations=iterations,
        has_error=message["has_error"],
        data=tuple(float(value) for value in data),
    )
