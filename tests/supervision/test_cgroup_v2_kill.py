"""Emptying and reaping cgroup v2 groups, on this host's real unified hierarchy.

``cgroup.kill``, ``cgroup.freeze``, ``cgroup.events`` and moving processes
are core cgroup v2 features that need no controller, so they are proved on
whatever cgroup2 mount the host has: on a hybrid (systemd v1) host that is
``/sys/fs/cgroup/unified``. The limits (pids, memory) need the controllers
and are proved in a guest (``test_cgroup_v2_guest.py``).
"""

from __future__ import annotations

import itertools
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isolate.supervision.cgroup_v2 import (
    KillMethod,
    empty_group,
    reap_stale_groups,
    remove_group,
)
from pytest_isolate.supervision.cgroupfs import cgroup2_mounts, read_keyed, write

_names = itertools.count()


def _writable_cgroup2_mount() -> Path | None:
    if os.geteuid() != 0:
        return None
    for mount in cgroup2_mounts(Path("/proc/self/mountinfo").read_text()):
        if os.access(mount / "cgroup.procs", os.W_OK):
            return mount
    return None


@pytest.fixture
def group() -> Iterator[Path]:
    """A fresh group at the top of the host's cgroup2 hierarchy, removed afterwards."""
    mount = _writable_cgroup2_mount()
    if mount is None:
        pytest.skip("needs root and a writable cgroup2 mount")
    path = mount / f"pytest-isolate-test-{os.getpid()}-{next(_names)}"
    path.mkdir()
    try:
        yield path
    finally:
        empty_group(path, "kill")
        remove_group(path)


def dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _spawn_escapers(write_end: int) -> None:
    """In the group: a setsid daemon, a process that re-forks itself forever, and sleepers."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, f"{os.getpid()}\n".encode())
            while True:
                time.sleep(1)
        os._exit(0)
    if os.fork() == 0:  # a new pid every few microseconds: a list of pids is stale at once
        while os.fork() == 0:
            pass
        os._exit(0)
    for _ in range(5):
        if os.fork() == 0:
            os.write(write_end, f"{os.getpid()}\n".encode())
            while True:
                time.sleep(1)


def start_escapers(group: Path, subgroup: str | None = None) -> tuple[int, list[int]]:
    """A child that joins ``group`` (or a subgroup it makes) and starts escapers; their pids."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child never returns
        try:
            target = group
            if subgroup is not None:
                target = group / subgroup
                target.mkdir()
            write(target / "cgroup.procs", "0")
            _spawn_escapers(write_end)
            while True:
                time.sleep(1)
        finally:
            os._exit(1)
    os.close(write_end)
    pids: list[int] = []
    buffered = b""
    deadline = time.monotonic() + 10
    while len(pids) < 6 and time.monotonic() < deadline:
        if select.select([read_end], [], [], 0.5)[0]:
            buffered += os.read(read_end, 4096)
            *lines, buffered = buffered.split(b"\n")
            pids += [int(line) for line in lines]
    os.close(read_end)
    assert len(pids) == 6, "the escapers did not start"
    return child, pids


def _wait_dead(pids: list[int], seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while [p for p in pids if not dead(p)] and time.monotonic() < deadline:
        time.sleep(0.01)
    return [p for p in pids if not dead(p)]


@pytest.mark.parametrize("method", ["kill", "freeze", "signal"])
def test_each_kill_method_empties_the_group_of_daemons_and_re_forkers(
    group: Path, method: KillMethod
) -> None:
    child, pids = start_escapers(group)
    assert read_keyed(group / "cgroup.events")["populated"] == 1
    assert empty_group(group, method) is True
    os.waitpid(child, 0)
    assert read_keyed(group / "cgroup.events")["populated"] == 0
    assert (group / "cgroup.procs").read_text() == ""
    assert _wait_dead(pids) == []


def test_the_freeze_method_leaves_the_group_thawed(group: Path) -> None:
    child, _pids = start_escapers(group)
    empty_group(group, "freeze")
    os.waitpid(child, 0)
    assert (group / "cgroup.freeze").read_text().strip() == "0"


@pytest.mark.parametrize("method", ["kill", "freeze", "signal"])
def test_processes_hidden_in_a_subgroup_are_killed_and_the_subgroup_removed(
    group: Path, method: KillMethod
) -> None:
    child, pids = start_escapers(group, subgroup="hideout")
    assert (group / "cgroup.procs").read_text() == ""  # nothing directly in the group
    assert empty_group(group, method) is True
    os.waitpid(child, 0)
    assert _wait_dead(pids) == []
    remove_group(group)
    assert not group.exists()


def test_an_empty_group_is_left_at_once(group: Path) -> None:
    """Nothing to kill: no wait for ``populated 0`` (which, with members, polls for seconds)."""
    started = time.monotonic()
    assert empty_group(group, "kill") is True
    assert time.monotonic() - started < 1.0


def test_leaves_of_dead_brokers_are_reaped_and_live_ones_kept(group: Path) -> None:
    gone = os.fork()
    if gone == 0:  # pragma: no cover
        os._exit(0)
    os.waitpid(gone, 0)  # a pid that no longer exists: a broker that died
    stale, live = group / str(gone), group / str(os.getpid())
    stale.mkdir()
    live.mkdir()
    child, pids = start_escapers(stale)
    reap_stale_groups(group)
    os.waitpid(child, 0)
    assert not stale.exists()
    assert _wait_dead(pids) == []
    assert live.is_dir()
