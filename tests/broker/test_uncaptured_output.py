"""Under ``-s`` a target's output still comes through the broker: live, and escaped.

A plain test under ``-s`` writes to the terminal. A forked target instead
writes to a pipe that the broker copies to its own output as it comes; a
container's or guest's test writes to a pipe its agent reads and sends as
``output`` frames. Either way every control character is shown escaped: a
test cannot write escape sequences or raw bytes to the user's terminal even
when pytest does not capture. And it comes as it is written: a test's first
line is on the terminal while the test still runs.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = tuple(EVERY_BACKEND)
HOSTILE = "\\x1b]0;owned\\x07\\x1b[2J"


def _tests() -> str:
    lines = ["import os, sys", "from pytest_isolate import isolate", ""]
    for backend, args in EVERY_BACKEND.items():
        lines.append(
            f"""
@isolate({args})
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
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return run_pytest(project, "-s", xdist=False)


def test_the_run_passes(run: ProjectRun) -> None:
    assert run.ret == 0, run.output[-3000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_output_reaches_the_terminal_escaped(run: ProjectRun, backend: str) -> None:
    assert f"printed by {backend}: \\x1b]0;owned\\x07\\x1b[2J" in run.output
    assert f"raw write by {backend}: \\x1b]0;owned" in run.output
    assert f"stderr of {backend}" in run.output


def test_no_raw_escape_reaches_the_terminal(run: ProjectRun) -> None:
    assert "\x1b]0;owned" not in run.output and "\x1b[2J" not in run.output


LIVE = """
import time
from pytest_isolate import isolate

@isolate({args})
def test_slow():
    print("first line", flush=True)
    time.sleep(3)
    print("second line", flush=True)
"""


@pytest.mark.parametrize("backend", ["container", "vm"])
def test_a_spawned_targets_output_comes_while_the_test_runs(tmp_path: Path, backend: str) -> None:
    """The first line arrives about 3 s before the second: relayed live, not at the end."""
    project = write_project(tmp_path, {"test_live.py": LIVE.format(args=EVERY_BACKEND[backend])})
    project.chmod(0o755)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    assert process.stdout is not None
    seen: dict[str, float] = {}
    text = b""
    deadline = time.monotonic() + 300
    while process.poll() is None or select.select([process.stdout], [], [], 0)[0]:
        if time.monotonic() > deadline:
            process.kill()
            break
        if select.select([process.stdout], [], [], 0.1)[0]:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk and process.poll() is not None:
                break
            text += chunk
            for line in ("first line", "second line"):
                if line.encode() in text and line not in seen:
                    seen[line] = time.monotonic()
    assert process.wait() == 0, text.decode()[-3000:]
    assert seen["second line"] - seen["first line"] > 2.0, text.decode()[-3000:]
