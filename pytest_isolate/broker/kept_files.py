"""A failing test's ``tmp_path``, kept where a plain run keeps it, though its target was private.

A seccomp, chroot, container or guest target sends its failing test's
``tmp_path`` files (``target.kept_tmp_path``; checked on arrival by
``wire.kept_file_frames``: plain relative names, capped). They are written into a
new directory named as pytest names a ``tmp_path``, under the run's
basetemp, so ``--basetemp`` and ``tmp_path_retention_count`` apply, and the
failing report says where they are and what the target left out.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from pytest_isolate.pytest_compat import make_tmp_path
from pytest_isolate.supervision.result import TargetResult

#: The report property that names the directory (JUnit keeps it).
KEPT_PROPERTY = "isolate_tmp_path"


def keep_tmp_path(
    item: pytest.Item, result: TargetResult, reports: list[pytest.TestReport]
) -> None:
    """Write the target's files, and say where on the first failing report."""
    if result.kept_left_out is None and not result.kept_files:
        return
    failing = next((report for report in reports if report.failed), None)
    if failing is None:
        return
    destination = make_tmp_path(item.config, item.name)
    if destination is None:
        return
    left_out = list(result.kept_left_out or [])
    written = 0
    for kept in result.kept_files:
        path = Path(destination, *kept.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            left_out.append(f"{'/'.join(kept.path)} ({exc.strerror})")
            continue
        with contextlib.closing(os.fdopen(fd, "wb")) as handle:
            handle.write(kept.data)
        written += 1
    words = f"the target's tmp_path is kept at {destination} ({written} files)"
    if left_out:
        words += "; left out: " + ", ".join(left_out)
    failing.sections.append(("pytest-isolate: tmp_path", words))
    failing.user_properties.append((KEPT_PROPERTY, str(destination)))
