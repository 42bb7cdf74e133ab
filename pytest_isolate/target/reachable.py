"""Keep the interpreter and the project reachable after dropping to an unprivileged uid.

A target that drops to ``nobody`` on the host's file system cannot walk into
a directory like ``/root`` (mode 0700) — and the running Python, or the
project, often lives under one (pyenv, a venv in a home directory). Lazy
imports would then fail mid-test. Instead of loosening any permission on the
host, the target (in a private mount namespace) mounts an empty tmpfs over
each blocking directory and binds back only the paths it needs. The rest of
that directory (keys, shell history, tokens) disappears from the test's view.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from pytest_isolate.target import syscalls


def blocking_ancestor(path: str) -> str | None:
    """The first directory on the way to ``path`` that others cannot traverse."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return current
        current = os.path.join(current, part)
    return None


def plan_reachability(paths: Iterable[str]) -> dict[str, list[str]]:
    """Blocking directory -> the needed paths below it (pure but for ``stat``)."""
    plan: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)}):
        blocker = blocking_ancestor(path)
        if blocker is not None and blocker != "/":
            plan.setdefault(blocker, []).append(path)
    return plan


def make_reachable(paths: Iterable[str]) -> None:
    """In the child, as root, before the privilege drop: enters a mount namespace of its own."""
    plan = plan_reachability(paths)
    if not plan:
        return
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    _apply(plan)


def bind_reachable(paths: Iterable[str]) -> None:
    """As ``make_reachable``, in a private mount namespace the caller already entered."""
    _apply(plan_reachability(paths))


def _apply(plan: dict[str, list[str]]) -> None:
    for blocker, needed in plan.items():
        handles = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in needed}
        try:
            syscalls.mount(
                "tmpfs", blocker, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, "mode=0755"
            )
            for path, fd in handles.items():
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    os.makedirs(path, mode=0o755, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                    open(path, "a").close()
                syscalls.mount(
                    f"/proc/self/fd/{fd}", path, None, syscalls.MS_BIND | syscalls.MS_REC
                )
        finally:
            for fd in handles.values():
                os.close(fd)
