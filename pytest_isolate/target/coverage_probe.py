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

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_isolate.wire.coverage import COVERAGE_SETTINGS, coverage_frames


def running_coverage() -> Any:
    """The coverage started in this process (pytest-cov's, ``coverage run``'s), or None.

    Never imports coverage: when nobody imported it, nothing measures.
    """
    module = sys.modules.get("coverage")
    return getattr(getattr(module, "Coverage", None), "current", lambda: None)()


def coverage_settings(coverage: Any) -> dict[str, Any]:
    """What ``coverage`` measures, through its public ``get_option``."""
    return {name: coverage.get_option(f"run:{name}") for name in COVERAGE_SETTINGS}


class TargetCoverage:
    """The child's own coverage, started in place of the inherited one."""

    def __init__(self, coverage: Any) -> None:
        self._coverage = coverage

    @classmethod
    def begin(cls) -> TargetCoverage | None:
        """In a forked child: replace the inherited running coverage, if there is one."""
        current = running_coverage()
        if current is None:
            return None
        settings = coverage_settings(current)
        current.stop()
        return cls.start(settings)

    @classmethod
    def start(cls, settings: Mapping[str, Any]) -> TargetCoverage:
        """Measure with the broker's ``settings`` (in a spawned target's child)."""
        module = importlib.import_module("coverage")
        own = module.Coverage(data_file=None, **dict(settings))
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
