"""pytest's own output capture, as a target sees it: what to keep, blank and read back.

A forked target inherits pytest's capture: the temporary files that stand in
for stdout and stderr (kept: the test's output goes there), and the copies of
the real stdout, stderr and stdin that pytest keeps so it can restore them
(``targetfd_save``). Those copies are the user's terminal or the CI log: a
test holding them could write past the channel, its caps and its escaping.
They are blanked (pointed at /dev/null), not closed, because pytest still
restores from them between phases in the target.

Reads pytest's private ``_global_capturing`` (checked on pytest 8.0 to 9.2).
"""

from __future__ import annotations

import contextlib
import os

import pytest

from pytest_isolate.pytest_compat import global_captures

OUTPUT_TAIL = 8 * 1024


def _captures(config: pytest.Config) -> list[object]:
    return global_captures(config)


def capture_fds(config: pytest.Config) -> list[int]:
    """Descriptors of pytest's own output capture, which the child must keep."""
    fds: list[int] = []
    for capture in _captures(config):
        for attr in ("targetfd_save", "targetfd_invalid"):
            value = getattr(capture, attr, None)
            if isinstance(value, int):
                fds.append(value)
        tmpfile = getattr(capture, "tmpfile", None)
        with contextlib.suppress(Exception):
            fds.append(tmpfile.fileno())  # type: ignore[union-attr]
    return fds


def debugging(config: pytest.Config) -> bool:
    """``--pdb`` or ``--trace``: the user asked for a debugger on their terminal."""
    return bool(config.getoption("usepdb", False) or config.getoption("trace", False))


def saved_terminal_fds(config: pytest.Config) -> list[int]:
    """pytest's saved copies of the real stdin, stdout and stderr: blank them in a target.

    Under ``--pdb`` or ``--trace`` none: pytest's debugger restores them to talk to
    the user, who asked for it (a forked target then holds the terminal).
    """
    if debugging(config):
        return []
    return [
        value
        for capture in _captures(config)
        if isinstance(value := getattr(capture, "targetfd_save", None), int)
    ]


def output_tail(config: pytest.Config) -> list[tuple[str, str]]:
    """After a crash: what the target wrote to the shared capture files, then reset them."""
    sections = []
    for (_name, title), capture in zip(
        (("out", "stdout"), ("err", "stderr")), _captures(config)[1:]
    ):
        tmpfile = getattr(capture, "tmpfile", None)
        try:
            fd = tmpfile.fileno()  # type: ignore[union-attr]
        except Exception:
            continue
        size = os.fstat(fd).st_size
        if size:
            start = max(0, size - OUTPUT_TAIL)
            text = os.pread(fd, size - start, start).decode("utf-8", "replace")
            note = f"[... {start} bytes before]\n" if start else ""
            sections.append((f"Captured {title} (tail, target crashed)", note + text))
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
    return sections
