"""One line on the terminal from the broker: a target's progress, or a note said once per run.

Its own module so that the session, and every backend, can say a line
without importing the machinery of spawned targets.
"""

from __future__ import annotations

import contextlib
import sys

import pytest

from pytest_isolate.backends import worker_lines

#: The one prefix of every progress line and note (summary lines say ``isolate LABEL:``).
PREFIX = "pytest-isolate:"


def announce(config: pytest.Config, line: str, *, step: bool = False) -> None:
    """One line on the terminal: a target takes long enough to start to be noticed.

    ``step`` lines (each step of a VM's boot) are left out under ``-q``; the
    others (a target is ready, a note said once per run) under ``-qq``. The
    session starts targets before a test's line is printed, so these lines
    never land inside a result line. An xdist worker's lines reach the
    controller's terminal with its next report (``worker_lines``).
    """
    verbosity = int(getattr(config.option, "verbose", 0) or 0)
    if verbosity < (0 if step else -1):
        return
    if worker_lines.hold(config, line):  # an xdist worker: the controller prints it
        return
    line = f"{PREFIX} {line}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and hasattr(reporter, "write_line"):
        reporter.write_line(line)
        return
    with contextlib.suppress(OSError):
        sys.stderr.write(line + "\n")
