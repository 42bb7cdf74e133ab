"""A user namespace for a jail built without root: the caller's ids mapped to themselves.

Only a non-root caller needs it: root can create the other namespaces
directly, and a user namespace would only lock its mounts. The mapping keeps
the caller's uid and gid (no fake root), so a file the test creates in a
writable bind belongs to the broker's user, as it would without the jail.
"""

from __future__ import annotations

import os

from pytest_isolate.target import steps, syscalls

PR_GET_DUMPABLE = 3


def user_namespace_map_lines(uid: int, gid: int) -> tuple[str, str]:
    """The uid_map and gid_map contents mapping one id to itself."""
    return f"{uid} {uid} 1\n", f"{gid} {gid} 1\n"


def enter_user_namespace() -> None:
    """unshare(CLONE_NEWUSER) and map our own uid/gid; we then hold every capability in it.

    setgroups must be denied before an unprivileged process may write its
    gid_map (otherwise it could drop a group that protects a file from it).
    """
    uid, gid = os.geteuid(), os.getegid()
    syscalls.unshare(syscalls.CLONE_NEWUSER)
    uid_line, gid_line = user_namespace_map_lines(uid, gid)
    # /proc/self of a non-dumpable process (one that changed uid) belongs to
    # root, and we could not write our own maps: be dumpable meanwhile.
    was_dumpable = steps._prctl(PR_GET_DUMPABLE)
    steps._prctl(steps.PR_SET_DUMPABLE, 1)
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", uid_line)
        _write("/proc/self/gid_map", gid_line)
    finally:
        steps._prctl(steps.PR_SET_DUMPABLE, was_dumpable)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def forbid_nested_user_namespaces(proc: str) -> None:
    """Allow no user namespace below ours (rootless jails only).

    A nested user namespace needs no privilege and hands its creator every
    capability inside it: kernel attack surface. The limit is per user
    namespace and binds its descendants, so setting it in the jail's own
    namespace touches nothing outside. (A root jail has no namespace of its
    own to set it in; there the seccomp layer must deny it.)
    """
    _write(f"{proc}/sys/user/max_user_namespaces", "0")
