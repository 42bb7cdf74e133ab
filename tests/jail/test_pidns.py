"""The PID namespace around a test: PID 2, an init that reaps, an exact mirror of the ending."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable

import pytest
from jail_harness import NOBODY, become_nobody, pids_in_namespace, wait_until

from pytest_isolate.jail.userns import enter_user_namespace
from pytest_isolate.target import steps
from pytest_isolate.target.pidns import (
    EXIT_NO_STATUS,
    decode_status_frame,
    enter_pid_namespace,
    mirror_action,
)


def _fork_into_pid_namespace(body: Callable[[int], None]) -> tuple[int, int]:
    """Fork A, enter the namespace and run ``body(channel_fd)`` in C. Returns (A, read end)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            steps.close_inherited_fds({2, write_end})
            enter_pid_namespace({2, write_end}, fresh_proc=True)
            body(write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _report(fd: int, text: str) -> None:
    os.write(fd, (text + "\n").encode())


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _fd_targets(pid: int) -> list[str]:
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]


def _holds_one_fd(pid: int) -> bool:
    return len(_fd_targets(pid)) == 1


def _first_child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return int(handle.read().split()[0])


def _finish(pid: int, read_end: int) -> int:
    while os.read(read_end, 4096):
        pass
    os.close(read_end)
    return os.waitpid(pid, 0)[1]


def test_the_test_process_is_pid_2_and_sees_only_its_namespace() -> None:
    def body(channel: int) -> None:
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        _report(channel, f"{os.getpid()} {os.getppid()} {pids}")

    pid, read_end = _fork_into_pid_namespace(body)
    line = _read_line(read_end)
    _finish(pid, read_end)
    assert line == "2 1 [1, 2]"


def test_a_rootless_target_gets_its_pid_namespace_through_a_user_namespace() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            become_nobody()
            enter_user_namespace()
            enter_pid_namespace({write_end}, fresh_proc=True)
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            _report(write_end, f"{os.getpid()} {os.getuid()} {pids}")
        finally:
            os._exit(0)
    os.close(write_end)
    line = _read_line(read_end)
    _finish(pid, read_end)
    assert line == f"2 {NOBODY[0]} [1, 2]"


@pytest.mark.parametrize("code", [0, 3, 255])
def test_the_exit_code_of_the_test_is_the_targets(code: int) -> None:
    pid, read_end = _fork_into_pid_namespace(lambda _channel: os._exit(code))
    status = _finish(pid, read_end)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == code


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL, signal.SIGTERM, signal.SIGABRT])
def test_a_test_that_kills_itself_dies_and_the_target_shows_its_signal(sig: int) -> None:
    def body(_channel: int) -> None:
        signal.signal(sig, signal.SIG_DFL) if sig != signal.SIGKILL else None
        os.kill(os.getpid(), sig)
        time.sleep(5)  # not reached unless the signal was ignored, as it would be for PID 1

    pid, read_end = _fork_into_pid_namespace(body)
    status = _finish(pid, read_end)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig


def test_the_helpers_outside_the_test_hold_none_of_its_descriptors() -> None:
    go_read, go_write = os.pipe()

    def body(channel: int) -> None:
        _report(channel, "ready")
        os.read(go_read, 1)  # inherited on purpose: only C may keep it

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.close(go_write)
            steps.close_inherited_fds({2, write_end, go_read})
            enter_pid_namespace({2, write_end, go_read}, fresh_proc=True)
            body(write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(go_read)
    try:
        assert _read_line(read_end) == "ready"
        init = _first_child(pid)
        test = _first_child(init)
        for helper in (pid, init):
            # They close right after forking, while the test already runs: allow a moment.
            assert wait_until(functools.partial(_holds_one_fd, helper))
            assert _fd_targets(helper)[0].startswith("socket:")  # their status link
        test_fds = os.listdir(f"/proc/{test}/fd")
        assert len(test_fds) == 3  # stderr, channel, go
    finally:
        os.write(go_write, b"x")
        os.close(go_write)
    assert os.WEXITSTATUS(_finish(pid, read_end)) == 0


def test_an_orphan_left_by_the_test_is_killed_when_the_test_ends() -> None:
    def body(channel: int) -> None:
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        os.wait()
        _report(channel, os.readlink("/proc/self/ns/pid"))

    pid, read_end = _fork_into_pid_namespace(body)
    pidns = _read_line(read_end)
    status = _finish(pid, read_end)
    assert os.WEXITSTATUS(status) == 0
    assert pids_in_namespace(pidns) == []


def test_killing_the_target_kills_the_whole_namespace() -> None:
    def body(channel: int) -> None:
        if os.fork() == 0:
            os.setsid()
            time.sleep(60)
        _report(channel, os.readlink("/proc/self/ns/pid"))
        time.sleep(60)

    pid, read_end = _fork_into_pid_namespace(body)
    pidns = _read_line(read_end)
    assert wait_until(lambda: len(pids_in_namespace(pidns)) == 3)
    os.kill(pid, signal.SIGKILL)
    status = _finish(pid, read_end)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert wait_until(lambda: pids_in_namespace(pidns) == [])


def test_a_polite_sigterm_to_the_target_ends_the_test() -> None:
    def body(channel: int) -> None:
        _report(channel, "ready")
        time.sleep(60)

    pid, read_end = _fork_into_pid_namespace(body)
    assert _read_line(read_end) == "ready"
    os.kill(pid, signal.SIGTERM)
    status = _finish(pid, read_end)
    assert os.WTERMSIG(status) == signal.SIGTERM


EXITED_3 = 3 << 8
KILLED_BY_SEGV = signal.SIGSEGV
KILLED_BY_KILL = signal.SIGKILL


@pytest.mark.parametrize(
    ("test_status", "init_status", "expected"),
    [
        (EXITED_3, 0, ("exit", 3)),
        (0, 0, ("exit", 0)),
        (KILLED_BY_SEGV, 0, ("signal", signal.SIGSEGV)),
        (None, KILLED_BY_KILL, ("signal", signal.SIGKILL)),  # init killed before reporting
        (None, 70 << 8, ("exit", 70)),
        (0x137F, 0, ("exit", EXIT_NO_STATUS)),  # "stopped" is no ending: never mirrored
    ],
)
def test_mirror_action_prefers_the_tests_status(
    test_status: int | None, init_status: int, expected: tuple[str, int]
) -> None:
    assert mirror_action(test_status, init_status) == expected


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ((11).to_bytes(4, "little"), 11),
        (b"", None),
        (b"\x01\x02\x03", None),
        (b"\x00" * 8, None),
    ],
)
def test_status_frames_of_the_wrong_size_are_ignored(frame: bytes, expected: int | None) -> None:
    assert decode_status_frame(frame) == expected
