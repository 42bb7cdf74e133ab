"""Nothing of a jailed test outlives it: daemons die with it, a killed target dies whole."""

from __future__ import annotations

import os
import signal
import time

from conftest import HostTree
from jail_harness import pids_in_namespace, run_jailed, wait_until


def _start_daemon(heartbeat_path: str) -> None:
    """Double fork + setsid: the usual way to escape a process group; then beat forever."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            beat = 0
            while True:
                beat += 1
                with open(heartbeat_path + ".tmp", "w") as handle:
                    handle.write(f"{os.getpid()} {beat}\n")
                os.replace(heartbeat_path + ".tmp", heartbeat_path)
                time.sleep(0.01)
        os._exit(0)
    os.wait()


def _heartbeat(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def test_a_double_forked_daemon_dies_when_the_test_ends(
    host_tree: HostTree, rootless: bool
) -> None:
    heartbeat = os.path.join(host_tree.exchange, "daemon.pid")

    def body() -> dict[str, object]:
        _start_daemon(heartbeat)
        assert wait_until(lambda: os.path.exists(heartbeat))
        time.sleep(0.05)
        return {"daemon_started": True}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["daemon_started"] is True
    assert run.leftover_pids == []
    last = _heartbeat(heartbeat)
    time.sleep(0.2)
    assert _heartbeat(heartbeat) == last  # no beat since the test ended


def test_killing_the_target_kills_the_test_and_its_daemons(host_tree: HostTree) -> None:
    heartbeat = os.path.join(host_tree.exchange, "daemon.pid")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from pytest_isolate.jail import enter_jail
            from pytest_isolate.target import steps

            os.close(read_end)
            steps.close_inherited_fds({2, write_end})
            enter_jail(host_tree.config(), {write_end})
            steps.drop_privileges(*steps.unprivileged_ids())
            _start_daemon(heartbeat)
            os.write(write_end, os.readlink("/proc/self/ns/pid").encode())
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(write_end)
    pidns = os.read(read_end, 100).decode()
    assert pidns.startswith("pid:[")
    assert wait_until(lambda: os.path.exists(heartbeat))
    assert len(pids_in_namespace(pidns)) == 3  # init, test, daemon
    os.kill(pid, signal.SIGKILL)  # what the broker does on a timeout
    _pid, status = os.waitpid(pid, 0)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert wait_until(lambda: pids_in_namespace(pidns) == [])
    assert os.read(read_end, 1) == b""  # the channel closed: nobody holds it any more
    os.close(read_end)
