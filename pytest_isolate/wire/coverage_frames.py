"""Coverage measured in a target, as it crosses the channel: numbers only, bounded.

A target measures the lines (or arcs, with branch coverage) its test ran and
sends them per file. The broker records them through coverage's own data API
and never opens a data file a target wrote. Everything here is hostile input
until ``parse_coverage_frame`` has checked it: absolute normalized paths,
line numbers from 1, arcs as pairs of non-zero numbers (coverage marks entry
and exit with negative ones), and caps on how much one frame may carry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from pytest_isolate.wire.frames import ProtocolViolation

COVERAGE_FRAME = "coverage"
#: What a broker's coverage measures (coverage's ``run:`` options), as a spawned
#: target is told it so that it measures the same.
COVERAGE_SETTINGS = ("branch", "source", "source_pkgs", "include", "omit")
#: Files and numbers per frame; a target splits what it measured to fit.
MAX_FILES_PER_FRAME = 1000
MAX_NUMBERS_PER_FRAME = 200_000
MAX_LINE = 10_000_000
MAX_PATH = 4096

Measured = Union[tuple[int, ...], tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class CoverageFrame:
    """What one frame says was run: ``files`` maps a path to its lines or its arcs."""

    arcs: bool
    files: tuple[tuple[str, Measured], ...]

    def check_within(self, root: str | None) -> CoverageFrame:
        """Itself, if every path is a file of the project under ``root``; else refused.

        With no ``root`` (a target whose project the broker never named) nothing is.
        """
        if root is None:
            raise ProtocolViolation("sent coverage data before it was told its project")
        prefix = root.rstrip("/") + "/"
        outside = next((path for path, _ in self.files if not path.startswith(prefix)), None)
        if outside is not None:
            raise ProtocolViolation(
                f"sent coverage data for {outside[:300]!r}, which is not a file of the project "
                f"({root}); coverage from a target is accepted for project files only"
            )
        return self


def coverage_frames(arcs: bool, files: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """The frames that carry ``files`` (target side), each within the per-frame caps."""
    batch: dict[str, list[Any]] = {}
    numbers = 0
    for path, measured in sorted(files.items()):
        values = [list(arc) for arc in measured] if arcs else list(measured)
        for start in range(0, len(values), MAX_NUMBERS_PER_FRAME // 2):
            part = values[start : start + MAX_NUMBERS_PER_FRAME // 2]
            cost = len(part) * (2 if arcs else 1)
            if batch and (
                numbers + cost > MAX_NUMBERS_PER_FRAME or len(batch) >= MAX_FILES_PER_FRAME
            ):
                yield {"type": COVERAGE_FRAME, "arcs": arcs, "files": batch}
                batch, numbers = {}, 0
            batch.setdefault(path, []).extend(part)
            numbers += cost
    if batch:
        yield {"type": COVERAGE_FRAME, "arcs": arcs, "files": batch}


def _number(value: Any, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= MAX_LINE:
        raise ProtocolViolation(f"coverage: {value!r} is not a line number")
    return value


def _arc(value: Any) -> tuple[int, int]:
    """A pair of non-zero line numbers: negative ones mark a code object's entry and exit."""
    if not isinstance(value, list) or len(value) != 2:
        raise ProtocolViolation("coverage: an arc is not a pair of line numbers")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int) or number == 0:
            raise ProtocolViolation(f"coverage: {number!r} is not an arc's line number")
        if abs(number) > MAX_LINE:
            raise ProtocolViolation(f"coverage: {number!r} is not an arc's line number")
    return value[0], value[1]


def _path(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_PATH
        or not os.path.isabs(value)
        or os.path.normpath(value) != value
        or "\x00" in value
    ):
        raise ProtocolViolation(
            f"coverage: {str(value)[:200]!r} is not an absolute normalized path"
        )
    return value


def parse_coverage_frame(message: Mapping[str, Any]) -> CoverageFrame:
    """Check a target's coverage frame; raise ProtocolViolation on anything else."""
    if set(message) != {"type", "arcs", "files"}:
        raise ProtocolViolation("coverage: a frame has exactly type, arcs and files")
    arcs = message["arcs"]
    files = message["files"]
    if not isinstance(arcs, bool) or not isinstance(files, dict):
        raise ProtocolViolation("coverage: arcs is not a boolean or files not an object")
    if len(files) > MAX_FILES_PER_FRAME:
        raise ProtocolViolation(f"coverage: more than {MAX_FILES_PER_FRAME} files in one frame")
    parsed: list[tuple[str, Measured]] = []
    numbers = 0
    for path, measured in files.items():
        if not isinstance(measured, list):
            raise ProtocolViolation("coverage: a file's numbers are not a list")
        numbers += len(measured) * (2 if arcs else 1)
        if numbers > MAX_NUMBERS_PER_FRAME:
            raise ProtocolViolation(
                f"coverage: more than {MAX_NUMBERS_PER_FRAME} numbers in one frame"
            )
        values: Measured = (
            tuple(_arc(arc) for arc in measured) if arcs else tuple(_number(n, 1) for n in measured)
        )
        parsed.append((_path(path), values))
    return CoverageFrame(arcs, tuple(parsed))
