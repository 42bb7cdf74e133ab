"""Leftovers of a broker in a PID namespace are judged by the namespace, not the bare pid.

Real brokers, real cgroup v1 groups and real PID namespaces (``unshare``).
A broker that is pid 2 inside a namespace once left ``pytest-isolate/2``,
which every later host run took for kthreadd's (pid 2 on the host) and kept.
The other way round, a broker inside a namespace, which cannot see the host's
processes, must not take a live host broker for a dead one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_isolate.liveness import (
    HOST_PID_NAMESPACE,
    children,
    descendants,
    inner_pid,
    owner_is_gone,
    owner_tag,
    parse_owner_tag,
    pid_is_alive,
    pid_namespace,
)
from pytest_isolate.supervision.cgroupfs import pids_in, remove_group
from pytest_isolate.supervision.tree import CGROUP_ROOT, CgroupV1Tree, empty_v1_group

#: A broker that makes its tree, moves a sleeping member in, names its group and
#: then either waits or is killed as a broker can be (``kill`` as argv[1]).
BROKER = """
import os, signal, subprocess, sys, time
from pytest_isolate.supervision.tree import CgroupV1Tree
tree = CgroupV1Tree.create()
member = subprocess.Popen(["sleep", "120"])
assert tree.adopt(member.pid)
print(tree.freezer, os.getpid(), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(120)
"""


@pytest.fixture(autouse=True)
def _v1_tree_host() -> None:
    if os.geteuid() != 0 or not (CGROUP_ROOT / "freezer" / "cgroup.procs").exists():
        pytest.skip("needs root and the cgroup v1 freezer (this host's process tree)")
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare")


class Broker:
    def __init__(self, process: subprocess.Popen[str], group: Path, inner_pid: int) -> None:
        self.process = process
        self.group = group
        self.inner_pid = inner_pid

    def members(self) -> list[int]:
        return pids_in(self.group / "cgroup.procs")


StartBroker = Callable[..., Broker]


@pytest.fixture
def start_broker() -> Iterator[StartBroker]:
    started: list[Broker] = []

    def start(*, in_namespace: bool, then: str) -> Broker:
        command = [sys.executable, "-c", BROKER, then]
        if in_namespace:
            # sh is the namespace's init (pid 1): it reaps the broker (pid 2) and
            # outlives it, as a jail's init outlives a test process that was SIGKILLed.
            script = '"$0" -c "$1" "$2" & wait; exec sleep 120'
            command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
            command += ["sh", "-c", script, sys.executable, BROKER, then]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        group, inner_pid = process.stdout.readline().split()
        broker = Broker(process, Path(group), int(inner_pid))
        started.append(broker)
        if then == "kill" and in_namespace:
            assert _wait_dead([_host_pid(process.pid, int(inner_pid))]) == []
        elif then == "kill":
            process.wait()
        return broker

    yield start
    for broker in started:
        broker.process.kill()
        broker.process.wait()
        for controller in ("freezer", "pids", "memory"):
            group = CGROUP_ROOT / controller / broker.group.relative_to(CGROUP_ROOT / "freezer")
            empty_v1_group(group, timeout=5.0)
            remove_group(group)


def _host_pid(root: int, pid_inside: int) -> int:
    """The host's pid of the process that is ``pid_inside`` in its namespace, below ``root``."""
    for pid in [root, *descendants(root)]:
        if inner_pid(pid) == pid_inside:
            return pid
    raise AssertionError(f"no process below {root} is pid {pid_inside} in its namespace")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a namespace's ``sleep`` init reaps no orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_dead(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 5.0
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [pid for pid in pids if _running(pid)]


def test_the_host_names_its_leftovers_by_pid_alone() -> None:
    assert pid_namespace() == HOST_PID_NAMESPACE
    assert owner_tag() == str(os.getpid())
    assert parse_owner_tag(owner_tag()) == (os.getpid(), HOST_PID_NAMESPACE)
    assert parse_owner_tag("pytest-isolate") is None and parse_owner_tag("2.x") is None


def test_a_namespaced_brokers_group_names_its_namespace(start_broker: StartBroker) -> None:
    broker = start_broker(in_namespace=True, then="wait")
    pid, namespace = parse_owner_tag(broker.group.name) or (0, 0)
    assert (pid, broker.inner_pid) == (2, 2)
    (init,) = children(broker.process.pid)  # unshare forked the namespace's init
    assert namespace == pid_namespace(init) != HOST_PID_NAMESPACE
    assert not owner_is_gone(broker.group.name)


def test_a_killed_namespaced_brokers_group_is_removed_by_the_next_host_run(
    start_broker: StartBroker,
) -> None:
    live = start_broker(in_namespace=True, then="wait")
    killed = start_broker(in_namespace=True, then="kill")
    orphans = killed.members()
    assert orphans and all(pid_is_alive(pid) for pid in orphans)  # its namespace lives on
    tree = CgroupV1Tree.create()
    assert tree is not None
    tree.close()
    assert not killed.group.exists()
    assert _wait_dead(orphans) == []
    assert live.group.exists() and live.members()  # a live one, in its namespace, stays


def test_a_namespaced_broker_leaves_a_live_host_brokers_group_alone(
    start_broker: StartBroker,
) -> None:
    host = start_broker(in_namespace=False, then="wait")
    members = host.members()
    start_broker(in_namespace=True, then="wait")  # it made its tree after the host's
    assert host.group.exists()
    assert host.members() == members and all(pid_is_alive(pid) for pid in members)


def test_a_killed_host_brokers_group_is_removed_by_the_next_host_run(
    start_broker: StartBroker,
) -> None:
    killed = start_broker(in_namespace=False, then="kill")
    orphans = killed.members()
    assert orphans
    tree = CgroupV1Tree.create()
    assert tree is not None
    tree.close()
    assert not killed.group.exists()
    assert _wait_dead(orphans) == []
