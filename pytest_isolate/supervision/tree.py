"""Killing everything a test started, however it tried to hide.

A process group is not enough (``setsid`` leaves it), so the broker uses the
strongest mechanism it has, in this order (``make_process_tree``):

* ``CgroupV2Tree`` (root, the unified hierarchy with the pids controller;
  ``supervision/cgroup_v2.py``): the broker moves the target into its leaf
  before untrusted code runs (``adopt``); afterwards ``cgroup.kill`` kills every member, forks
  racing it included (or, before Linux 5.14, freeze, kill, thaw).
* ``CgroupV1Tree`` (root, v1 freezer+pids): the same with one group per
  controller; the group is frozen (a fork bomb cannot outrun a frozen group),
  every member killed, and thawed.
* ``SubreaperTree`` (fallback): the broker is a child subreaper, so orphans
  of the test are re-parented to it; it kills every child it did not have
  before the target started, and repeats until none is left.

With cgroups the pids controller bounds fork bombs while they run and the
memory controller backs ``mem_limit``. Leftover cgroups of a broker that was
SIGKILLed are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from pytest_isolate.liveness import children, owner_is_gone, owner_tag
from pytest_isolate.supervision.cgroup_v2 import CgroupV2Tree
from pytest_isolate.supervision.cgroupfs import (
    DEFAULT_PIDS_LIMIT,
    GROUP_NAME,
    members_below,
    move_into,
    pids_in,
    remove_group,
    write,
)
from pytest_isolate.target import steps

#: Where the v1 controllers are mounted, one directory each.
CGROUP_ROOT = Path("/sys/fs/cgroup")

__all__ = [
    "CGROUP_ROOT",
    "GROUP_NAME",
    "CgroupV1Tree",
    "CgroupV2Tree",
    "ProcessTree",
    "SubreaperTree",
    "make_process_tree",
]


class ProcessTree(Protocol):
    """What the forked backends need: limits and a move in as a target starts, a kill after."""

    def before_start(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None: ...
    def adopt(self, pid: int) -> bool:
        """In the broker, as ``pid``'s test starts: move it, with what it forked while it
        waited, into the tree, and check that the kernel shows it there.

        False when ``pid`` is gone; ``LayerMissing`` when the kernel shows it elsewhere.
        """
        ...

    def membership(self) -> str | None:
        """The end of the ``/proc/PID/cgroup`` line a member shows, for its check."""
        ...

    def oom_kills(self) -> int: ...
    def holds_only(self, pid: int) -> bool:
        """Is ``pid`` (a target) all the tree holds: did its test leave no process behind?"""
        ...

    def kill(self, pid: int) -> None: ...
    def set_aside(self, pid: int) -> None:
        """``pid`` waits for its own test: the next ``kill`` must spare it."""
        ...

    def close(self) -> None: ...


class CgroupV1Tree:
    """One freezer, pids and memory cgroup per broker, reused by each target in turn.

    The memory cgroup backs ``mem_limit`` where RLIMIT_AS cannot see: memory
    charged without address space, such as files written to a tmpfs. Its OOM
    kills are counted so the report can say "killed by the OOM killer".
    """

    def __init__(self, freezer: Path, pids: Path, memory: Path | None = None) -> None:
        self.freezer = freezer
        self.pids = pids
        self.memory = memory
        for directory in (freezer, pids, memory):
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls) -> CgroupV1Tree | None:
        freezer_root = CGROUP_ROOT / "freezer"
        pids_root = CGROUP_ROOT / "pids"
        if os.geteuid() != 0 or not (freezer_root / "cgroup.procs").exists():
            return None
        if not (pids_root / "cgroup.procs").exists():
            return None
        memory_root = CGROUP_ROOT / "memory"
        has_memory = (memory_root / "cgroup.procs").exists()
        name = owner_tag()
        reap_stale_cgroups(
            (freezer_root / GROUP_NAME, pids_root / GROUP_NAME, memory_root / GROUP_NAME)
        )
        try:
            return cls(
                freezer_root / GROUP_NAME / name,
                pids_root / GROUP_NAME / name,
                memory_root / GROUP_NAME / name if has_memory else None,
            )
        except OSError:
            return None

    _pids_max: int | None = None

    _mem_max: int | None = None

    def before_start(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None:
        """In the broker: the next target's limits (each written only when it changes)."""
        limit = pids_limit or DEFAULT_PIDS_LIMIT
        if limit != self._pids_max:
            write(self.pids / "pids.max", str(limit))
            self._pids_max = limit
        memory = mem_limit or -1
        if self.memory is not None and memory != self._mem_max:
            with contextlib.suppress(OSError):  # EBUSY: charged page cache above the new limit
                write(self.memory / "memory.limit_in_bytes", str(memory))
                self._mem_max = memory

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took from our memory cgroup so far."""
        if self.memory is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def membership(self) -> str | None:
        """``pids:/pytest-isolate/PID``: the pids hierarchy's line, relative to its mount."""
        return "pids:/" + str(self.pids.relative_to(CGROUP_ROOT / "pids"))

    def adopt(self, pid: int) -> bool:
        """Into the freezer, pids and memory groups, before untrusted code runs."""
        groups = [self.freezer, self.pids] + ([self.memory] if self.memory is not None else [])
        return move_into(pid, [group / "cgroup.procs" for group in groups], self.membership())

    def set_aside(self, pid: int) -> None:
        pass  # a target joins the group only when its test starts

    def holds_only(self, pid: int) -> bool:
        """Nothing but ``pid`` in the freezer group, and no subgroup a root test could hide in."""
        if set(pids_in(self.freezer / "cgroup.procs")) - {pid}:
            return False
        return not self._has_subgroups()

    def kill(self, pid: int) -> None:
        if pids_in(self.freezer / "cgroup.procs") or self._has_subgroups():
            empty_v1_group(self.freezer, timeout=5.0)

    def _has_subgroups(self) -> bool:
        with os.scandir(self.freezer) as entries:
            return any(entry.is_dir(follow_symlinks=False) for entry in entries)

    def close(self) -> None:
        self.kill(0)
        for directory in (self.freezer, self.pids, self.memory):
            if directory is not None:
                remove_group(directory)


def empty_v1_group(group: Path, timeout: float) -> None:
    """Kill every member of ``group`` and its subgroups, frozen (a v1 freezer group) so that
    none can fork meanwhile, until none is left or ``timeout`` passes; then thaw."""
    freezer_state = group / "freezer.state"
    with contextlib.suppress(OSError):
        write(freezer_state, "FROZEN")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            members = members_below(group)
            if not members:
                break
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            with contextlib.suppress(OSError):  # a frozen task dies once thawed
                write(freezer_state, "THAWED")
            time.sleep(0.001)
    finally:
        with contextlib.suppress(OSError):
            write(freezer_state, "THAWED")


def reap_stale_cgroups(parents: Iterable[Path]) -> None:
    """Kill members of, and remove, cgroups left by brokers that no longer exist."""
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and owner_is_gone(child.name):
                empty_v1_group(child, timeout=2.0)
                remove_group(child)


class SubreaperTree:
    """Fallback without cgroups: adopt orphans as a subreaper and kill the new ones."""

    def __init__(self) -> None:
        steps.set_child_subreaper()
        self._before: set[int] = set()

    def before_start(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None:
        self._before = children()

    def adopt(self, pid: int) -> bool:
        return True  # its orphans come to the broker, a subreaper, wherever it is

    def membership(self) -> str | None:
        return None  # no cgroup: nothing for the receipt to check

    def oom_kills(self) -> int:
        return 0

    def set_aside(self, pid: int) -> None:
        self._before.add(pid)

    def holds_only(self, pid: int) -> bool:
        """No orphan of the test was handed to the broker (the subreaper)."""
        return not children() - self._before - {pid}

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            strays = children() - self._before - {pid}
            if not strays:
                return
            for stray in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stray, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(stray, 0)

    def close(self) -> None:
        pass


def make_process_tree() -> ProcessTree:
    """The strongest tree this broker can have: cgroup v2, else v1, else a subreaper."""
    tree: ProcessTree | None = CgroupV2Tree.create() or CgroupV1Tree.create()
    return tree if tree is not None else SubreaperTree()
