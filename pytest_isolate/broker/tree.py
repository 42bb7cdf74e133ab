"""Killing everything a test started, however it tried to hide.

A process group is not enough (``setsid`` leaves it), so the broker uses the
strongest mechanism it has:

* ``CgroupTree`` (root, cgroup v1 freezer+pids or cgroup v2): the target
  joins a cgroup of its own before untrusted code runs; afterwards the broker
  freezes the group (a fork bomb cannot outrun a frozen group), kills every
  member and thaws. The pids controller bounds fork bombs while they run.
* ``SubreaperTree`` (fallback): the broker is a child subreaper, so orphans
  of the test are re-parented to it; it kills every child it did not have
  before the target started, and repeats until none is left.

Leftover cgroups of a broker that was SIGKILLed are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from pytest_isolate.liveness import pid_is_alive
from pytest_isolate.target import steps

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_NAME = "pytest-isolate"
DEFAULT_PIDS_LIMIT = 4096


class ProcessTree(Protocol):
    def before_fork(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None: ...
    def join(self) -> None: ...
    def oom_kills(self) -> int: ...
    def kill(self, pid: int) -> None: ...
    def close(self) -> None: ...


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _pids_in(procs_file: Path) -> list[int]:
    try:
        return [int(x) for x in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


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
        name = f"{os.getpid()}"
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

    def before_fork(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None:
        """In the broker: the next target's limits (each written only when it changes)."""
        limit = pids_limit or DEFAULT_PIDS_LIMIT
        if limit != self._pids_max:
            _write(self.pids / "pids.max", str(limit))
            self._pids_max = limit
        memory = mem_limit or -1
        if self.memory is not None and memory != self._mem_max:
            with contextlib.suppress(OSError):  # EBUSY: charged page cache above the new limit
                _write(self.memory / "memory.limit_in_bytes", str(memory))
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

    def join(self) -> None:
        """In the child, before untrusted code: enter our cgroups."""
        _write(self.freezer / "cgroup.procs", "0")
        _write(self.pids / "cgroup.procs", "0")
        if self.memory is not None:
            _write(self.memory / "cgroup.procs", "0")

    def kill(self, pid: int) -> None:
        procs = self.freezer / "cgroup.procs"
        if not _pids_in(procs):
            return
        with contextlib.suppress(OSError):
            _write(self.freezer / "freezer.state", "FROZEN")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            members = _pids_in(procs)
            if not members:
                break
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            with contextlib.suppress(OSError):
                _write(self.freezer / "freezer.state", "THAWED")
            time.sleep(0.001)
        with contextlib.suppress(OSError):
            _write(self.freezer / "freezer.state", "THAWED")

    def close(self) -> None:
        self.kill(0)
        for directory in (self.freezer, self.pids, self.memory):
            if directory is not None:
                with contextlib.suppress(OSError):
                    directory.rmdir()


def reap_stale_cgroups(parents: Iterable[Path]) -> None:
    """Kill members of, and remove, cgroups left by brokers that no longer exist."""
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if not child.is_dir() or not child.name.isdigit() or pid_is_alive(int(child.name)):
                continue
            for member in _pids_in(child / "cgroup.procs"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            deadline = time.monotonic() + 2.0
            while _pids_in(child / "cgroup.procs") and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if (child / "freezer.state").exists():
                        _write(child / "freezer.state", "THAWED")
                time.sleep(0.01)
            with contextlib.suppress(OSError):
                child.rmdir()


class SubreaperTree:
    """Fallback without cgroups: adopt orphans as a subreaper and kill the new ones."""

    def __init__(self) -> None:
        steps.set_child_subreaper()
        self._before: set[int] = set()

    @staticmethod
    def _children() -> set[int]:
        found: set[int] = set()
        with contextlib.suppress(OSError):
            for task in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/self/task/{task}/children").read_text()
                    found.update(int(x) for x in text.split())
        return found

    def before_fork(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None:
        self._before = self._children()

    def join(self) -> None:
        pass

    def oom_kills(self) -> int:
        return 0

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            strays = self._children() - self._before - {pid}
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
    tree = CgroupV1Tree.create()
    if tree is not None:
        return tree
    return SubreaperTree()
