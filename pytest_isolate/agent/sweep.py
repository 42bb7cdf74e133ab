"""Killing everything a test left behind inside the target, and reaping it.

Two situations, one goal (nothing of the test outlives its report):

- The agent is PID 1 of its PID namespace (a container, a VM's init):
  ``kill(-1, SIGKILL)`` reaches every process but the agent itself, setsid
  daemons included, and the kernel never delivers it to PID 1; every orphan
  becomes PID 1's child, so ``waitpid`` alone tells when all are gone.
- Elsewhere (the agent run on a host, in tests): the agent is a child
  subreaper, so orphans are re-parented to it. It kills its children, whose
  own children then become its children, and repeats until none is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from pytest_isolate.liveness import children
from pytest_isolate.target import steps


def become_reaper() -> None:
    """Outside PID 1: adopt orphans so that they can be found and killed."""
    if os.getpid() != 1:
        with contextlib.suppress(OSError):
            steps.set_child_subreaper()


def reap_all() -> None:
    """Collect every exited child (PID 1 inherits every orphan's zombie)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers(deadline: float = 5.0) -> None:
    """SIGKILL every descendant and reap them; give up after ``deadline`` seconds."""
    me = os.getpid()
    end = time.monotonic() + deadline
    if me == 1:
        _sweep_as_init(end)
        return
    while time.monotonic() < end:
        found = children(me)
        for child in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        reap_all()
        if not found and not children(me):
            return
        time.sleep(0.001)


def _sweep_as_init(end: float) -> None:
    """PID 1's sweep, without reading /proc: ``waitpid`` alone says when nothing is left.

    After ``kill(-1, SIGKILL)`` every process but PID 1 dies, and a dying
    parent hands its children to PID 1 before it becomes a zombie, so
    ``ECHILD`` from ``waitpid(-1)`` means no process is left anywhere below
    PID 1. Reading /proc instead costs milliseconds per test in a TCG guest,
    and this runs after every test.
    """
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child, hence no process at all but PID 1
        if pid == 0:  # some are still dying
            if time.monotonic() >= end:
                return
            time.sleep(0.001)
