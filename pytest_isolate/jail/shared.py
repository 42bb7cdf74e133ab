"""A jail built once per broker and configuration, which each test joins with one fork.

Building a jail per test (six namespaces, a tmpfs root, a dozen bind mounts,
pivot_root, two extra forks for the PID namespace) costs 15-20 ms here, and
tearing the namespaces down costs more. A *holder* process builds the jail
once, in the same steps and order as ``enter_jail``, and stays as PID 1 of
its PID namespace. For each test the broker forks a child straight into that
namespace (``setns(CLONE_NEWPID)`` for its next child only), and the child
joins the holder's mount, network and cgroup namespaces; it gets fresh IPC
and UTS namespaces of its own (SysV segments and a changed hostname die with
it). Everything the test can write in the jail outside its writable binds
(``/tmp``, ``/dev/shm``) is emptied by the broker after each test, so
nothing flows from one test to the next.

Needs root; a rootless broker builds a jail per test (``enter_jail``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Iterable

from pytest_isolate.jail import rootfs, syscalls
from pytest_isolate.jail.config import JailConfig
from pytest_isolate.jail.hostpaths import default_system_dirs
from pytest_isolate.jail.plan import MountStep, plan_mounts
from pytest_isolate.target import steps
from pytest_isolate.target.shared_ns import CLONE_NEWPID, _setns

#: Emptied after every test: the only places a test can write that outlive it.
SCRATCH_AREAS = ("/tmp", "/dev/shm")


class SharedJail:
    """The holder of one built jail, and the descriptors to join it."""

    def __init__(
        self, config: JailConfig, holder: int, helper: int, lifeline: int, ns: dict[str, int]
    ) -> None:
        self.config = config
        self.holder_pid = holder
        self._helper_pid = helper
        self._lifeline = lifeline
        self._ns = ns

    @classmethod
    def create(cls, config: JailConfig, interpreter_dirs: Iterable[str]) -> SharedJail:
        """Build the jail in a forked helper (as root); returns once it is ready."""
        mounts = rootfs.resolve_host_sources(
            plan_mounts(config, default_system_dirs(), tuple(interpreter_dirs))
        )
        report_read, report_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        os.set_inheritable(lifeline_write, False)
        broker = os.getpid()
        helper = os.fork()
        if helper == 0:  # pragma: no cover - the forked helper
            os.close(report_read)
            os.close(lifeline_write)
            _build(config, mounts, broker, report_write, lifeline_read)
        os.close(report_write)
        os.close(lifeline_read)
        holder, problem = _read_report(report_read)
        if holder is None:
            os.close(lifeline_write)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(helper, 0)
            raise OSError(f"the shared jail could not be built: {problem}")
        kinds = ("pid", "mnt", "cgroup") + (() if config.network else ("net",))
        ns = {
            kind: os.open(f"/proc/{holder}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in kinds
        }
        ns["own-pid"] = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        return cls(config, holder, helper, lifeline_write, ns)

    # -- broker side ------------------------------------------------------
    def fork_inside(self) -> int:
        """``os.fork()`` whose child is born in the jail's PID namespace."""
        _setns(self._ns["pid"], CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            _setns(self._ns["own-pid"], CLONE_NEWPID)
            raise
        if pid:
            _setns(self._ns["own-pid"], CLONE_NEWPID)
        return pid

    def child_fds(self) -> list[int]:
        """Descriptors the child needs until ``enter``."""
        return [fd for kind, fd in self._ns.items() if kind not in ("pid", "own-pid")]

    def empty_scratch_areas(self) -> None:
        """After a test: remove what it left in the jail's /tmp and /dev/shm.

        Never crosses a mount point: a writable bind under /tmp is the
        user's host directory, and what the test wrote there must stay.
        """
        for area in SCRATCH_AREAS:
            _empty_directory(f"/proc/{self.holder_pid}/root{area}")

    def close(self) -> None:
        for fd in (*self._ns.values(), self._lifeline):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._helper_pid, 0)

    # -- child side -------------------------------------------------------
    def enter(self) -> None:
        """In the freshly forked child (root, single-threaded): become a jailed process."""
        _setns(self._ns["mnt"], syscalls.CLONE_NEWNS)  # root and cwd: the jail's root
        if "net" in self._ns:
            _setns(self._ns["net"], syscalls.CLONE_NEWNET)
        _setns(self._ns["cgroup"], syscalls.CLONE_NEWCGROUP)
        syscalls.unshare(syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS)
        socket.sethostname(self.config.hostname)
        for fd in self.child_fds():
            os.close(fd)


def _empty_directory(path: str) -> None:
    """Delete the contents of ``path``, stopping at mount points (their contents are kept)."""
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                if os.path.ismount(entry.path):
                    continue
                _empty_directory(entry.path)
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # fails, harmlessly, above a kept mount point
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


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


def _build(
    config: JailConfig,
    mounts: list[MountStep],
    broker: int,
    report: int,
    lifeline: int,
) -> None:
    """The helper: namespaces and root as ``enter_jail`` makes them, then the holder."""
    try:
        steps.set_parent_death_signal(broker)
        steps.new_session()
        steps.close_inherited_fds([report, lifeline])
        flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWCGROUP | CLONE_NEWPID
        if not config.network:
            flags |= syscalls.CLONE_NEWNET
        syscalls.unshare(flags)
        rootfs.make_mounts_private()
        rootfs.enter_staging_root()
        rootfs.build_root(mounts)
        if not config.network:
            syscalls.set_interface_up("lo")
        holder = os.fork()
        if holder == 0:
            _hold(report, lifeline)
        os.write(report, f"pid {holder}\n".encode())
        os.close(report)
        os.read(lifeline, 1)  # until the broker closes it or dies
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(report, f"failed {type(exc).__name__}: {exc}"[:500].encode() + b"\n")
    os._exit(0)


def _hold(report: int, lifeline: int) -> None:
    """PID 1 of the jail: fresh /proc, host root detached, root sealed; then reap orphans."""
    try:
        rootfs.mount_jail_proc()
        rootfs.seal_proc_sys()
        rootfs.detach_host_root()
        rootfs.seal_root()
        steps.set_non_dumpable()
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
