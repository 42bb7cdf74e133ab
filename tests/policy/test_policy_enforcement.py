"""Each claim of the seccomp policy, proven in a real forked child under a real filter.

The children run as ``nobody``; this interpreter lives under /root (mode
0700), so every module a body needs is imported here, before the fork.
"""

from __future__ import annotations

import ctypes
import encodings.idna  # noqa: F401  (imported lazily by create_connection; nobody cannot read /root)
import errno
import multiprocessing
import multiprocessing.connection
import multiprocessing.popen_fork
import multiprocessing.process
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable

import pyseccomp

from pytest_isolate.policy import PolicySpec, find_kernel_kill
from pytest_isolate.policy.filter_plan import SECCOMP_IOCTL_NOTIF_RECV, TIOCSTI

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _nr(name: str) -> int:
    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))


CLONE_NEWUSER = 0x10000000
X32_SYSCALL_BIT = 0x40000000


def _raw_syscall(name_or_nr: str | int, *args: int) -> int:
    """syscall(2) with full 64-bit arguments; returns the result or -errno."""
    nr = _nr(name_or_nr) if isinstance(name_or_nr, str) else name_or_nr
    result = int(_libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args)))
    return -ctypes.get_errno() if result == -1 else result


def _errno_of(action: Callable[[], Any]) -> int | str:
    try:
        action()
    except OSError as exc:
        return exc.errno or -1
    return "succeeded"


def _described(outcome: Any) -> list[str]:
    return [violation.describe() for violation in outcome.violations]


def _kill_is_named(filtered: Any, spec: PolicySpec, body: Callable[[], Any], syscall: str) -> None:
    """The child dies of SIGSYS and the kernel log names ``syscall``.

    The kernel rate-limits these records (10 per 5 s by default, shared with
    every other seccomp kill on the machine), so one retry after the window.
    """
    for attempt in range(2):
        outcome = filtered(spec, body)
        assert outcome.killed_by == signal.SIGSYS, outcome
        assert outcome.result is None
        name = find_kernel_kill({outcome.pid}, outcome.kmsg_since)
        if name is not None or attempt == 1:
            assert name == syscall
            return
        time.sleep(5.5)


# --- network ---------------------------------------------------------------


def test_tcp_socket_to_loopback_is_denied_with_eperm_and_reported(filtered):
    def connect_tcp() -> int | str:
        return _errno_of(lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))

    outcome = filtered(PolicySpec(), connect_tcp)
    assert outcome.result == {"ok": errno.EPERM}
    assert _described(outcome) == ["socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 6) [@inet]"]


def test_udp_socket_to_loopback_is_denied_with_eperm_and_reported(filtered):
    def send_udp() -> int | str:
        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"x", ("127.0.0.1", 9))

        return _errno_of(send)

    outcome = filtered(PolicySpec(), send_udp)
    assert outcome.result == {"ok": errno.EPERM}
    [violation] = outcome.violations
    assert (violation.syscall, violation.group, violation.count) == ("socket", "@inet", 1)
    assert violation.describe().startswith("socket(AF_INET, SOCK_DGRAM")


def test_unix_socket_is_denied_under_default(filtered):
    outcome = filtered(PolicySpec(), lambda: _errno_of(lambda: socket.socket(socket.AF_UNIX)))
    assert outcome.result == {"ok": errno.EPERM}
    assert [v.syscall for v in outcome.violations] == ["socket"]


def test_socket_family_with_high_bits_set_is_still_denied(filtered):
    """socket(2 | 1 << 32) is AF_INET to the kernel; the @inet rule compares 32 bits."""
    spec = PolicySpec.from_options(policy="permissive", deny=["@inet"])

    def high_bits_then_unix() -> list[int]:
        inet = _raw_syscall("socket", 2 | 1 << 32, socket.SOCK_STREAM, 0)
        unix = _raw_syscall("socket", socket.AF_UNIX, socket.SOCK_STREAM, 0)
        return [inet, unix]

    outcome = filtered(spec, high_bits_then_unix)
    inet, unix = outcome.result["ok"]
    assert inet == -errno.EPERM
    assert unix >= 0  # AF_UNIX is not @inet
    assert _described(outcome) == ["socket(AF_INET, SOCK_STREAM, 0) [@inet]"]


def test_socketpair_unix_is_allowed_under_default(filtered):
    def pair() -> str:
        left, right = socket.socketpair(socket.AF_UNIX)
        left.sendall(b"ping")
        return right.recv(4).decode()

    outcome = filtered(PolicySpec(), pair)
    assert outcome.result == {"ok": "ping"}
    assert outcome.violations == []


def test_denying_network_io_still_lets_the_listener_be_handed_over(filtered):
    spec = PolicySpec.from_options(policy="permissive", deny=["@network-io"])
    outcome = filtered(spec, lambda: _errno_of(socket.socketpair))
    assert outcome.result == {"ok": errno.EPERM}
    assert _described(outcome) == ["socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) [@network-io]"]


# --- the baseline: killed in the kernel, named from the kernel log -----------


def test_mount_is_killed_and_named_from_the_kernel_log(filtered):
    def mount() -> None:
        _libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)

    _kill_is_named(filtered, PolicySpec.from_options(policy="permissive"), mount, "mount")


def test_clone_with_new_user_namespace_is_killed_and_named(filtered):
    def clone_newuser() -> None:
        if _raw_syscall("clone", CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0) == 0:
            os._exit(0)  # only reached if the filter failed

    _kill_is_named(filtered, PolicySpec(), clone_newuser, "clone")


def test_unshare_is_killed(filtered):
    outcome = filtered(PolicySpec(), lambda: _libc.unshare(CLONE_NEWUSER))
    assert outcome.killed_by == signal.SIGSYS


def test_clone3_answers_enosys_so_libc_falls_back_to_clone(filtered):
    outcome = filtered(PolicySpec(), lambda: _raw_syscall("clone3", 0, 0))
    assert outcome.result == {"ok": -errno.ENOSYS}


def test_installing_a_second_filter_with_seccomp_is_killed(filtered):
    def second_filter() -> None:
        pyseccomp.SyscallFilter(pyseccomp.ALLOW).load()

    outcome = filtered(PolicySpec(), second_filter)
    assert outcome.killed_by == signal.SIGSYS


def test_installing_a_second_filter_with_prctl_is_killed(filtered):
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    outcome = filtered(
        PolicySpec(), lambda: _raw_syscall("prctl", pr_set_seccomp, seccomp_mode_filter, 0, 0, 0)
    )
    assert outcome.killed_by == signal.SIGSYS


def test_a_child_catching_sigsys_cannot_dodge_the_kill(filtered):
    def catch_then_mount() -> str:
        signal.signal(signal.SIGSYS, lambda *_: None)
        _libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
        return "survived"

    outcome = filtered(PolicySpec(), catch_then_mount)
    assert outcome.killed_by == signal.SIGSYS
    assert outcome.result is None


def test_ptrace_is_killed(filtered):
    ptrace_traceme = 0
    outcome = filtered(PolicySpec(), lambda: _raw_syscall("ptrace", ptrace_traceme, 0, 0, 0))
    assert outcome.killed_by == signal.SIGSYS


def test_using_a_listener_ioctl_is_killed(filtered):
    """A copy of the listener kept by mistake cannot be used to answer our own denials."""
    buffer = ctypes.create_string_buffer(128)
    outcome = filtered(
        PolicySpec(), lambda: _libc.ioctl(0, ctypes.c_ulong(SECCOMP_IOCTL_NOTIF_RECV), buffer)
    )
    assert outcome.killed_by == signal.SIGSYS


def test_tiocsti_is_killed(filtered):
    char = ctypes.c_char(b"x")
    outcome = filtered(
        PolicySpec(), lambda: _libc.ioctl(0, ctypes.c_ulong(TIOCSTI), ctypes.byref(char))
    )
    assert outcome.killed_by == signal.SIGSYS


def test_x32_syscall_numbers_are_killed_as_a_wrong_architecture(filtered):
    outcome = filtered(PolicySpec(), lambda: _raw_syscall(X32_SYSCALL_BIT | _nr("getpid")))
    assert outcome.killed_by == signal.SIGSYS


# --- exec --------------------------------------------------------------------


def test_exec_is_denied_under_strict(filtered):
    outcome = filtered(
        PolicySpec(preset="strict"), lambda: _errno_of(lambda: subprocess.run(["true"]))
    )
    assert outcome.result == {"ok": errno.EPERM}
    assert "execve" in {v.syscall for v in outcome.violations}


def test_exec_is_allowed_under_default(filtered):
    outcome = filtered(PolicySpec(), lambda: subprocess.run(["true"]).returncode)
    assert outcome.result == {"ok": 0}
    assert outcome.violations == []


# --- allow-list mode -----------------------------------------------------------


def test_allow_list_mode_denies_what_is_not_listed(filtered):
    spec = PolicySpec.from_options(allow=["uname"])

    def uname_then_getcwd() -> list[Any]:
        return [os.uname().sysname, _errno_of(os.getcwd)]

    outcome = filtered(spec, uname_then_getcwd)
    assert outcome.result == {"ok": ["Linux", errno.EPERM]}
    assert [v.describe() for v in outcome.violations] == ["getcwd(...)"]


def test_allow_list_mode_lets_deny_win_over_allow(filtered):
    spec = PolicySpec.from_options(allow=["@system-service"], deny=["@inet"])

    def unix_then_inet() -> list[int]:
        unix = _raw_syscall("socket", socket.AF_UNIX, socket.SOCK_STREAM, 0)
        inet = _raw_syscall("socket", 2 | 1 << 32, socket.SOCK_STREAM, 0)
        return [unix, inet]

    outcome = filtered(spec, unix_then_inet)
    unix, inet = outcome.result["ok"]
    assert unix >= 0
    assert inet == -errno.EPERM
    assert _described(outcome) == ["socket(AF_INET, SOCK_STREAM, 0) [@inet]"]


def test_allow_list_mode_still_enforces_the_baseline(filtered):
    spec = PolicySpec.from_options(allow=["@system-service", "mount"])
    outcome = filtered(spec, lambda: _libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
    assert outcome.killed_by == signal.SIGSYS


# --- on_violation ----------------------------------------------------------------


def test_on_violation_kill_kills_the_target_and_reports_the_call(filtered):
    spec = PolicySpec.from_options(on_violation="kill")

    def connect_then_continue() -> str:
        _errno_of(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
        return "survived"

    outcome = filtered(spec, connect_then_continue)
    assert outcome.killed_by == signal.SIGKILL
    assert outcome.result is None
    [violation] = outcome.violations
    assert violation.killed
    assert violation.describe().startswith("socket(AF_INET6, SOCK_DGRAM")


# --- ordinary work passes ----------------------------------------------------------


def _pipe_echo(connection: Any) -> None:
    connection.send(connection.recv() * 2)
    connection.close()


def test_ordinary_work_passes_under_default(filtered):
    def ordinary_work() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "data.txt")
            with open(path, "w") as stream:
                stream.write("hello")
            with open(path) as stream:
                text = stream.read()
        results: list[int] = []
        workers = [threading.Thread(target=results.append, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        context = multiprocessing.get_context("fork")
        mine, theirs = context.Pipe()
        process = context.Process(target=_pipe_echo, args=(theirs,))
        process.start()
        mine.send(21)
        doubled = mine.recv()
        process.join(10)
        return {
            "file": text,
            "threads": sorted(results),
            "subprocess": subprocess.run(["true"]).returncode,
            "multiprocessing": [doubled, process.exitcode],
        }

    outcome = filtered(PolicySpec(), ordinary_work)
    assert outcome.result == {
        "ok": {
            "file": "hello",
            "threads": [0, 1, 2, 3],
            "subprocess": 0,
            "multiprocessing": [42, 0],
        }
    }
    assert outcome.violations == []
    assert outcome.exit_code == 0
