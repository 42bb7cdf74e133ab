"""Whether a process still exists: how every cleanup tells a dead broker's leftovers apart."""

from __future__ import annotations

import os


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
