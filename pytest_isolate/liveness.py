"""Whether a process still exists, and what it forked: read from ``/proc``.

How every cleanup tells a dead broker's leftovers apart, and how the broker
finds what a target forked (a PID namespace's init and test process).

Leftovers (cgroups, scratch directories, containers) are named by their
broker's *owner tag*: its pid, and its PID namespace when that is not the
host's. A pid alone is ambiguous across namespaces: a broker that is pid 2
inside a namespace would leave a group that the host takes for kthreadd's,
and a broker inside a namespace would take a live host broker's pid, which
it cannot see, for a dead one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_is_alive(pid: int) -> bool:
    """True if a process with this pid exists (EPERM still means it exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: The inode of the host's PID namespace (``PROC_PID_INIT_INO``, fixed since Linux 3.8).
HOST_PID_NAMESPACE = 0xEFFFFFFC


def pid_namespace(pid: int | str = "self") -> int | None:
    """The inode of ``pid``'s PID namespace; None if it is gone or hidden from us."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def owner_tag() -> str:
    """How this process names its leftovers: ``PID``, or ``PID.NAMESPACE`` in a PID namespace."""
    namespace = pid_namespace()
    if namespace is None or namespace == HOST_PID_NAMESPACE:
        return str(os.getpid())
    return f"{os.getpid()}.{namespace}"


def parse_owner_tag(tag: str) -> tuple[int, int] | None:
    """``(pid, namespace inode)`` of a tag; None for a name that is not one (not ours)."""
    pid, dot, namespace = tag.partition(".")
    if not pid.isdigit() or (dot and not namespace.isdigit()):
        return None
    return int(pid), int(namespace) if dot else HOST_PID_NAMESPACE


def inner_pid(pid: int | str) -> int | None:
    """``pid``'s number in its own PID namespace: the last field of ``NSpid``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


def _alive_in(namespace: int, pid: int) -> bool:
    """Is some process the ``pid`` of PID namespace ``namespace``? (Seen from the host.)"""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(entry) == namespace and inner_pid(entry) == pid:
            return True
    return False


def owner_is_gone(tag: str) -> bool:
    """True only when the owner ``tag`` names is provably dead.

    In its own namespace, its pid decides. The host sees every namespace, so
    from there a process of the tag's namespace with the tag's pid decides.
    From inside a namespace, another namespace's owner cannot be seen, so it
    is never judged gone: its leftovers wait for a run that can see it.
    """
    parsed = parse_owner_tag(tag)
    if parsed is None:
        return False
    pid, namespace = parsed
    ours = pid_namespace()
    if namespace == ours or (ours is None and namespace == HOST_PID_NAMESPACE):
        return not pid_is_alive(pid)
    if ours == HOST_PID_NAMESPACE:
        return not _alive_in(namespace, pid)
    return False


def children(pid: int | str = "self") -> set[int]:
    """The children of every thread of ``pid`` (``/proc/PID/task/*/children``); none if gone."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.update(int(child) for child in text.split())
    return found


def descendants(pid: int) -> list[int]:
    """``pid``'s children, theirs, and so on."""
    found: list[int] = []
    todo = sorted(children(pid))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += sorted(children(child))
    return found
