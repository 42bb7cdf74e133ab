"""Coverage frames: what a target may say about the lines it ran (pure, table-tested)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.wire.coverage_frames import (
    MAX_FILES_PER_FRAME,
    MAX_NUMBERS_PER_FRAME,
    CoverageFrame,
    coverage_frames,
    parse_coverage_frame,
)
from pytest_isolate.wire.frames import ProtocolViolation


def test_lines_and_arcs_round_trip() -> None:
    (lines,) = coverage_frames(False, {"/p/a.py": [3, 1, 2]})
    assert parse_coverage_frame(lines) == CoverageFrame(False, (("/p/a.py", (3, 1, 2)),))
    (arcs,) = coverage_frames(True, {"/p/a.py": [(-1, 1), (1, -1)]})
    assert parse_coverage_frame(arcs) == CoverageFrame(True, (("/p/a.py", ((-1, 1), (1, -1))),))


def test_a_large_measurement_is_split_into_frames_within_the_caps() -> None:
    files = {f"/p/m{i}.py": list(range(1, 400)) for i in range(2000)}
    frames = list(coverage_frames(False, files))
    assert len(frames) > 1
    parsed = [parse_coverage_frame(frame) for frame in frames]
    assert sum(len(frame.files) for frame in parsed) >= len(files)
    assert all(len(frame.files) <= MAX_FILES_PER_FRAME for frame in parsed)
    one_big = list(coverage_frames(False, {"/p/big.py": list(range(1, MAX_NUMBERS_PER_FRAME * 2))}))
    assert len(one_big) >= 2
    for frame in one_big:
        parse_coverage_frame(frame)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "coverage", "arcs": False},
        {"type": "coverage", "arcs": "no", "files": {}},
        {"type": "coverage", "arcs": False, "files": [], "extra": 1},
        {"type": "coverage", "arcs": False, "files": {"relative.py": [1]}},
        {"type": "coverage", "arcs": False, "files": {"/p/../etc/passwd": [1]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": [0]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": [-5]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": [True]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": [10**9]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": "1,2"}},
        {"type": "coverage", "arcs": True, "files": {"/p/a.py": [[1, 0]]}},
        {"type": "coverage", "arcs": True, "files": {"/p/a.py": [[1, 2, 3]]}},
        {"type": "coverage", "arcs": False, "files": {"/p/a.py": list(range(1, 300_000))}},
    ],
    ids=lambda m: str(m)[:60],
)
def test_malformed_coverage_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolViolation):
        parse_coverage_frame(message)


def test_only_the_projects_files_are_accepted() -> None:
    frame = CoverageFrame(False, (("/p/a.py", (1,)),))
    assert frame.check_within("/p") is frame
    with pytest.raises(ProtocolViolation, match="not a file of the project"):
        CoverageFrame(False, (("/pother/a.py", (1,)),)).check_within("/p")


def test_nothing_is_accepted_before_the_target_was_told_its_project() -> None:
    with pytest.raises(ProtocolViolation, match="before it was told its project"):
        CoverageFrame(False, (("/p/a.py", (1,)),)).check_within(None)
