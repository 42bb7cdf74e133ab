"""coverage.py (alone or through pytest-cov): lines run in a target count as in a plain run.

The target sends what it measured as data (``wire.coverage``); the broker
merges it in memory (``add``) and, once the tests have run, adds it to the
coverage running in the broker, found through coverage's public
``Coverage.current()``, with coverage's data API (``CoverageData.add_lines``
/ ``add_arcs``). Once, because each addition is a write to coverage's
database: ``CoverageFlush`` does it after the test loop and before
pytest-cov's own wrapper stops and saves its data (or at the session's end
under ``coverage run``). Whoever started that coverage (pytest-cov's
controller, ``coverage run``, an xdist worker's) saves and combines it as
usual. The frames were checked on arrival (``wire.coverage``):
only the project's files, within the caps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence

import pytest

from pytest_isolate.target.coverage_probe import PAUSED, TargetCoverage, running_coverage
from pytest_isolate.wire.coverage import CoverageFrame

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
    frames = [
        CoverageFrame(True, tuple((p, tuple(sorted(n))) for p, n in _pending_arcs.items())),
        CoverageFrame(False, tuple((p, tuple(sorted(n))) for p, n in _pending_lines.items())),
    ]
    _pending_arcs.clear()
    _pending_lines.clear()
    record([frame for frame in frames if frame.files])


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


def record(frames: Sequence[CoverageFrame]) -> None:
    """Add the target's lines or arcs to the broker's running coverage, if any."""
    if not frames:
        return
    current = running_coverage()
    if current is None:
        return
    data = current.get_data()
    for frame in frames:
        if not frame.files:
            continue
        if frame.arcs and (data.has_arcs() or not data.measured_files()):
            data.add_arcs({path: list(arcs) for path, arcs in frame.files})  # type: ignore[misc]
        elif frame.arcs:  # the broker measures lines: an arc's positive ends are its lines
            data.add_lines(
                {
                    path: sorted({n for arc in arcs for n in arc if n > 0})  # type: ignore[union-attr]
                    for path, arcs in frame.files
                }
            )
        elif not data.has_arcs():
            data.add_lines({path: list(lines) for path, lines in frame.files})  # type: ignore[misc]
