"""Coverage inside a forked target: measure the test here, send the numbers to the broker.

A forked child inherits the broker's running coverage (pytest-cov's, or
``coverage run``'s), but what it records would die with the child. So the
child stops the inherited one and starts its own, in memory only, with the
broker's measurement settings (source, include, omit, branch) and the same
configuration file; after the test it sends the project's lines or arcs as
frames (``wire.coverage_frames``). Nothing is written to disk here.

Costs nothing when coverage is not running: coverage is never imported here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_isolate.wire.coverage_frames import COVERAGE_SETTINGS, coverage_frames


def running_coverage() -> Any:
    """The coverage started in this process (pytest-cov's, ``coverage run``'s), or None.

    Never imports coverage: when nobody imported it, nothing measures.
    """
    module = sys.modules.get("coverage")
    return getattr(getattr(module, "Coverage", None), "current", lambda: None)()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """In a target: this plugin's own work, outside the running coverage's measurement.

    Serializing and sending a test's reports runs none of the project's code
    (a plain run does neither), but under the tracer every call in it is
    traced all the same: about a millisecond a test in a forked child, whose
    first writes to the broker's pages are copies. Stopping and starting
    coverage (its public API) costs a few microseconds.
    """
    running = running_coverage()
    if running is None:
        yield
        return
    running.stop()
    try:
        yield
    finally:
        running.start()


#: The broker's coverage while it is paused for a target (``integrations.coverage``).
PAUSED: list[Any] = []


def broker_coverage() -> Any:
    """The coverage this broker measures with, running or paused for a target, or None."""
    return PAUSED[0] if PAUSED else running_coverage()


def coverage_settings(coverage: Any) -> dict[str, Any]:
    """What ``coverage`` measures, through its public ``get_option``."""
    return {name: coverage.get_option(f"run:{name}") for name in COVERAGE_SETTINGS}


#: The prepared coverage the next forked child starts (``prepare`` arms it):
#: the broker may have paused its own coverage by then.
_ARMED: list[Any] = []

#: The running coverage ``_ARMED`` was prepared for: its settings are read once.
_ARMED_FOR: list[Any] = []

#: Coverage objects already through coverage's own start-up (finding the
#: standard library and third-party directories, about 12 ms), by settings:
#: made once before the forks, started in each child.
_PREPARED: dict[str, Any] = {}


def _share_trace_decisions(running: Any, prepared: Any) -> None:
    """Give the prepared coverage the running one's per-file decisions (same settings).

    coverage decides once per file whether to trace it, and keeps the answer
    in its collector; a child starting with no answers decides again for each
    of pytest's and pluggy's files, about 10 ms per test. The prepared
    collector takes the running one's ``should_trace_cache`` itself, not a
    copy: the same settings give the same answers, and copying the broker's
    answers before every fork cost 0.6 ms a test. The cache is private to
    coverage (7.4 to 7.18): if it ever moves, the child only decides again.
    """
    with contextlib.suppress(AttributeError):
        decisions = running._collector.should_trace_cache
        if prepared._collector.should_trace_cache is not decisions:
            prepared._collector.should_trace_cache = decisions


def _in_memory_coverage(settings: Mapping[str, Any]) -> Any:
    """A coverage that measures as ``settings`` say and keeps its data in memory only."""
    import coverage  # only ever reached when coverage runs, or was asked for

    return coverage.Coverage(data_file=None, **dict(settings))


def _key(settings: Mapping[str, Any]) -> str:
    return repr(sorted(settings.items()))


class TargetCoverage:
    """The child's own coverage, started in place of the inherited one."""

    def __init__(self, coverage: Any) -> None:
        self._coverage = coverage

    @staticmethod
    def prepare(settings: Mapping[str, Any] | None = None) -> None:
        """Before forking: do coverage's start-up once, so that each child only starts it.

        Without ``settings``, those of the coverage running here, if any. The
        running coverage pauses while the prepared one starts and stops.
        """
        running = None
        if settings is None:
            running = broker_coverage()
            if running is None:
                return
            if _ARMED_FOR and _ARMED_FOR[0] is running:  # the common case: once per test
                _share_trace_decisions(running, _ARMED[0])
                return
            settings = coverage_settings(running)
        prepared = _PREPARED.get(_key(settings))
        if prepared is None:
            prepared = _in_memory_coverage(settings)
            prepared.start()
            prepared.stop()
            _PREPARED[_key(settings)] = prepared
        if running is not None:
            _share_trace_decisions(running, prepared)
            _ARMED[:] = [prepared]
            _ARMED_FOR[:] = [running]

    @classmethod
    def begin(cls) -> TargetCoverage | None:
        """In a forked child: measure in place of the broker's coverage, if it measures.

        The broker prepared (``prepare``) and may have paused its own before
        forking; a coverage still running here is the broker's, stopped.
        """
        current = running_coverage()
        if current is not None:
            current.stop()
        if _ARMED:
            _ARMED[0].start()
            return cls(_ARMED[0])
        return None if current is None else cls.start(coverage_settings(current))

    @classmethod
    def start(cls, settings: Mapping[str, Any]) -> TargetCoverage:
        """Measure with the broker's ``settings`` (prepared before the fork if possible)."""
        own = _PREPARED.get(_key(settings)) or _in_memory_coverage(settings)
        own.start()
        return cls(own)

    def frames(self, root: str) -> Iterator[dict[str, Any]]:
        """Stop measuring; the frames for what ran in the project under ``root``."""
        self._coverage.stop()
        collected = _collected(self._coverage)
        if collected is None:
            collected = _collected_through_data(self._coverage)
        arcs, measured = collected
        prefix = root.rstrip(os.sep) + os.sep
        files = {
            path: sorted(numbers) for path, numbers in measured.items() if path.startswith(prefix)
        }
        return coverage_frames(arcs, files)


def _collected(coverage: Any) -> tuple[bool, dict[str, set[Any]]] | None:
    """Lines as the collector holds them, read directly: no in-memory database per test.

    Without branch coverage the collector's ``data`` maps each traced file to
    its set of line numbers (coverage 7.4 to 7.18). Arcs are packed into
    integers there, and anything unexpected may mean another layout: then the
    public way (``get_data``) is taken.
    """
    if coverage.get_option("run:branch"):
        return None
    data = getattr(getattr(coverage, "_collector", None), "data", None)
    if not isinstance(data, dict) or not all(
        isinstance(lines, set) and all(type(n) is int and 0 < n < 10_000_000 for n in lines)
        for lines in data.values()
    ):
        return None
    return False, data


def _collected_through_data(coverage: Any) -> tuple[bool, dict[str, set[Any]]]:
    data = coverage.get_data()
    arcs = data.has_arcs()
    return arcs, {
        path: set((data.arcs(path) if arcs else data.lines(path)) or ())
        for path in data.measured_files()
    }
