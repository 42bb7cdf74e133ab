"""Coverage inside a forked target: measure the test here, send the numbers to the broker.

A forked child inherits the broker's running coverage (pytest-cov's, or
``coverage run``'s), but what it records would die with the child. So the
child stops the inherited one and starts its own, in memory only, with the
broker's measurement settings (source, include, omit, branch) and the same
configuration file; after the test it sends the project's lines or arcs as
frames (``wire.coverage``). Nothing is written to disk here.

Costs nothing when coverage is not running: coverage is never imported here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

from pytest_isolate.wire.coverage import coverage_frames

#: The settings that decide what is measured, read from the broker's coverage.
SETTINGS = ("branch", "source", "source_pkgs", "include", "omit")


class TargetCoverage:
    """The child's own coverage, started in place of the inherited one."""

    def __init__(self, coverage: Any) -> None:
        self._coverage = coverage

    @classmethod
    def begin(cls) -> TargetCoverage | None:
        module = sys.modules.get("coverage")
        current = getattr(getattr(module, "Coverage", None), "current", lambda: None)()
        if module is None or current is None:
            return None
        settings = {name: current.get_option(f"run:{name}") for name in SETTINGS}
        current.stop()
        own = module.Coverage(data_file=None, **settings)
        own.start()
        return cls(own)

    def frames(self, root: str) -> Iterator[dict[str, Any]]:
        """Stop measuring; the frames for what ran in the project under ``root``."""
        self._coverage.stop()
        data = self._coverage.get_data()
        arcs = data.has_arcs()
        prefix = root.rstrip(os.sep) + os.sep
        files = {
            path: sorted(data.arcs(path) or ()) if arcs else sorted(data.lines(path) or ())
            for path in data.measured_files()
            if path.startswith(prefix)
        }
        return coverage_frames(arcs, files)
