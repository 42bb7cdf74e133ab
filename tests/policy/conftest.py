"""A real forked child that installs a real compiled filter and reports back.

The child drops to ``nobody`` (a root target defeats a deny-list), sets
no_new_privs, installs the program, hands the listener fd to the parent
over a socketpair and closes its copy, runs ``body`` and writes the
JSON-encoded result to a pipe. The parent services the listener with a
``ViolationMonitor`` exactly as the broker will.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_isolate.policy import (
    PolicySpec,
    Violation,
    ViolationMonitor,
    compile_policy,
    kmsg_position,
)
from pytest_isolate.target.steps import drop_privileges, set_no_new_privs, unprivileged_ids

CHILD_DEADLINE = 30.0


@dataclass
class ChildOutcome:
    pid: int
    result: Any
    status: int
    violations: list[Violation] = field(default_factory=list)
    kmsg_since: int = 0

    @property
    def killed_by(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None


def _child(
    spec: PolicySpec, body: Callable[[], Any], handoff: socket.socket, out: int, as_nobody: bool
) -> None:
    try:
        compiled = compile_policy(spec)  # cached in the parent: no work here
        if as_nobody:
            drop_privileges(*unprivileged_ids())
        set_no_new_privs()
        listener = compiled.install()
        if listener is not None:
            socket.send_fds(handoff, [b"L"], [listener])
            os.close(listener)
        handoff.close()
        payload: Any = {"ok": body()}
    except BaseException as exc:  # report everything; the parent asserts
        payload = {"error": f"{type(exc).__name__}: {exc}"}
    os.write(out, json.dumps(payload).encode())
    os._exit(0)


def run_filtered(
    spec: PolicySpec, body: Callable[[], Any], *, as_nobody: bool = True
) -> ChildOutcome:
    compiled = compile_policy(spec)
    since = kmsg_position()
    parent_end, child_end = socket.socketpair()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        os.close(read_end)
        _child(spec, body, child_end, write_end, as_nobody)
    child_end.close()
    os.close(write_end)
    monitor: ViolationMonitor | None = None
    try:
        if compiled.uses_notification:
            parent_end.settimeout(CHILD_DEADLINE)
            try:
                _msg, fds, _flags, _addr = socket.recv_fds(parent_end, 16, 1)
            except OSError:
                fds = []
            if fds:
                monitor = ViolationMonitor(fds[0], spec, target_pid=pid)
                monitor.start()
        data = _read_all(read_end, pid)
    finally:
        parent_end.close()
        os.close(read_end)
    violations = monitor.stop() if monitor is not None else []
    _, status = os.waitpid(pid, 0)
    result = json.loads(data) if data else None
    return ChildOutcome(pid, result, status, violations, since)


def _read_all(fd: int, pid: int) -> bytes:
    chunks = []
    deadline = time.monotonic() + CHILD_DEADLINE
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            raise TimeoutError("filtered child did not finish")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.fixture
def filtered() -> Callable[..., ChildOutcome]:
    """``filtered(spec, body)`` runs ``body`` in a real filtered child."""
    return run_filtered
