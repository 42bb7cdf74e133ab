"""Container backend tests: a generated project the container can read, and its containers.

The run itself is ``project_runner``'s; what is the container's is here: the
images, a conftest through which the broker tells its pid (the label of its
containers), and the engine queries that find what a broker left behind.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from project_runner import ProjectRun, run_pytest, write_project

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


@dataclass(frozen=True)
class ContainerRun(ProjectRun):
    """A run whose broker reported its pid: the label its containers carry."""

    broker_pid: int  # -1 if the broker never got as far as configuring itself


def run_project(
    directory: Path, files: dict[str, str], *args: str, env: dict[str, str] | None = None
) -> ContainerRun:
    """Write ``files`` into ``directory`` (readable by uid 65534) and run a broker on it.

    Module-scoped fixtures use this so that a whole hostile suite costs one
    broker start; the broker's pid comes back through the conftest.
    """
    write_project(directory, {"conftest.py": CONFTEST, **files})
    directory.chmod(0o755)
    pid_file = directory.parent / f"{directory.name}.broker-pid"
    broker_env = {"CI": "1", "BROKER_PID_FILE": str(pid_file), **(env or {})}
    run = run_pytest(directory, *args, env=broker_env, xdist=False)
    broker_pid = int(pid_file.read_text()) if pid_file.exists() else -1
    with contextlib.suppress(OSError):
        pid_file.unlink()
    return ContainerRun(run.ret, run.output, run.seconds, broker_pid)


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


def hosts(run: ProjectRun) -> dict[str, str]:
    """Test name -> the container hostname it printed (from the -rA sections)."""
    found: dict[str, str] = {}
    current = None
    for line in run.output.splitlines():
        header = re.match(r"_+ (test_\w+) _+$", line)
        if header:
            current = header.group(1)
        elif line.startswith("HOST ") and current:
            found[current] = line.split()[1]
    return found
