"""Whether a process still exists, and what it forked: read from ``/proc``.

How every cleanup tells a dead broker's leftovers apart, and how the broker
finds what a target forked (a PID namespace's init and test process).
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
