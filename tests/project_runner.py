"""Write a generated test project, run pytest on it in a fresh interpreter, read its report.

Most of the plugin's behaviour is only visible end to end: a real broker (a
pytest subprocess) with real targets. Every test package checks it the same
way, so there is one runner and one reading of the report, here; what a
package adds (a container's broker pid, a hostile project) stays with it.

Found from every test directory because ``tests/conftest.py`` puts
``tests/`` on ``sys.path`` (pytest's default ``prepend`` import mode).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The command that is "pytest" for a run: this interpreter, plain pytest.
PYTEST = (sys.executable, "-m", "pytest")
#: Untrusted mode's front door: ``-P`` keeps the project directory off sys.path.
FRONT_DOOR = (sys.executable, "-P", "-m", "pytest_isolate.untrusted")

#: Variables of the outer run that would change the inner one (its options, its
#: xdist worker, its plugins): a generated run starts from a clean slate.
OUTER_ONLY = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_CURRENT_TEST",
    "PYTEST_PLUGINS",
)
#: Set by a plugin of the outer run (``shm_everywhere``): PYTEST_ADDOPTS for every inner run.
INNER_ADDOPTS = "ISOLATE_TESTS_INNER_ADDOPTS"
#: A wide terminal: ``-rA`` summary lines carry a test's failure reason, cut at the width.
COLUMNS = "400"

_OUTCOME = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"


@dataclass(frozen=True)
class ProjectRun:
    """One finished pytest run over a generated project."""

    ret: int
    output: str  # stdout and stderr together, as a terminal shows them
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def fnmatch_lines(self, patterns: Sequence[str]) -> None:
        """Assert that ``patterns`` match lines of the output in order (as pytester does)."""
        pytest.LineMatcher(self.lines).fnmatch_lines(list(patterns))

    def summary_line(self, name: str) -> str:
        """The ``-rA`` summary line of the test whose id ends with ``name``, with its reason.

        A test with a failed call and an error in teardown shows up twice; the
        first line wins.
        """
        pattern = rf"^(?:{_OUTCOME}) \S*::{re.escape(name)}(?:$| .*$)"
        found = re.search(pattern, self.output, re.M)
        if found is None:
            raise AssertionError(f"no summary line for {name!r} in:\n{self.output[-4000:]}")
        return found.group(0)

    def outcome(self, name: str) -> str:
        """PASSED, FAILED, ERROR, SKIPPED, XFAIL or XPASS: the first word of its summary line."""
        return self.summary_line(name).split(" ", 1)[0]

    def report_of(self, name: str) -> str:
        """The failure or error block of one test (its header up to the next header)."""
        header = re.compile(rf"^_+ (?:ERROR at \w+ of )?{re.escape(name)} _+$", re.M)
        found = header.search(self.output)
        if found is None:
            raise AssertionError(f"no report block for {name!r} in:\n{self.output[-4000:]}")
        rest = self.output[found.end() :]
        end = re.search(r"^(?:_{3,} .* _{3,}|={3,} .* ={3,})$", rest, re.M)
        return rest[: end.start()] if end else rest

    def backend_summary(self, label: str) -> str:
        """The broker's closing line for one backend: ``isolate LABEL: N tests, ...``."""
        prefix = f"isolate {label}: "
        for line in self.lines:
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no summary line for backend {label!r} in:\n{self.output[-4000:]}")


def write_project(root: Path, files: Mapping[str, str]) -> Path:
    """Write dedented ``files`` (paths relative to ``root``); a bare pytest.ini keeps ours out.

    Leading blank lines are dropped, so line 1 of a file is its first line of code.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, text in {"pytest.ini": "[pytest]\n", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def run_pytest(
    root: Path,
    *args: str,
    command: Sequence[str] = PYTEST,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cache: bool = False,
    xdist: bool = True,
    timeout: float = 600,
) -> ProjectRun:
    """``COMMAND -rA ARGS`` in ``root``, with ``env`` on top of ours (alone if not ``inherit_env``).

    The cache stays off unless asked for, so runs do not depend on earlier
    ones; ``xdist=False`` keeps the xdist plugin out of the run entirely.
    """
    base = {k: v for k, v in os.environ.items() if k not in OUTER_ONLY} if inherit_env else {}
    environ = {**base, "COLUMNS": COLUMNS, **(env or {})}
    if os.environ.get(INNER_ADDOPTS):
        environ["PYTEST_ADDOPTS"] = os.environ[INNER_ADDOPTS]
    options = ["-rA"]
    if not cache:
        options += ["-p", "no:cacheprovider"]
    if not xdist:
        options += ["-p", "no:xdist"]
    started = time.monotonic()
    completed = subprocess.run(
        [*command, *options, *args],
        cwd=root,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout.decode("utf-8", "replace")
    return ProjectRun(completed.returncode, output, time.monotonic() - started)


def doctor_output(env: Mapping[str, str] | None = None) -> str:
    """What ``pytest --isolate-doctor`` prints here (``env`` on top of this environment)."""
    return subprocess.run(
        [*PYTEST, "-p", "no:randomly", "--isolate-doctor"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    ).stdout
