"""The jail's file system as data: which mounts, in which order. Pure and table-tested.

``plan_mounts`` turns a ``JailConfig`` plus the system and Python directories
into an ordered list of steps; ``pytest_isolate.jail.rootfs`` carries them out.
Keeping the decisions here means every rule (who wins a path, what is
read-only, what is redundant) is tested without a single mount.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

from pytest_isolate.jail.hostpaths import is_within
from pytest_isolate.jail.jail_config import JailConfig, JailError

#: Device nodes a test may use. No tty, no pts, no block devices.
DEVICES = ("null", "zero", "full", "random", "urandom")
DEV_SYMLINKS = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)


@dataclass(frozen=True)
class Tmpfs:
    """A fresh, private, writable tmpfs (world-writable with the sticky bit unless ``mode``)."""

    path: str
    mode: int = 0o1777


@dataclass(frozen=True)
class Bind:
    """Host ``source`` visible at ``path``.

    ``device``: a device node (its mount must not be nodev).
    ``mirror_symlink``: if the host path is a symlink (merged /usr: /bin ->
    usr/bin), recreate the symlink instead of binding its target.
    """

    source: str
    path: str
    writable: bool = False
    device: bool = False
    mirror_symlink: bool = False


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Directory:
    """An empty directory, to be a mount point later (``/proc``)."""

    path: str


MountStep = Union[Tmpfs, Bind, Symlink, Directory]

# Who wins when two entries claim one jail path: what the user asked for,
# then the Python environment, then the system, then the jail's own layout.
_LAYOUT, _SYSTEM, _PYTHON, _USER = range(4)


def plan_mounts(
    config: JailConfig, system_dirs: Iterable[str], python_dirs: Iterable[str]
) -> list[MountStep]:
    """Ordered mount steps building the jail root; parents always come before children."""
    claims: dict[str, tuple[int, MountStep]] = {}
    for rank, step in _candidate_steps(config, system_dirs, python_dirs):
        _claim(claims, rank, step)
    steps = [step for _rank, step in claims.values()]
    steps = [step for step in steps if not _is_redundant(step, steps)]
    return sorted(steps, key=lambda step: _components(step.path))


def _candidate_steps(
    config: JailConfig, system_dirs: Iterable[str], python_dirs: Iterable[str]
) -> list[tuple[int, MountStep]]:
    writable = {_absolute(p, "writable") for p in config.writable}
    bind_paths = {_absolute(jail, "binds") for _host, jail in config.binds}
    out: list[tuple[int, MountStep]] = [(_LAYOUT, Tmpfs("/", 0o755))]
    out.append((_LAYOUT, Tmpfs("/dev", 0o755)))
    out += [(_LAYOUT, Bind(f"/dev/{name}", f"/dev/{name}", device=True)) for name in DEVICES]
    out += [(_LAYOUT, Symlink(path, target)) for path, target in DEV_SYMLINKS]
    out.append((_LAYOUT, Tmpfs("/dev/shm")))
    out.append((_LAYOUT, Directory("/proc")))
    out.append((_LAYOUT, Tmpfs("/tmp")))
    for path in system_dirs:
        path = _absolute(path, "system dir")
        out.append((_SYSTEM, Bind(_system_source(config, path), path, mirror_symlink=True)))
    for path in python_dirs:
        path = _absolute(path, "python dir")
        out.append((_PYTHON, Bind(path, path)))
    project = _absolute(config.project_dir, "project_dir")
    out.append((_USER, Bind(project, project)))
    for path in config.extra_readonly:
        path = _absolute(path, "extra_readonly")
        out.append((_USER, Bind(path, path)))
    for path in config.tmp_dirs:
        out.append((_USER, Tmpfs(_absolute(path, "tmp_dirs"))))
    for host, jail in config.binds:
        jail = _absolute(jail, "binds")
        out.append((_USER, Bind(_absolute(host, "binds"), jail, writable=jail in writable)))
    for path in sorted(writable - bind_paths):
        out.append((_USER, Bind(path, path, writable=True)))
    return out


def _system_source(config: JailConfig, path: str) -> str:
    """Where a system directory comes from: the host, or the foreign root's same path."""
    if not config.root_source:
        return path
    root = _absolute(config.root_source, "root_source")
    return root + path if root != "/" else path


def _absolute(path: str, what: str) -> str:
    if not path or not os.path.isabs(path):
        raise JailError(f"jail: {what} path {path!r} must be absolute")
    return os.path.normpath(path)


def _claim(claims: dict[str, tuple[int, MountStep]], rank: int, step: MountStep) -> None:
    if step.path == "/" and not (rank == _LAYOUT and isinstance(step, Tmpfs)):
        raise JailError(f"jail: cannot mount over the jail root: {step}")
    current = claims.get(step.path)
    if current is None or current[0] < rank:
        claims[step.path] = (rank, step)
    elif current[0] == rank == _USER and current[1] != step:
        raise JailError(f"jail: two different mounts asked at {step.path}: {current[1]}, {step}")
    # Otherwise the earlier claim stays (equal system or Python duplicates).


def _is_same_path_readonly(step: MountStep) -> bool:
    return isinstance(step, Bind) and step.source == step.path and not step.writable


def _is_redundant(step: MountStep, steps: list[MountStep]) -> bool:
    """A read-only same-path bind inside another one adds nothing: the parent shows it.

    Only the nearest enclosing mount counts: below a tmpfs or a writable
    bind the path would be hidden, so the inner bind is needed.
    """
    if not _is_same_path_readonly(step) or step.path == "/":
        return False
    enclosing = [
        other
        for other in steps
        if other is not step
        and other.path != step.path
        and is_within(step.path, other.path)
        and not isinstance(other, (Directory, Symlink))
    ]
    if not enclosing:
        return False
    nearest = max(enclosing, key=lambda other: len(other.path))
    return _is_same_path_readonly(nearest)


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)
