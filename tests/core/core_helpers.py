"""Helpers for the core tests: generate a tiny project, run pytest on it, read the result.

Most behaviours are checked end to end: a real pytest subprocess, real forks,
real signals. A run is shared by the tests of one module when it can be (a
module-scoped fixture), so that each assertion stays its own named test
while the suite stays fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: environment variables of the outer run that must not leak into generated runs
_OUTER_ONLY = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_CURRENT_TEST",
    "PYTEST_PLUGINS",
)


@dataclass
class Run:
    """The outcome of one generated pytest run."""

    ret: int
    output: str  # stdout and stderr together
    seconds: float

    def outcome(self, name: str) -> str:
        """PASSED, FAILED, ERROR, SKIPPED, XFAIL or XPASS for the test whose id ends with ``name``.

        Read from the ``-rA`` short summary; a test with a failed call and an
        error in teardown shows up twice, the first line wins.
        """
        pattern = re.compile(
            rf"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) \S*::{re.escape(name)}(?:$| )", re.M
        )
        found = pattern.search(self.output)
        if found is None:
            raise AssertionError(f"no summary line for {name!r} in:\n{self.output[-4000:]}")
        return found.group(1)

    def report_of(self, name: str) -> str:
        """The failure or error block of one test (its header up to the next header)."""
        header = re.compile(rf"^_+ (?:ERROR at \w+ of )?{re.escape(name)} _+$", re.M)
        found = header.search(self.output)
        if found is None:
            raise AssertionError(f"no report block for {name!r} in:\n{self.output[-4000:]}")
        rest = self.output[found.end() :]
        end = re.search(r"^(?:_{3,} .* _{3,}|={3,} .* ={3,})$", rest, re.M)
        return rest[: end.start()] if end else rest


def write_project(root: Path, files: Mapping[str, str]) -> Path:
    """Write dedented files under ``root``; a bare pytest.ini keeps our own config out."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"pytest.ini": "[pytest]\n", **files}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def run_pytest(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cache: bool = False,
    timeout: float = 120,
) -> Run:
    """``python -m pytest -rA ARGS`` in ``root``, in a fresh interpreter."""
    environ = {k: v for k, v in os.environ.items() if k not in _OUTER_ONLY}
    environ.update(env or {})
    command = [sys.executable, "-m", "pytest", "-rA"]
    if not cache:
        command += ["-p", "no:cacheprovider"]
    started = time.monotonic()
    completed = subprocess.run(
        [*command, *args],
        cwd=root,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout.decode("utf-8", "replace")
    return Run(completed.returncode, output, time.monotonic() - started)


def process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a zombie has already been killed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_all_dead(pids: list[int], seconds: float = 3.0) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for their reaper."""
    deadline = time.monotonic() + seconds
    alive = [p for p in pids if process_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if process_alive(p)]
    return alive
