"""One PID and mount namespace per broker that every seccomp target joins, at the cost of one fork.

A fresh PID namespace per test cost two extra forks of the whole pytest
process and a namespace teardown per test: about 12 ms here, three times the
process backend's whole cost. Instead a holder (``ns_holder``) makes, once,
a PID namespace and a mount namespace holding its own ``/proc`` and the
interpreter made reachable for the unprivileged uid. Each target is forked
into the PID namespace and joins the mount namespace. It is an ordinary
child of the broker, in a namespace where the broker does not exist and
PID 1 is the holder:

* it can neither see nor signal the broker, nor kill the holder (PID 1
  ignores signals from inside its namespace it has no handler for, and the
  seccomp baseline denies ptrace);
* what it leaves behind is killed through the per-test cgroup (the holder
  is not in it) and orphans are reaped by the holder;
* the broker reads its wait status directly: no relay.

Needs root (CAP_SYS_ADMIN over the namespaces); a non-root broker uses
``pidns.enter_pid_namespace`` per target instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from pytest_isolate.target import syscalls
from pytest_isolate.target.ns_holder import JoinedNamespaces, NamespaceHolder
from pytest_isolate.target.pidns import mount_proc
from pytest_isolate.target.reachable import bind_reachable


class SharedNamespace(JoinedNamespaces):
    """The seccomp backend's view of its holder."""

    @classmethod
    def create(cls, reachable: Iterable[str]) -> SharedNamespace:
        """Start the holder (as root): returns once its namespaces are ready."""
        paths = tuple(reachable)

        def build() -> None:
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            bind_reachable(paths)

        return cls(NamespaceHolder.start(("mnt",), build, lambda: mount_proc("/proc")))

    def enter_mounts(self) -> None:
        """In the target (as root, single-threaded): see the holder's /proc and mounts."""
        cwd = os.getcwd()
        self._holder.join()
        with contextlib.suppress(OSError):
            os.chdir(cwd)
