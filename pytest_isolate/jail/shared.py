"""A jail built once per broker and configuration, which each test joins with one fork.

Building a jail per test (six namespaces, a tmpfs root, a dozen bind mounts,
pivot_root, two extra forks for the PID namespace) costs 15-20 ms here, and
tearing the namespaces down costs more. A holder (``target.ns_holder``)
builds the jail once, in the same steps and order as ``enter_jail``, and
stays PID 1 of its PID namespace. Each test is forked straight into that
namespace and joins the holder's mount, network and cgroup namespaces; it
gets fresh IPC and UTS namespaces of its own (SysV segments and a changed
hostname die with it). Everything the test can write in the jail outside
its writable binds (``/tmp``, ``/dev/shm``) is emptied by the broker after
each test, so nothing flows from one test to the next.

Needs root; a rootless broker builds a jail per test (``enter_jail``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable

from pytest_isolate.jail import rootfs
from pytest_isolate.jail.hostpaths import default_system_dirs, is_within
from pytest_isolate.jail.jail_config import JailConfig
from pytest_isolate.jail.mount_plan import plan_mounts
from pytest_isolate.target import syscalls
from pytest_isolate.target.ns_holder import JoinedNamespaces, NamespaceHolder

#: Emptied after every test: the only places a test can write that outlive it.
SCRATCH_AREAS = ("/tmp", "/dev/shm")


class SharedJail(JoinedNamespaces):
    """The holder of one built jail, and how a target joins it."""

    def __init__(self, config: JailConfig, holder: NamespaceHolder) -> None:
        super().__init__(holder)
        self.config = config

    @classmethod
    def create(cls, config: JailConfig, interpreter_dirs: Iterable[str]) -> SharedJail:
        """Build the jail in a forked helper (as root); returns once it is ready."""
        mounts = rootfs.resolve_host_sources(
            plan_mounts(config, default_system_dirs(), tuple(interpreter_dirs))
        )

        def build() -> None:  # in the helper, inside the new namespaces
            rootfs.make_mounts_private()
            rootfs.enter_staging_root()
            rootfs.build_root(mounts)
            if not config.network:
                syscalls.set_interface_up("lo")

        def settle() -> None:  # in the holder, PID 1 of the jail
            rootfs.mount_jail_proc()
            rootfs.seal_proc_sys()
            rootfs.detach_host_root()
            rootfs.seal_root()

        kinds = ("mnt", "cgroup") + (() if config.network else ("net",))
        return cls(config, NamespaceHolder.start(kinds, build, settle))

    def enter(self) -> None:
        """In the freshly forked child (root, single-threaded): become a jailed process."""
        self._holder.join()  # root and cwd: the jail's root
        syscalls.unshare(syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS)
        socket.sethostname(self.config.hostname)

    def empty_scratch_areas(self) -> None:
        """After a test: remove what it left in the jail's /tmp and /dev/shm.

        Never crosses a mount point: a writable bind under /tmp is the
        user's host directory, and what the test wrote there must stay. An
        area that is itself (or lies inside) a host directory the user bound
        (``writable=["/tmp"]``) is the host's, and is left alone entirely.
        """
        for area in scratch_areas(self.config):
            _empty_directory(f"/proc/{self.holder_pid}/root{area}")


def scratch_areas(config: JailConfig) -> tuple[str, ...]:
    """The jail's own scratch areas: ``SCRATCH_AREAS`` not given over to a host directory."""
    host_backed = [*config.writable, *(jail_path for _host, jail_path in config.binds)]
    host_backed += [*config.extra_readonly, config.project_dir]
    return tuple(
        area
        for area in SCRATCH_AREAS
        if not any(is_within(area, os.path.normpath(path)) for path in host_backed if path)
    )


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
