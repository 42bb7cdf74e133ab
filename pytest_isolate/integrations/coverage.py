"""coverage.py (alone or through pytest-cov): lines run in a target count as in a plain run.

The target sends what it measured as data (``wire.coverage_frames``); the broker
merges it in memory (``add``) and, once the tests have run, adds it to the
coverage running in the broker, found through coverage's public
``Coverage.current()``, with coverage's data API (``CoverageData.add_lines``
/ ``add_arcs``). Once, because each addition is a write to coverage's
database: ``CoverageFlush`` does it after the test loop and before
pytest-cov's own wrapper stops and saves its data (or at the session's end
under ``coverage run``). Whoever started that coverage (pytest-cov's
controller, ``coverage run``, an xdist worker's) saves and combines it as
usual. The frames were checked on arrival (``wire.coverage_frames``):
only the project's files, within the caps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence

import pytest

from pytest_isolate.target.coverage_probe import PAUSED, TargetCoverage, running_coverage
from pytest_isolate.wire.coverage_frames import CoverageFrame

#: What targets measured and the broker has not recorded yet: path -> numbers.
_pending_lines: dict[str, set[int]] = {}
_pending_arcs: dict[str, set[tuple[int, int]]] = {}


def add(frames: Sequence[CoverageFrame]) -> None:
    """Merge one test's checked frames into what will be recorded."""
    for frame in frames:
        pending = _pending_arcs if frame.arcs else _pending_lines
        for path, numbers in frame.files:
            pending.setdefault(path, set()).update(numbers)  # type: ignore[arg-type]


def flush() -> None:
    """Record what targets measured into the running coverage (once, at the end)."""
    lines = {path: sorted(numbers) for path, numbers in _pending_lines.items()}
    arcs = {path: sorted(numbers) for path, numbers in _pending_arcs.items()}
    _pending_lines.clear()
    _pending_arcs.clear()
    if lines or arcs:
        _record(lines, arcs)


class CoverageFlush:
    """Records the targets' coverage after the test loop, inside pytest-cov's wrapper."""

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        flush()  # a run that ended before the loop, or coverage run's


@contextlib.contextmanager
def broker_paused() -> Iterator[None]:
    """Pause the broker's coverage while a target runs an isolated test.

    Nothing of the project runs in the broker then, only this plugin's own
    machinery (forking, supervising, reading frames), which tracing would
    slow down for nothing. The target's coverage is prepared first, from the
    running one's settings.
    """
    running = running_coverage()
    if running is None:
        yield
        return
    TargetCoverage.prepare()
    running.stop()
    PAUSED[:] = [running]
    try:
        yield
    finally:
        PAUSED.clear()
        running.start()


def _record(lines: dict[str, list[int]], arcs: dict[str, list[tuple[int, int]]]) -> None:
    """Add lines and arcs to the broker's running coverage, in the form it measures."""
    current = running_coverage()
    if current is None:
        return
    data = current.get_data()
    if arcs and (data.has_arcs() or not data.measured_files()):
        data.add_arcs(arcs)
    elif arcs:  # the broker measures lines: an arc's positive ends are its lines
        for path, pairs in arcs.items():
            found = {n for pair in pairs for n in pair if n > 0}
            lines[path] = sorted(found.union(lines.get(path, ())))
    if lines and not data.has_arcs():
        data.add_lines(lines)
