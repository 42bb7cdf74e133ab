"""Ending the run from inside a target: ``pytest.exit()``, and ``q`` in the debugger.

In a plain run both raise pytest's ``Exit``, which ends the session with its
reason and return code. A target sends that as an ``exit`` frame, and the
broker ends the run the same way after the test's reports, on every
backend, instead of calling the target crashed. The debugger runs on the
user's terminal for a forked target: driven here through a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import run_pytest, write_project

EXITS = """
import pytest
from pytest_isolate import isolate

@isolate({args})
def test_exits():
    pytest.exit("stop here", returncode=3)

def test_after():
    pass
"""


@pytest.mark.parametrize("backend", ["plain", *EVERY_BACKEND])
def test_pytest_exit_ends_the_run_as_in_a_plain_run(tmp_path: Path, backend: str) -> None:
    source = EXITS.replace("@isolate({args})\n", "") if backend == "plain" else EXITS
    project = write_project(
        tmp_path, {"test_exit.py": source.format(args=EVERY_BACKEND.get(backend))}
    )
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    run = run_pytest(project, xdist=False)
    assert run.ret == 3, run.output[-3000:]
    assert "_pytest.outcomes.Exit: stop here" in run.output
    assert "test_after" not in run.output  # the run ended there
    assert (
        "exited with status" not in run.output and "crashed" not in run.output.split("isolate")[-1]
    )


DEBUGGED = """
from pytest_isolate import isolate

@isolate("{backend}")
def test_fails():
    assert 1 == 2

def test_after():
    pass
"""


def _read_until(fd: int, needle: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize("backend", ["process", "seccomp", "chroot"])
def test_q_in_the_debugger_ends_the_run(tmp_path: Path, backend: str) -> None:
    """A forked target holds the terminal under --pdb: the user asked for the debugger."""
    project = write_project(tmp_path, {"test_pdb.py": DEBUGGED.format(backend=backend)})
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--pdb", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=project,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**env, "TERM": "dumb"},
        start_new_session=True,
    )
    os.close(secondary)
    try:
        before = _read_until(primary, b"(Pdb)", 60)
        assert b"(Pdb)" in before, before.decode(errors="replace")[-2000:]
        os.write(primary, b"q\n")
        after = _read_until(primary, b"no-such-end", 30)
        assert process.wait(timeout=30) == 2, after.decode(errors="replace")[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
    text = after.decode(errors="replace")
    assert "Exit: Quitting debugger" in text, text[-2000:]
    assert "exited with status" not in text and "test_after" not in text


BREAKPOINT = """
from pytest_isolate import isolate

@isolate({args})
def test_stops():
    breakpoint()

def test_after():
    pass
"""


@pytest.mark.parametrize("backend", list(EVERY_BACKEND))
def test_breakpoint_without_a_terminal_fails_its_test_and_says_how(
    tmp_path: Path, backend: str
) -> None:
    """Without --pdb a target has no terminal: breakpoint() cannot stop, and says so."""
    project = write_project(
        tmp_path, {"test_bp.py": BREAKPOINT.format(args=EVERY_BACKEND[backend])}
    )
    project.chmod(0o755)
    run = run_pytest(project, xdist=False)
    line = run.summary_line("test_stops")
    assert line.startswith("FAILED") and "breakpoint() cannot stop" in line, line
    assert run.outcome("test_after") == "PASSED"
