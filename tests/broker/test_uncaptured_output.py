"""Under ``-s`` a forked target's output still comes through the broker: live, and escaped.

A plain test under ``-s`` writes to the terminal. A forked target instead
writes to a pipe that the broker copies to its own output as it comes, with
every control character shown escaped: a test cannot write escape sequences
or raw bytes to the user's terminal even when pytest does not capture.
"""

from __future__ import annotations

import pytest
from project_runner import ProjectRun, run_pytest, write_project

FORKED = ("process", "seccomp", "chroot")
HOSTILE = "\\x1b]0;owned\\x07\\x1b[2J"


def _tests() -> str:
    lines = ["import os, sys", "from pytest_isolate import isolate", ""]
    for backend in FORKED:
        lines.append(
            f"""
@isolate("{backend}")
def test_prints_{backend}():
    print("printed by {backend}: {HOSTILE}")
    sys.stderr.write("stderr of {backend}\\\\n")
    os.write(1, b"raw write by {backend}: {HOSTILE}\\\\n")
"""
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    project = write_project(tmp_path_factory.mktemp("dash-s"), {"test_out.py": _tests()})
    return run_pytest(project, "-s", xdist=False)


def test_the_run_passes(run: ProjectRun) -> None:
    assert run.ret == 0, run.output[-3000:]


@pytest.mark.parametrize("backend", FORKED)
def test_the_output_reaches_the_terminal_escaped(run: ProjectRun, backend: str) -> None:
    assert f"printed by {backend}: \\x1b]0;owned\\x07\\x1b[2J" in run.output
    assert f"raw write by {backend}: \\x1b]0;owned" in run.output
    assert f"stderr of {backend}" in run.output


def test_no_raw_escape_reaches_the_terminal(run: ProjectRun) -> None:
    assert "\x1b]0;owned" not in run.output and "\x1b[2J" not in run.output
