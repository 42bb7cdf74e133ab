"""pytest-rerunfailures (and any plugin that drives ``runtestprotocol``) for isolated tests.

pytest-rerunfailures owns ``pytest_runtest_protocol`` for the tests it may
rerun, and runs each attempt through pytest's ``runtestprotocol``, phase by
phase. For those tests the broker's own protocol steps aside, and this relay
makes the phases work: the setup phase runs the whole test in a new target,
each phase's hooks are cut short in the broker (nothing of the test runs
there), and ``pytest_runtest_makereport`` hands back the report that the target
sent for that phase. So every attempt is a fresh target, and the plugin sees
ordinary reports: it marks them ``rerun``, sleeps its delay, applies
``--only-rerun`` and counts ``execution_count`` exactly as in a plain run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Any

import pytest

from pytest_isolate.pytest_compat import is_subtest_report
from pytest_isolate.spec import IsolateSpec

#: The phase reports of the item's latest target, by phase, until the next attempt.
_PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()
#: Set on items whose protocol the broker left to another plugin.
DRIVEN_ELSEWHERE = pytest.StashKey[bool]()


class PhaseRanInTarget(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """Cuts a broker-side phase short: the target has already run it.

    A ``Skipped`` subclass because pytest treats those as quiet control flow:
    never reraised, never handed to ``pytest_exception_interact``.
    """


class PhaseRelay:
    """Phase hooks for isolated items whose protocol another plugin drives.

    Only in the broker's own process: a forked target inherits this object
    and the item's flag, and there the phases must run for real.
    """

    def __init__(
        self,
        spec_of: Callable[[pytest.Item], IsolateSpec | None],
        run: Callable[[pytest.Item, IsolateSpec], list[pytest.TestReport]],
    ) -> None:
        self._spec_of = spec_of
        self._run = run
        self._broker_pid = os.getpid()

    def _relayed(self, item: pytest.Item) -> bool:
        return os.getpid() == self._broker_pid and item.stash.get(DRIVEN_ELSEWHERE, False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        spec = self._spec_of(item) if self._relayed(item) else None
        if spec is None:
            return (yield)
        phases: dict[str, pytest.TestReport] = {}
        for report in self._run(item, spec):
            if is_subtest_report(report):
                item.ihook.pytest_runtest_logreport(report=report)
            else:
                phases.setdefault(report.when, report)  # type: ignore[arg-type]
        item.stash[_PHASES] = phases
        raise PhaseRanInTarget("the isolated target ran this phase")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if self._relayed(item):
            raise PhaseRanInTarget("the isolated target ran this phase")
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, Any, Any]:
        if self._relayed(item):
            raise PhaseRanInTarget("the isolated target ran this phase")
        return (yield)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> pytest.TestReport | None:
        if not self._relayed(item):
            return None
        phases = item.stash.get(_PHASES, {})
        report = phases.get(call.when)
        if report is None:  # a phase the target never reached: nothing ran, nothing failed
            report = pytest.TestReport(
                nodeid=item.nodeid,
                location=item.location,
                keywords=dict.fromkeys(item.keywords, 1),
                outcome="passed",
                longrepr=None,
                when=call.when,  # type: ignore[arg-type]
            )
        return report


def reruns_for(plugin: Any) -> Callable[[pytest.Item], bool]:
    """Whether pytest-rerunfailures takes the item's protocol: it has a rerun count for it."""

    def drives(item: pytest.Item) -> bool:
        return plugin.get_reruns_count(item) is not None

    return drives
