"""coverage.py (alone or through pytest-cov): lines run in a target count as in a plain run.

The target sends what it measured as data (``wire.coverage``); here the broker
adds it to the coverage that is running in the broker, found through
coverage's public ``Coverage.current()``, with coverage's data API
(``CoverageData.add_lines`` / ``add_arcs``). Whoever started that coverage
(pytest-cov's controller, ``coverage run``, an xdist worker's) saves and
combines it as usual. The frames were checked on arrival (``wire.coverage``):
only the project's files, within the caps.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pytest_isolate.wire.coverage import CoverageFrame


def record(frames: Sequence[CoverageFrame]) -> None:
    """Add the target's lines or arcs to the broker's running coverage, if any."""
    if not frames:
        return
    module = sys.modules.get("coverage")
    current = getattr(getattr(module, "Coverage", None), "current", lambda: None)()
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
