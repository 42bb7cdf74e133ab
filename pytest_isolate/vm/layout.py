"""Which host directories the guest sees, and where.

The guest's root is a private tmpfs. Onto it go, read-only over 9p: the
system directories (``/usr`` and friends; on a merged-/usr system ``/bin``,
``/lib`` ... are symlinks and are recreated as symlinks), the running
Python's prefix alone (never the home directory around it), and the extra
shares the caller asked for (the project). Anything not listed does not
exist in the guest, so a secret under /root stays on the host.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


@dataclass(frozen=True)
class GuestLayout:
    """Shared directories and symlinks, in the order they must be created."""

    shares: tuple[str, ...]
    links: tuple[tuple[str, str], ...]


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def plan_layout(system: Iterable[tuple[str, str | None]], wanted: Sequence[str]) -> GuestLayout:
    """Shares and links from host facts.

    ``system`` holds ``(path, symlink target or None)`` for the system
    directories that exist; ``wanted`` the other directories (already
    resolved to real paths). Paths inside another share are dropped (they are
    visible through it); parents come before children so mount points exist.
    """
    shares: list[str] = []
    links: list[tuple[str, str]] = []
    for path, target in system:
        if target is None:
            shares.append(path)
        else:
            links.append((path, target))
    for path in wanted:
        if path == "/":
            raise ValueError("sharing / would expose the whole host; share directories instead")
        shares.append(path)
    unique = sorted(set(shares), key=lambda p: (p.count("/"), p))
    kept: list[str] = []
    for path in unique:
        if not any(_inside(path, parent) for parent in kept):
            kept.append(path)
    return GuestLayout(tuple(kept), tuple(links))


def host_system_dirs(
    candidates: Sequence[str] = SYSTEM_DIRS, userland: str = "/"
) -> list[tuple[str, str | None]]:
    """The system directories present on this host (or in ``userland``), with symlink targets.

    The paths are the guest's: ``/usr`` stands for ``userland + /usr`` (see ``host_path``).
    """
    found: list[tuple[str, str | None]] = []
    for path in candidates:
        real = host_path(path, userland)
        if os.path.islink(real):
            found.append((path, os.readlink(real)))
        elif os.path.isdir(real):
            found.append((path, None))
    return found


def host_path(guest_path: str, userland: str = "/") -> str:
    """Where a system directory of the guest is on the host: under ``userland`` (default /)."""
    return os.path.join(userland, guest_path.lstrip("/")) if userland != "/" else guest_path


def resolve_shares(paths: Iterable[str]) -> list[str]:
    """Real paths of the requested shares; a missing one is a usage error."""
    resolved = []
    for path in paths:
        if not os.path.isdir(path):
            raise ValueError(f"VM share {path!r} is not an existing directory")
        resolved.append(os.path.realpath(path))
    return resolved
