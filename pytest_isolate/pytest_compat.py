"""pytest's private surface that the plugin needs, in one place, by version.

Each function names the pytest versions it was checked on. When pytest moves
something, this module is the one to change.
"""

from __future__ import annotations

from typing import Any

import pytest

# Running one item's protocol in a target, as pytest's runner does, with its
# warnings capture, and writing to nowhere: checked on pytest 8.0 to 9.2.
from _pytest._io import TerminalWriter as TerminalWriter
from _pytest._io.saferepr import saferepr as saferepr
from _pytest.runner import runtestprotocol as runtestprotocol
from _pytest.warnings import catch_warnings_for_item as catch_warnings_for_item


def _failed_subtests(config: pytest.Config) -> Any:
    """pytest's count of failed ``subtests`` per test, or None before pytest 9.0.

    Checked on pytest 9.0.0 (keyed by node id) and 9.2.0 (keyed by ``report.id``).
    """
    try:
        from _pytest.subtests import failed_subtests_key
    except ImportError:  # pytest 8: no subtests fixture, nothing counted
        return None
    return config.stash.get(failed_subtests_key, None)


def _subtest_key(report: Any) -> Any:
    return getattr(report, "id", report.nodeid)  # pytest 9.2 / 9.0


def failed_subtests_of(config: pytest.Config, report: Any) -> int:
    """How many ``subtests`` of ``report``'s test failed, as pytest counted them here.

    Only the ``subtests`` fixture counts: a unittest ``subTest`` that fails is
    reported but not counted, and the parent test then passes (pytest 9.x).
    """
    counts = _failed_subtests(config)
    return 0 if counts is None else int(counts.get(_subtest_key(report), 0))


def set_failed_subtests(config: pytest.Config, report: Any, count: int) -> None:
    """Make the broker's count what the target's was: the parent's verdict reads it."""
    counts = _failed_subtests(config)
    if counts is not None and count:
        counts[_subtest_key(report)] = count


def is_subtest_report(report: Any) -> bool:
    """A report of one ``subtests.test()`` block or unittest ``subTest`` (pytest 9.0-9.2)."""
    try:
        from _pytest.subtests import SubtestReport
    except ImportError:  # pytest 8: subtests are not reported apart
        return False
    return isinstance(report, SubtestReport)
