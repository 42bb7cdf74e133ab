"""A failing test's ``tmp_path``, sent from a target whose files are its own.

A plain run keeps a failing test's ``tmp_path`` for the user to look at. A
seccomp or chroot target writes it to private temporary space, a container
or guest to its own file system: all of it goes with the target. So after a
failing test, such a target sends the regular files below its ``tmp_path``
as ``kept-file`` frames (``wire.kept_file_frames``, within its caps), then names
what it left out: links, devices, files past the caps.

Runs in targets: Python 3.9 syntax.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List

from pytest_isolate.wire.kept_file_frames import (
    MAX_BYTES,
    MAX_FILES,
    kept_file_frame,
    kept_files_end,
)


def kept_tmp_path_frames(root: Path) -> Iterator[dict[str, Any]]:
    """The frames for the files below ``root``, in name order, then the end frame."""
    left_out: List[str] = []
    sent = total = 0
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(Path(directory, d))]:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                left_out.append(f"{relative} (not a regular file)")
                continue
            if sent >= MAX_FILES or total + info.st_size > MAX_BYTES:
                left_out.append(f"{relative} ({info.st_size} bytes: past the caps)")
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read(MAX_BYTES - total + 1)
            except OSError as exc:
                left_out.append(f"{relative} ({exc.strerror})")
                continue
            if total + len(data) > MAX_BYTES:
                left_out.append(f"{relative} (grew past the caps)")
                continue
            sent += 1
            total += len(data)
            yield kept_file_frame(relative, data)
    yield kept_files_end(left_out)
