"""``enter_jail``: the jail's isolation steps, in the one order they are taken.

Runs in the forked target after the runner set the parent-death signal,
started a session and closed inherited descriptors, and before it applies
rlimits, drops to an unprivileged uid with no capabilities, sets
no_new_privs and loads seccomp. Returns in the jailed test process (PID 2 of
a new PID namespace) with ``/`` as cwd. See ``pytest_isolate.target.pidns``
for the processes around it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable

from pytest_isolate.jail import rootfs
from pytest_isolate.jail.hostpaths import default_system_dirs, python_dirs
from pytest_isolate.jail.jail_config import JailConfig, JailError
from pytest_isolate.jail.mount_plan import plan_mounts
from pytest_isolate.jail.userns import enter_user_namespace, forbid_nested_user_namespaces
from pytest_isolate.target import syscalls
from pytest_isolate.target.pidns import enter_pid_namespace

PROC = rootfs.NEW_ROOT + "/proc"

#: Namespaces entered before the PID namespace (which needs a fork of its own).
_NAMESPACES = (
    syscalls.CLONE_NEWNS | syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWCGROUP
)


def enter_jail(
    config: JailConfig,
    keep_fds: Iterable[int],
    *,
    interpreter_dirs: Iterable[str] | None = None,
    system_dirs: Iterable[str] | None = None,
) -> None:
    """Build the jail and enter it; returns only in the jailed test process.

    ``keep_fds`` are the descriptors the test process keeps (channel,
    stdio); the helper processes outside it hold none of them.
    ``interpreter_dirs`` replaces ``python_dirs()`` (a broker that computed
    it once, or a test that runs as a user who cannot reach the interpreter).
    ``system_dirs`` replaces ``default_system_dirs()``: with a foreign root
    (``config.root_source``) they are that root's entries, see
    ``pytest_isolate.jail.foreign``.
    """
    keep = tuple(keep_fds)
    pythons = python_dirs() if interpreter_dirs is None else tuple(interpreter_dirs)
    system = default_system_dirs() if system_dirs is None else tuple(system_dirs)
    steps = rootfs.resolve_host_sources(plan_mounts(config, system, pythons))
    rootless = os.geteuid() != 0
    if rootless:
        _step("user namespace", enter_user_namespace)
    _step("namespaces", lambda: syscalls.unshare(_namespace_flags(config.network)))
    _step("private mounts", rootfs.make_mounts_private)
    _step("staging root", rootfs.enter_staging_root)
    rootfs.build_root(steps)
    if not config.network:
        _step("loopback", lambda: syscalls.set_interface_up("lo"))
    _step("hostname", lambda: socket.sethostname(config.hostname))
    _step("pid namespace", lambda: enter_pid_namespace(keep))
    # From here on we are the test process, PID 2 of the new namespace.
    _step("fresh /proc", rootfs.mount_jail_proc)
    if rootless:
        _step("no nested user namespaces", lambda: forbid_nested_user_namespaces(PROC))
    _step("read-only /proc/sys", rootfs.seal_proc_sys)
    _step("detach host root", rootfs.detach_host_root)
    _step("read-only root", rootfs.seal_root)


def _namespace_flags(network: bool) -> int:
    return _NAMESPACES if network else _NAMESPACES | syscalls.CLONE_NEWNET


def _step(name: str, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        raise JailError(f"jail: {name} failed: {exc}", step=name) from exc
