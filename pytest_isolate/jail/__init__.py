"""The namespace jail behind ``@isolate("chroot")``.

A forked target enters its own user (when not root), mount, PID, network,
IPC, UTS and cgroup namespaces, and a root file system that holds only the
system directories, the running Python, the project (read-only), what the
test was given, and private scratch space. ``enter_jail`` takes the steps in
one visible order; ``plan_mounts`` decides the file system as pure data.
"""

from __future__ import annotations

from pytest_isolate.jail.config import JailConfig, JailError
from pytest_isolate.jail.doctor import jail_available
from pytest_isolate.jail.enter import enter_jail
from pytest_isolate.jail.hostpaths import default_system_dirs, python_dirs
from pytest_isolate.jail.plan import Bind, Directory, MountStep, Symlink, Tmpfs, plan_mounts

__all__ = [
    "Bind",
    "Directory",
    "JailConfig",
    "JailError",
    "MountStep",
    "Symlink",
    "Tmpfs",
    "default_system_dirs",
    "enter_jail",
    "jail_available",
    "plan_mounts",
    "python_dirs",
]
