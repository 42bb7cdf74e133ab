"""Nothing of a test outlives it, and a target holds no descriptor it was not meant to have."""

from __future__ import annotations

from pathlib import Path

import pytest
from escaper_tests import SANDBOXED_FORK_LOOPS, SETSID_DAEMON, fork_bomb
from process_checks import process_alive, wait_all_dead
from project_runner import ProjectRun, run_pytest, write_project

CONFTEST = """
    import os, socket

    # Opened in the broker before any test: a target must not inherit them.
    SECRET_DIR_FD = os.open(os.path.dirname(__file__), os.O_RDONLY | os.O_DIRECTORY)
    SECRET_FILE = open(__file__)
    SECRET_SOCKET = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
"""

ESCAPERS = (
    """
    import os, time
    from pytest_isolate import isolate

    PIDS = os.environ["PID_DIR"]

    def record(name):
        with open(os.path.join(PIDS, name), "a") as f:
            f.write(f"{os.getpid()}\\n")

"""
    + fork_bomb(20)
    + """

"""
    + SETSID_DAEMON
    + SANDBOXED_FORK_LOOPS
    + """

    def test_daemon_is_gone_for_the_next_test():
        pid = int(open(os.path.join(PIDS, "daemon")).read())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            if state == "Z":
                return
            time.sleep(0.02)
        raise AssertionError(f"daemon {pid} is still alive")

    @isolate()
    def test_descriptors_of_the_target():
        import conftest
        fds = {}
        for name in os.listdir("/proc/self/fd"):
            try:
                fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                pass  # the directory listdir itself had open
        print("DESCRIPTORS", sorted(fds.items()))
        here = os.path.dirname(conftest.__file__)
        assert conftest.SECRET_DIR_FD not in fds or fds[conftest.SECRET_DIR_FD] != here
        assert not [t for t in fds.values() if t == here or t.endswith("conftest.py")]
        sockets = [fd for fd, t in fds.items() if t.startswith("socket:")]
        assert len(sockets) == 1, "only the channel to the broker"
        stdio_capture = ("/dev/null", "pipe:", "/dev/pts/", "/tmp/#")
        # with channel="shm", the ring's two eventfds (the ring itself is a mapping, not an fd)
        eventfds = [fd for fd, t in fds.items() if t == "anon_inode:[eventfd]"]
        assert len(eventfds) in (0, 2)
        unexpected = {
            fd: t for fd, t in fds.items()
            if fd not in sockets and fd not in eventfds and not t.startswith(stdio_capture)
            and t != "/memfd:pytest-isolate-crash-log (deleted)"
        }
        assert unexpected == {}
"""
)


@pytest.fixture(scope="module")
def run(module_dir: Path, pid_dir: Path) -> ProjectRun:
    write_project(module_dir, {"conftest.py": CONFTEST, "test_escapers.py": ESCAPERS})
    return run_pytest(module_dir, env={"PID_DIR": str(pid_dir)})


def _pids(pid_dir: Path, name: str) -> list[int]:
    return [int(line) for line in (pid_dir / name).read_text().split()]


def test_fork_bomb_is_stopped_by_the_pids_limit(run: ProjectRun, pid_dir: Path) -> None:
    assert run.outcome("test_fork_bomb_is_bounded") == "PASSED"
    # 39 besides the target; one more may fork in the moment the target itself exits
    assert 0 < len(_pids(pid_dir, "bomb")) <= 40


@pytest.mark.parametrize("backend", ["seccomp", "chroot"])
def test_seccomp_and_chroot_targets_are_bounded_by_the_pids_limit(
    run: ProjectRun, backend: str
) -> None:
    assert run.outcome(f"test_a_{backend}_targets_fork_bomb_is_bounded_too") == "PASSED"


def test_nothing_of_a_fork_bomb_is_alive_after_the_run(run: ProjectRun, pid_dir: Path) -> None:
    assert wait_all_dead(_pids(pid_dir, "bomb")) == []


def test_double_forked_daemon_is_killed_with_its_test(run: ProjectRun) -> None:
    assert run.outcome("test_double_forked_setsid_daemon") == "PASSED"
    assert run.outcome("test_daemon_is_gone_for_the_next_test") == "PASSED"


def test_double_forked_daemon_is_not_alive_after_the_run(run: ProjectRun, pid_dir: Path) -> None:
    (daemon,) = _pids(pid_dir, "daemon")
    assert not process_alive(daemon) or wait_all_dead([daemon]) == []


def test_target_holds_only_its_channel_and_stdio_capture(run: ProjectRun) -> None:
    assert run.outcome("test_descriptors_of_the_target") == "PASSED", run.output[-3000:]
