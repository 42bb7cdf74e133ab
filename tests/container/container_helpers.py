"""Helpers shared by the engine-layer tests (imported by name: no conftest imports)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import docker.errors

from pytest_isolate.container.attached_stream import AttachedStream
from pytest_isolate.container.engine import Engine

#: One run id for this test session: every container we start carries it.
TEST_RUN_ID = f"engine-tests-{uuid.uuid4()}"

#: An agent stand-in: echoes stdin lines to stdout until stdin ends.
ECHO_LOOP = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "out.write(b'ready\\n'); out.flush()\n"
    "for line in sys.stdin.buffer:\n"
    "    out.write(line); out.flush()\n"
)

Launch = Callable[..., tuple[str, AttachedStream]]


def container_exists(engine: Engine, container_id: str) -> bool:
    try:
        engine.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


def wait_gone(engine: Engine, container_id: str, timeout: float = 10) -> bool:
    """Auto-remove is asynchronous: wait until the engine forgot the container."""
    deadline = time.monotonic() + timeout
    while container_exists(engine, container_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def dead_pid() -> int:
    """A pid that was just alive and is now reaped (reuse within a test is unlikely)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
