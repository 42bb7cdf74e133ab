"""A writer for the ``newc`` cpio format the kernel unpacks as its initramfs.

Written by hand rather than by calling ``cpio`` so that device nodes and
ownership can be recorded without privileges and the output is byte-for-byte
reproducible (fixed mtimes and inode numbers).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member: a regular file, directory, symlink or device node."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def regular(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _member(ino: int, entry: Entry) -> bytes:
    name = entry.name.lstrip("/").encode() + b"\0"
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if stat.S_ISDIR(entry.mode) else 1,
        0,  # mtime: fixed for reproducible archives
        len(entry.data),
        0,
        0,
        entry.rdev[0],
        entry.rdev[1],
        len(name),
        0,  # check
    )
    header = b"070701" + b"".join(b"%08x" % value for value in fields)
    return header + name + _pad4(len(header) + len(name)) + entry.data + _pad4(len(entry.data))


def archive(entries: list[Entry], first_inode: int = 1) -> bytes:
    """A complete newc archive holding ``entries`` in order, with its trailer.

    Archives may be concatenated; ``first_inode`` keeps inode numbers of a
    second archive from colliding with the first (the kernel would hard-link
    members that share one).
    """
    parts = [_member(first_inode + index, entry) for index, entry in enumerate(entries)]
    parts.append(_member(0, Entry(_TRAILER, 0)))
    return b"".join(parts)
