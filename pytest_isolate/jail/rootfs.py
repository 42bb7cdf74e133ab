"""Carry out a mount plan: build the jail root next to the host root, then swap them.

The construction follows bubblewrap's layout. In a private mount namespace a
staging tmpfs becomes the root (``pivot_root``), with the host tree under
``/oldroot`` (whole and unshadowed) and the jail's future root, a tmpfs, at
``/newroot``. Binds go from ``/oldroot/<host path>`` to ``/newroot/<jail
path>``. At the end the host tree is detached, ``/newroot`` becomes ``/``
and the staging tmpfs is detached too: no path, fd or cwd of the jail leads
back to the host file system.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pytest_isolate.jail.jail_config import JailError
from pytest_isolate.jail.mount_plan import Bind, Directory, MountStep, Symlink, Tmpfs
from pytest_isolate.target import syscalls
from pytest_isolate.target.pidns import mount_proc

STAGING_AT = "/tmp"  # any host directory: it is shadowed only in our namespace
NEW_ROOT = "/newroot"
OLD_ROOT = "/oldroot"

_TMPFS_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV


def resolve_host_sources(steps: Iterable[MountStep]) -> list[MountStep]:
    """Resolve bind sources against the host root while it is still ``/``.

    Absolute symlinks (``/etc/localtime -> /usr/share/...``) would resolve
    against the staging root later, so every source becomes its real path
    now; system entries that are symlinks become symlinks in the jail.
    Missing system entries are dropped; a missing user path is an error.
    """
    resolved: list[MountStep] = []
    for step in steps:
        if not isinstance(step, Bind):
            resolved.append(step)
        elif step.mirror_symlink and os.path.islink(step.source):
            resolved.append(Symlink(step.path, os.readlink(step.source)))
        elif os.path.exists(step.source):
            real = os.path.realpath(step.source)
            resolved.append(Bind(real, step.path, step.writable, step.device))
        elif not step.mirror_symlink:
            raise JailError(f"jail: host path {step.source!r} (for {step.path}) does not exist")
    return resolved


def make_mounts_private() -> None:
    """Nothing we mount propagates back to the host, nothing of the host's propagates in."""
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)


def enter_staging_root() -> None:
    """Make a staging tmpfs the root, the host tree at /oldroot, the jail root at /newroot."""
    syscalls.mount("tmpfs", STAGING_AT, "tmpfs", _TMPFS_FLAGS, "mode=0700")
    os.mkdir(STAGING_AT + NEW_ROOT, 0o755)
    os.mkdir(STAGING_AT + OLD_ROOT, 0o755)
    syscalls.pivot_root(STAGING_AT, STAGING_AT + OLD_ROOT)
    os.chdir("/")


def build_root(steps: Iterable[MountStep]) -> None:
    """Apply each step under /newroot; the plan orders parents before children."""
    for step in steps:
        try:
            _apply(step)
        except OSError as exc:
            raise JailError(f"jail: could not set up {step}: {exc}", step="build root") from exc


def _apply(step: MountStep) -> None:
    target = NEW_ROOT + step.path if step.path != "/" else NEW_ROOT
    if isinstance(step, Tmpfs):
        os.makedirs(target, exist_ok=True)
        syscalls.mount("tmpfs", target, "tmpfs", _TMPFS_FLAGS, f"mode={step.mode:o}")
    elif isinstance(step, Bind):
        _bind(OLD_ROOT + step.source, target, step)
    elif isinstance(step, Symlink):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(step.target, target)
    elif isinstance(step, Directory):
        os.makedirs(target, exist_ok=True)


def _bind(source: str, target: str, step: Bind) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.lexists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    # Not recursive: mounts below a bound host directory are not exposed.
    syscalls.mount(source, target, None, syscalls.MS_BIND)
    extra = syscalls.MS_NOSUID | (syscalls.MS_NOEXEC if step.device else syscalls.MS_NODEV)
    if not step.writable:
        extra |= syscalls.MS_RDONLY
    flags = syscalls.locked_mount_flags(target) | extra
    syscalls.mount(None, target, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | flags)


def mount_jail_proc() -> None:
    """The new PID namespace's /proc, from inside it, while /oldroot still shows a full
    procfs (an unprivileged user namespace may mount proc only then)."""
    mount_proc(NEW_ROOT + "/proc")


def seal_proc_sys() -> None:
    """/proc/sys read-only, as container runtimes do."""
    sysctl = NEW_ROOT + "/proc/sys"
    syscalls.mount(sysctl, sysctl, None, syscalls.MS_BIND | syscalls.MS_REC)
    flags = syscalls.locked_mount_flags(sysctl) | syscalls.MS_RDONLY
    syscalls.mount(None, sysctl, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | flags)


def detach_host_root() -> None:
    """Drop the host tree and the staging root; /newroot becomes / for everyone in the namespace."""
    syscalls.umount2(OLD_ROOT, syscalls.MNT_DETACH)
    os.chdir(NEW_ROOT)
    # pivot_root(".", ".") stacks the staging root on top of the jail root;
    # detaching "." then removes it and leaves the jail root as /.
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")


def seal_root() -> None:
    """The root tmpfs becomes read-only: the test cannot add top-level paths."""
    flags = syscalls.locked_mount_flags("/") | syscalls.MS_RDONLY
    syscalls.mount(None, "/", None, syscalls.MS_REMOUNT | syscalls.MS_BIND | flags)
