"""A PID namespace around the test process, so that killing the target kills everything.

Shape of the processes (A is the forked target the broker waits on)::

    A  outside the namespace: waits for B, then dies exactly as the test died
    └─ B  PID 1 of the new namespace: reaps orphans, reports the test's status
       └─ C  PID 2: the test process, where untrusted code runs

Why three processes:

- The test must not be PID 1: the kernel drops signals that PID 1 has no
  handler for, even SIGKILL sent from inside, so a test that kills itself
  would survive. C is an ordinary process and dies as it would without us.
- When B (PID 1) exits the kernel SIGKILLs every process of the namespace,
  double-forked setsid daemons included, and B's exit waits for them all.
  B exits as soon as C does, so nothing of the test outlives it.
- B cannot die "by" C's signal (PID 1 ignores its own signals), so it sends
  C's raw wait status to A over a socket and A re-raises the signal on
  itself: the broker's ``waitpid(A)`` shows exactly the test's wait status.
- A and B hold none of the test's descriptors, so the broker sees EOF on the
  channel the moment C dies. Both die with their parent (parent-death
  SIGKILL), so killing A on a timeout kills B and with it the namespace.

Creating a PID namespace needs CAP_SYS_ADMIN: a non-root caller enters a user
namespace first (``pytest_isolate.jail.userns.enter_user_namespace``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import struct
from collections.abc import Iterable
from typing import NoReturn

from pytest_isolate.target import steps, syscalls

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000

#: Exit code of B when A died before B could arm its parent-death signal.
EXIT_SUPERVISOR_GONE = 70
#: Exit code of A when B vanished without reporting and without a status.
EXIT_NO_STATUS = 71

_STATUS_FRAME = struct.Struct("=i")


def enter_pid_namespace(
    keep_fds: Iterable[int],
    *,
    supervisor_fds: Iterable[int] = (),
    fresh_proc: bool = False,
) -> None:
    """Fork into a new PID namespace; return only in the test process (PID 2).

    ``keep_fds``: the descriptors the test process keeps (channel, stdio);
    every other one is closed in it. A and B close all of them, except
    ``supervisor_fds``, so the broker's end of the channel sees EOF when the
    test dies. ``fresh_proc``: also enter a private mount namespace and
    mount the new namespace's /proc over /proc, so that the test lists only
    its own processes (the jail mounts its own /proc and leaves this off).
    """
    keep = frozenset(keep_fds)
    supervisor_keep = frozenset(supervisor_fds)
    flags = CLONE_NEWPID | (CLONE_NEWNS if fresh_proc else 0)
    syscalls.unshare(flags)
    if fresh_proc:
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    supervisor_end, init_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Before B exists: once the test runs, a broker's polite kill of A must kill
    # A, not reach a handler inherited from pytest (a race with A's own setup).
    inherited = {
        sig: signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    init_pid = os.fork()
    if init_pid != 0:
        init_end.close()
        _supervise(init_pid, supervisor_end, supervisor_keep)
    supervisor_end.close()
    _arm_init_death(init_end)
    test_pid = os.fork()
    if test_pid != 0:
        _run_init(test_pid, init_end, supervisor_keep)
    init_end.close()
    for sig, handler in inherited.items():  # the test keeps what it had
        if handler is not None:  # None: set outside Python, nothing to give back
            signal.signal(sig, handler)
    steps.close_inherited_fds(keep)
    if fresh_proc:
        mount_proc("/proc")


def mount_proc(target: str) -> None:
    """Mount the procfs of the caller's PID namespace; must run inside it (in C)."""
    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("proc", target, "proc", flags)


def _arm_init_death(init_end: socket.socket) -> None:
    """B dies with A; if A is already gone (its end of the socket hung up), exit now."""
    steps._prctl(steps.PR_SET_PDEATHSIG, int(signal.SIGKILL))
    poller = select.poll()
    poller.register(init_end.fileno(), select.POLLIN)
    for _fd, events in poller.poll(0):
        if events & (select.POLLHUP | select.POLLERR):
            os._exit(EXIT_SUPERVISOR_GONE)


def _close_all_but(sock: socket.socket, extra: frozenset[int]) -> None:
    steps.close_inherited_fds({sock.fileno(), *extra})


def _run_init(test_pid: int, init_end: socket.socket, extra_fds: frozenset[int]) -> NoReturn:
    """B: reap every child; when the test process ends, report its status and exit."""
    try:
        _close_all_but(init_end, extra_fds)
        _reset_all_signals()  # as PID 1, a default disposition means "ignored from inside"
        steps.set_non_dumpable()
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == test_pid:
                init_end.send(_STATUS_FRAME.pack(status))
                os._exit(0)
    finally:
        os._exit(EXIT_NO_STATUS)


def _supervise(init_pid: int, supervisor_end: socket.socket, extra_fds: frozenset[int]) -> NoReturn:
    """A: wait for B, then end exactly as the test process ended."""
    try:
        _close_all_but(supervisor_end, extra_fds)
        steps.set_non_dumpable()
        _pid, init_status = os.waitpid(init_pid, 0)
        try:
            frame = supervisor_end.recv(64, socket.MSG_DONTWAIT)
        except OSError:
            frame = b""
        action = mirror_action(decode_status_frame(frame), init_status)
        _end_like(action)
    finally:
        os._exit(EXIT_NO_STATUS)


def decode_status_frame(frame: bytes) -> int | None:
    """The wait status B reported, or None when the frame is missing or malformed."""
    if len(frame) != _STATUS_FRAME.size:
        return None
    (status,) = _STATUS_FRAME.unpack(frame)
    return int(status)


def mirror_action(test_status: int | None, init_status: int) -> tuple[str, int]:
    """How A must end: ("exit", code) or ("signal", signum).

    The test's own status wins; without one (B was killed before it could
    report) A mirrors B's status instead, so a kill from outside stays visible.
    """
    status = init_status if test_status is None else test_status
    if os.WIFSIGNALED(status):
        return ("signal", os.WTERMSIG(status))
    if os.WIFEXITED(status):
        return ("exit", os.WEXITSTATUS(status))
    return ("exit", EXIT_NO_STATUS)


def _end_like(action: tuple[str, int]) -> NoReturn:
    kind, value = action
    if kind == "signal":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if value not in (signal.SIGKILL, signal.SIGSTOP):  # these cannot be caught anyway
            with contextlib.suppress(OSError, ValueError):
                signal.signal(value, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {value})
        with contextlib.suppress(OSError, ValueError):
            os.kill(os.getpid(), value)
        os._exit(128 + value)  # a signal whose default is to be ignored cannot kill us
    os._exit(value)


def _reset_all_signals() -> None:
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):  # signals reserved by the C library
            signal.signal(sig, signal.SIG_DFL)
