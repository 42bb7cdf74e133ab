"""One PID and mount namespace per broker that every seccomp target joins, at the cost of one fork.

A fresh PID namespace per test costs two extra forks of the whole pytest
process and a namespace teardown (an RCU grace period) per test: about
12 ms here, three times the process backend's whole cost. Instead, the
broker keeps one *holder*: PID 1 of a namespace made once, with its own
mount namespace holding a fresh ``/proc`` (it shows only that namespace)
and the interpreter made reachable for the unprivileged uid.

For each target the broker points its *children's* PID namespace at the
holder's (``setns(CLONE_NEWPID)`` changes only where the calling thread's
next child goes), forks, and points it back; the child enters the holder's
mount namespace. The target is then an ordinary child of the broker, in a
namespace where the broker does not exist and PID 1 is the holder:

* it can neither see nor signal the broker (not in its namespace), nor kill
  the holder (PID 1 ignores signals from inside its namespace that it has
  no handler for, and the seccomp baseline denies ptrace);
* what it leaves behind is killed through the per-test cgroup (the holder is
  not in it) and orphans are reaped by the holder;
* the broker reads its wait status directly: no relay.

Needs root (CAP_SYS_ADMIN over the namespaces); a non-root broker uses
``pidns.enter_pid_namespace`` per target instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
from collections.abc import Iterable

from pytest_isolate.jail import syscalls
from pytest_isolate.target import steps
from pytest_isolate.target.pidns import mount_proc
from pytest_isolate.target.reachable import bind_reachable

CLONE_NEWPID = 0x20000000


def _setns(fd: int, nstype: int) -> None:
    if steps.libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({nstype:#x}): {os.strerror(err)}")


class SharedNamespace:
    """The holder process and the namespace descriptors the broker and targets use."""

    def __init__(
        self,
        holder_pid: int,
        pid_ns: int,
        mnt_ns: int,
        own_pid_ns: int,
        helper_pid: int,
        lifeline: int,
    ) -> None:
        self.holder_pid = holder_pid
        self._helper_pid = helper_pid
        self._lifeline = lifeline
        self._pid_ns = pid_ns
        self._mnt_ns = mnt_ns
        self._own_pid_ns = own_pid_ns

    @classmethod
    def create(cls, reachable: Iterable[str]) -> SharedNamespace:
        """Start the holder (as root): returns once its namespaces are ready."""
        read_end, write_end = os.pipe()
        lifeline_read, lifeline_write = os.pipe()  # closed by the broker: the helper ends
        os.set_inheritable(lifeline_write, False)
        broker_pid = os.getpid()
        outer = os.fork()
        if outer == 0:  # pragma: no cover - runs in the forked helper
            os.close(read_end)
            os.close(lifeline_write)
            _make_holder(broker_pid, write_end, lifeline_read, tuple(reachable))
        os.close(write_end)
        os.close(lifeline_read)
        try:
            report = os.read(read_end, 64).decode()
        finally:
            os.close(read_end)
        if not report.startswith("ready "):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(outer, 0)
            raise OSError(f"the namespace holder did not start: {report or 'no answer'}")
        holder = int(report.split()[1])
        pid_ns = os.open(f"/proc/{holder}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        mnt_ns = os.open(f"/proc/{holder}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        return cls(holder, pid_ns, mnt_ns, own, outer, lifeline_write)

    def fork_inside(self) -> int:
        """``os.fork()`` whose child lands in the shared PID namespace; the broker stays out.

        setns(CLONE_NEWPID) only changes where the calling thread's next child
        goes; the parent points it back at once, the child has nothing to undo.
        """
        _setns(self._pid_ns, CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            _setns(self._own_pid_ns, CLONE_NEWPID)
            raise
        if pid:
            _setns(self._own_pid_ns, CLONE_NEWPID)
        return pid

    @property
    def mount_namespace_fd(self) -> int:
        """The descriptor a target needs until ``enter_mounts`` (it keeps no other)."""
        return self._mnt_ns

    def enter_mounts(self) -> None:
        """In the target (as root, single-threaded): see the holder's /proc and mounts."""
        cwd = os.getcwd()
        _setns(self._mnt_ns, syscalls.CLONE_NEWNS)
        os.close(self._mnt_ns)
        with contextlib.suppress(OSError):
            os.chdir(cwd)

    def close(self) -> None:
        """End the holder (the helper kills and reaps it) and reap the helper."""
        for fd in (self._pid_ns, self._mnt_ns, self._own_pid_ns, self._lifeline):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._helper_pid, 0)


def _make_holder(
    broker_pid: int, report_fd: int, broker_lifeline: int, reachable: tuple[str, ...]
) -> None:
    """The forked helper: make the namespaces, fork the holder (PID 1), then watch the broker.

    When the broker closes its end of ``broker_lifeline`` (or dies), the
    helper kills and reaps the holder, so no zombie is left to the system.
    """
    try:
        steps.set_parent_death_signal(broker_pid)
        steps.new_session()
        steps.close_inherited_fds([report_fd, broker_lifeline])
        syscalls.unshare(CLONE_NEWPID | syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        bind_reachable(reachable)
        lifeline_read, lifeline_write = os.pipe()  # the holder ends when the helper does
        holder = os.fork()
        if holder == 0:
            os.close(lifeline_write)
            _hold(lifeline_read, report_fd)
        os.close(lifeline_read)
        os.write(report_fd, f"ready {holder}".encode())
        os.close(report_fd)
        os.read(broker_lifeline, 1)  # blocks until the broker closes it or dies
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report_fd, f"failed {type(exc).__name__}: {exc}"[:60].encode())
    os._exit(0)


def _hold(lifeline: int, report_fd: int) -> None:
    """PID 1 of the shared namespace: mount its /proc, reap orphans until the helper dies.

    The helper's death shows as end-of-file on ``lifeline`` (a parent-death
    signal is not reliable for a namespace's PID 1).
    """
    try:
        mount_proc("/proc")
        os.close(report_fd)
        steps.set_non_dumpable()
        for number in range(1, signal.NSIG):
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    signal.signal(number, signal.SIG_DFL)
        while True:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            readable, _, _ = select.select([lifeline], [], [], 0.05)
            if readable and not os.read(lifeline, 1):
                os._exit(0)  # the helper, and so the broker, is gone
    finally:
        os._exit(0)
