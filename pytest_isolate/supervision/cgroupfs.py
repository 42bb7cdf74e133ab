"""Reading and writing cgroup files, and finding where the unified hierarchy is mounted.

Shared by the cgroup v1 and v2 process trees: moving a target in, finding
what a group and its subgroups hold, and removing them are the same for
both. The parsers are pure (text in, values out) so they are tested on any
host; the readers swallow the errors a cgroup that vanished meanwhile raises,
because every caller treats "gone" as "empty".
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pytest_isolate.liveness import descendants
from pytest_isolate.target.receipt import check_membership

#: Where systemd and every distribution mount the cgroup hierarchy (v2: the unified one).
DEFAULT_MOUNT = Path("/sys/fs/cgroup")
#: Our groups, under each v1 controller's root or under the v2 mount.
GROUP_NAME = "pytest-isolate"
#: ``pids.max`` of a target whose spec names no ``pids_limit``.
DEFAULT_PIDS_LIMIT = 4096

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def write(path: Path, text: str) -> None:
    """One ``write(2)`` of ``text``: cgroup files act on each write, not on a buffered stream."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def pids_in(procs_file: Path) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file; none if the group is gone."""
    try:
        return [int(x) for x in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


def members_below(group: Path) -> list[int]:
    """Processes in ``group`` and every group below it (a root test can make subgroups)."""
    found: list[int] = []
    for directory, _subdirs, _files in os.walk(group):
        found += pids_in(Path(directory) / "cgroup.procs")
    return found


def remove_group(group: Path) -> None:
    """Remove ``group`` and any subgroup, deepest first; a group still populated stays."""
    for directory, _subdirs, _files in os.walk(group, topdown=False):
        with contextlib.suppress(OSError):
            Path(directory).rmdir()


def parse_keyed(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``memory.events``, ``cgroup.events``): ``key value`` lines."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def read_keyed(path: Path) -> dict[str, int]:
    """``parse_keyed`` of a file; empty if it cannot be read."""
    try:
        return parse_keyed(path.read_text())
    except OSError:
        return {}


def read_words(path: Path) -> set[str]:
    """The words of a space-separated file (``cgroup.controllers``); none if unreadable."""
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as ``\\ooo``."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def cgroup2_mounts(mountinfo: str) -> list[Path]:
    """Mount points of whole cgroup2 hierarchies in ``/proc/self/mountinfo``, best first.

    A bind mount of a subdirectory (root field other than ``/``) is not the
    hierarchy's root and is skipped. ``/sys/fs/cgroup`` comes first, as the
    place every tool agrees on; others keep their mountinfo order.
    """
    found: list[Path] = []
    for line in mountinfo.splitlines():
        before, separator, after = line.partition(" - ")
        fields, rest = before.split(), after.split()
        if not separator or len(fields) < 5 or not rest or rest[0] != "cgroup2":
            continue
        if fields[3] != "/":
            continue
        mount = Path(_unescape(fields[4]))
        if mount not in found:
            found.append(mount)
    found.sort(key=lambda mount: mount != DEFAULT_MOUNT)
    return found


def move_into(pid: int, procs_files: Iterable[Path], membership: str | None) -> bool:
    """Write ``pid`` and its descendants into each ``cgroup.procs``; check ``pid``'s membership.

    A waiting target and what it forked in its own steps are all blocked,
    so none can fork while they are moved. False when ``pid`` is gone.
    """
    members = [pid, *descendants(pid)]
    try:
        for procs in procs_files:
            for member in members:
                write(procs, str(member))
    except ProcessLookupError:
        return False
    if membership is not None:
        check_membership(membership, pid)
    return True
