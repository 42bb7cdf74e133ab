"""The namespace jail behind ``@isolate("chroot")``.

A forked target enters its own user (when not root), mount, PID, network,
IPC, UTS and cgroup namespaces, and a root file system that holds only the
system directories, a minimal /etc, the running Python, the project
(read-only), what the test was given, and private scratch space.
``enter_jail`` takes the steps in one visible order; ``plan_mounts`` decides
the file system as pure data.

What it stops, once the runner has also dropped to an unprivileged uid with
no capabilities (each claim has a hostile test in ``tests/jail``): reading or
changing host files outside what was given (/root, the broker's home, files
beside the project, the Docker socket and other Unix sockets), writing to
the project, the double-chroot and /proc/<pid>/root escapes (the host root
is detached, not just hidden), seeing, signalling or tracing the broker,
TCP/UDP to the host's loopback and abstract Unix sockets (own network
namespace), mount, mknod, new mount/PID/net/UTS namespaces, changing the
host name, and outliving the test (PID namespace, see
``pytest_isolate.target.pidns``).

Nested *user* namespaces need no privilege: a rootless jail forbids them
in its own user namespace (max_user_namespaces=0); a root jail has no user
namespace of its own, so there they are the seccomp layer's to deny.

What it does not stop on its own: ``network=True`` keeps the host network
namespace, so loopback services and the network are reachable (weaker);
memory written to the jail's tmpfs counts against a cgroup limit only if the
broker sets one; a forked target still holds the broker's memory (scrub the
environment: the runner's job).
"""

from __future__ import annotations

from pytest_isolate.jail.enter import enter_jail
from pytest_isolate.jail.hostpaths import default_system_dirs, python_dirs
from pytest_isolate.jail.jail_config import JailConfig, JailError
from pytest_isolate.jail.jail_probe import jail_available
from pytest_isolate.jail.mount_plan import Bind, Directory, MountStep, Symlink, Tmpfs, plan_mounts

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
