"""Helpers for container backend tests: a pytester project that the container can read."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_isolate.container.reaping import LABEL_BROKER_PID, LABEL_RUN

BOOKWORM = "pytest-isolate/debian:bookworm"
TRIXIE = "pytest-isolate/debian:trixie"

CONFTEST = """
import os

def pytest_configure(config):
    # Only the broker has this variable (a container gets a fresh environment).
    path = os.environ.get("BROKER_PID_FILE")
    if path:
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
"""


@dataclass
class ProjectRun:
    """One real broker (pytest subprocess) run over a generated project."""

    ret: int
    output: str
    broker_pid: int

    @property
    def lines(self) -> pytest.LineMatcher:
        return pytest.LineMatcher(self.output.splitlines())

    def outcome(self, name: str) -> str:
        """The ``-rA`` summary line of test ``name`` (PASSED/FAILED/...)."""
        for line in self.output.splitlines():
            words = line.split(" ")
            if len(words) > 1 and words[0] in OUTCOME_WORDS and words[1].endswith(f"::{name}"):
                return line
        raise AssertionError(f"no outcome line for {name}:\n{self.output[-6000:]}")


OUTCOME_WORDS = {"PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"}


def run_project(
    directory: Path, files: dict[str, str], *args: str, env: dict[str, str] | None = None
) -> ProjectRun:
    """Write ``files`` into ``directory`` (readable by uid 65534) and run pytest on it.

    Module-scoped fixtures use this so that a whole hostile suite costs one
    broker start; the broker's pid comes back through the conftest.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(text))
    directory.chmod(0o755)
    pid_file = directory.parent / f"{directory.name}.broker-pid"
    full_env = {
        **os.environ,
        "CI": "1",
        "COLUMNS": "300",
        "BROKER_PID_FILE": str(pid_file),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=directory,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    broker_pid = int(pid_file.read_text()) if pid_file.exists() else -1
    with contextlib.suppress(OSError):
        pid_file.unlink()
    return ProjectRun(proc.returncode, proc.stdout, broker_pid)


def make_project(pytester: pytest.Pytester, **files: str) -> None:
    """Write the files; make the project directory readable by the container's uid 65534."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**files)
    pytester.path.chmod(0o755)


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, int]:
    """Run pytest in a subprocess (a real broker); return its result and its pid."""
    pid_file = pytester.path.parent / f"{pytester.path.name}.broker-pid"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BROKER_PID_FILE", str(pid_file))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args, timeout=300)
    broker_pid = int(pid_file.read_text())
    pid_file.unlink()
    return result, broker_pid


def containers_of(broker_pid: int) -> list[dict[str, Any]]:
    client = docker.from_env()
    try:
        return list(
            client.api.containers(
                all=True, filters={"label": [LABEL_RUN, f"{LABEL_BROKER_PID}={broker_pid}"]}
            )
        )
    finally:
        client.close()


def wait_no_containers(broker_pid: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    left = containers_of(broker_pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = containers_of(broker_pid)
    return left


def remove_containers_of(broker_pid: int) -> None:
    client = docker.from_env()
    try:
        for summary in containers_of(broker_pid):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(summary["Id"], force=True)
    finally:
        client.close()
