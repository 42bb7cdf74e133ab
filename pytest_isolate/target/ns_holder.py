"""A process that keeps namespaces alive for the broker's targets to join, one fork each.

Making namespaces per test costs forks and a teardown (an RCU grace period)
per test. A *holder* makes them once: a forked helper unshares them and
builds what they hold (mounts, a jail root), then forks the holder, which
becomes PID 1 of the new PID namespace, finishes its setup from inside
(a fresh ``/proc``, a sealed root) and reaps orphans. For each target the
broker points its next child's PID namespace at the holder's, forks, and
points it back (``setns(CLONE_NEWPID)`` affects only where the calling
thread's next child goes); the child joins the other namespaces itself.

Lifetime: the broker holds a pipe to the helper; when the broker closes it
(or dies), the helper kills and reaps the holder and exits. The holder's
end waits until every process of its namespace is reaped, and the targets
are the broker's children, reaped by the broker alone: so the broker reaps
any target still unreaped (one an interrupt left behind) while it waits for
the helper, or the three would wait for each other for ever.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import time
from collections.abc import Callable, Iterable

from pytest_isolate.target import steps, syscalls

CLONE_NEWPID = 0x20000000
NS_FLAGS = {
    "mnt": syscalls.CLONE_NEWNS,
    "net": syscalls.CLONE_NEWNET,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
}


def setns(fd: int, nstype: int) -> None:
    if steps.libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({nstype:#x}): {os.strerror(err)}")


class NamespaceHolder:
    """The holder, its helper, and descriptors of the namespaces targets join."""

    def __init__(
        self, helper_pid: int, holder_pid: int, lifeline: int, kinds: Iterable[str]
    ) -> None:
        self.helper_pid = helper_pid
        self.holder_pid = holder_pid
        self._lifeline = lifeline
        self._pid_ns = os.open(f"/proc/{holder_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self._own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self._joined = {
            kind: os.open(f"/proc/{holder_pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            for kind in kinds
        }
        #: children forked inside that may still be unreaped (see ``close``)
        self._forked: set[int] = set()

    @classmethod
    def start(
        cls,
        unshare: Iterable[str],
        build: Callable[[], None],
        settle: Callable[[], None],
    ) -> NamespaceHolder:
        """Make the namespaces (``unshare`` kinds plus a PID namespace) and the holder.

        ``build`` runs in the helper inside the new namespaces (as root), and
        ``settle`` in the holder, PID 1 of the new PID namespace. The kinds
        in ``unshare`` are what targets join with ``join``.
        """
        kinds = tuple(unshare)
        report_read, report_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        os.set_inheritable(lifeline_write, False)
        broker = os.getpid()
        helper = os.fork()
        if helper == 0:  # pragma: no cover - the forked helper
            os.close(report_read)
            os.close(lifeline_write)
            _helper(broker, kinds, build, settle, report_write, lifeline_read)
        os.close(report_write)
        os.close(lifeline_read)
        holder, problem = _read_report(report_read)
        if holder is None:
            os.close(lifeline_write)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(helper, 0)
            raise OSError(f"the namespace holder did not start: {problem}")
        return cls(helper, holder, lifeline_write, kinds)

    # -- broker side ------------------------------------------------------
    def fork_inside(self) -> int:
        """``os.fork()`` whose child is born in the holder's PID namespace; the broker is not."""
        setns(self._pid_ns, CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            setns(self._own_pid_ns, CLONE_NEWPID)
            raise
        if pid:
            setns(self._own_pid_ns, CLONE_NEWPID)
            self._forked = {child for child in self._forked if _unreaped(child)}
            self._forked.add(pid)
        return pid

    def child_fds(self) -> list[int]:
        """Descriptors a target needs until ``join`` (it keeps none of them)."""
        return list(self._joined.values())

    def close(self) -> None:
        """End the holder (closing the lifeline) and wait for its helper.

        Meanwhile reap the children forked inside that nobody reaped: the
        holder's end waits for them (see the module's docstring).
        """
        for fd in (self._pid_ns, self._own_pid_ns, self._lifeline, *self._joined.values()):
            with contextlib.suppress(OSError):
                os.close(fd)
        while True:
            try:
                if os.waitpid(self.helper_pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            for child in list(self._forked):
                try:
                    os.waitpid(child, os.WNOHANG)
                except ChildProcessError:
                    self._forked.discard(child)
            time.sleep(0.002)

    # -- child side -------------------------------------------------------
    def join(self) -> None:
        """In the forked target (root, single-threaded): enter the holder's namespaces.

        Joining the mount namespace moves root and cwd to its root; the
        caller changes directory afterwards.
        """
        for kind, fd in self._joined.items():
            setns(fd, NS_FLAGS[kind])
            os.close(fd)


def _unreaped(pid: int) -> bool:
    """Is ``pid`` still a child of ours to reap (alive or a zombie)? It is not reaped here."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _read_report(fd: int) -> tuple[int | None, str]:
    """The holder's pid once it says ok, or None and why not."""
    text = b""
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            text += line
            if line.startswith(b"ok"):
                break
    lines = text.decode(errors="replace").splitlines()
    pid = next((int(line.split()[1]) for line in lines if line.startswith("pid ")), None)
    if pid is None or "ok" not in lines:
        return None, " ".join(line for line in lines if not line.startswith("pid ")) or "no answer"
    return pid, ""


def _helper(
    broker: int,
    kinds: tuple[str, ...],
    build: Callable[[], None],
    settle: Callable[[], None],
    report: int,
    lifeline: int,
) -> None:
    try:
        steps.set_parent_death_signal(broker)
        steps.new_session()
        steps.close_inherited_fds([report, lifeline])
        flags = CLONE_NEWPID
        for kind in kinds:
            flags |= NS_FLAGS[kind]
        syscalls.unshare(flags)
        build()
        holder = os.fork()
        if holder == 0:
            _hold(settle, report, lifeline)
        os.write(report, f"pid {holder}\n".encode())
        os.close(report)
        os.read(lifeline, 1)  # until the broker closes it or dies
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report, f"failed {type(exc).__name__}: {exc}"[:500].encode() + b"\n")
    os._exit(0)


def _hold(settle: Callable[[], None], report: int, lifeline: int) -> None:
    """PID 1 of the new namespace: finish the setup, then reap orphans until the broker goes.

    The broker's end shows as end-of-file on ``lifeline`` (a parent-death
    signal is not reliable for a namespace's PID 1).
    """
    try:
        settle()
        steps.set_non_dumpable()
        for number in range(1, signal.NSIG):
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    signal.signal(number, signal.SIG_DFL)
        os.write(report, b"ok\n")
        os.close(report)
        while True:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            readable, _, _ = select.select([lifeline], [], [], 0.05)
            if readable and not os.read(lifeline, 1):
                os._exit(0)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report, f"failed {type(exc).__name__}: {exc}"[:500].encode() + b"\n")
    finally:
        os._exit(0)


class JoinedNamespaces:
    """Base of a backend's view of its holder: what the broker does with it."""

    def __init__(self, holder: NamespaceHolder) -> None:
        self._holder = holder

    @property
    def holder_pid(self) -> int:
        return self._holder.holder_pid

    def fork_inside(self) -> int:
        return self._holder.fork_inside()

    def child_fds(self) -> list[int]:
        return self._holder.child_fds()

    def close(self) -> None:
        self._holder.close()
