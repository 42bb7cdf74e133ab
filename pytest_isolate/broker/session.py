"""The broker: decides per item, runs isolated items in their targets, logs their reports.

Registered by ``plugin.py`` only when isolation can happen in this run.
Items without a target run through pytest's normal protocol untouched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_isolate.backends import worker_lines
from pytest_isolate.backends.announce import announce
from pytest_isolate.backends.base import (
    FailureKind,
    TargetResult,
    backend_forks,
    backend_prepare_target,
)
from pytest_isolate.backends.registry import BackendRegistry
from pytest_isolate.broker import resolve
from pytest_isolate.broker.kept_files import keep_tmp_path
from pytest_isolate.broker.summary import RunStats
from pytest_isolate.integrations import coverage
from pytest_isolate.integrations.benchmark import add_benchmark
from pytest_isolate.integrations.hypothesis import save_examples
from pytest_isolate.integrations.rerunfailures import DRIVEN_ELSEWHERE
from pytest_isolate.integrations.timeout import apply_plugin_timeout
from pytest_isolate.pytest_compat import set_failed_subtests
from pytest_isolate.spec import Defaults, IsolateSpec, SpecError
from pytest_isolate.supervision.context import BrokerContext
from pytest_isolate.wire.reports import FAILED_SUBTESTS

SPEC_KEY = pytest.StashKey[IsolateSpec]()
ERROR_KEY = pytest.StashKey[str]()

_WARNING_CATEGORIES: dict[str, type[Warning]] = {
    cls.__name__: cls
    for cls in (
        Warning,
        UserWarning,
        DeprecationWarning,
        PendingDeprecationWarning,
        SyntaxWarning,
        RuntimeWarning,
        FutureWarning,
        ImportWarning,
        UnicodeWarning,
        BytesWarning,
        ResourceWarning,
        pytest.PytestWarning,
        pytest.PytestDeprecationWarning,
        pytest.PytestUnraisableExceptionWarning,
        pytest.PytestUnhandledThreadExceptionWarning,
        pytest.PytestCollectionWarning,
        pytest.PytestConfigWarning,
    )
}


@dataclass
class _Matrix:
    targets: list[IsolateSpec]
    error: str | None = None


class IsolateSession:
    """The broker plugin object: one per pytest process (one per xdist worker)."""

    def __init__(
        self,
        config: pytest.Config,
        registry: BackendRegistry,
        defaults: Defaults,
        matrix: Sequence[IsolateSpec],
        honour_forked: bool,
        unavailable: str,
        prefork: bool = True,
    ) -> None:
        self.config = config
        self.registry = registry
        self.defaults = defaults
        self.matrix = list(matrix)
        self.honour_forked = honour_forked
        self.unavailable = unavailable
        self.context = BrokerContext(config, spec_of=self.spec_of, pipeline=prefork)
        #: fork a forked backend's next target while the current test runs
        self.prefork = prefork
        self._pid = os.getpid()
        self.stats = RunStats()
        self._previous_sigterm = _interrupt_on_sigterm()
        #: Plugins that drive some items' protocol themselves (``runtestprotocol``
        #: per attempt): for those items this session steps aside and the
        #: integration's phase relay runs the target.
        self.protocol_drivers: list[Callable[[pytest.Item], bool]] = []
        #: Where each test is in ``session.items`` (``_item_after``), made at first use.
        self._positions: dict[int, int] | None = None

    # -- collection -----------------------------------------------------
    def _targets(self, node: Any, where: str) -> _Matrix:
        marks = resolve.closest_marks(node, self.honour_forked)
        try:
            return _Matrix(
                resolve.expand_targets(marks, self.defaults, self.registry, where, self.matrix)
            )
        except SpecError as exc:
            return _Matrix([], str(exc))

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        matrix = self._targets(metafunc.definition, metafunc.definition.nodeid)
        if len(matrix.targets) > 1:
            metafunc.fixturenames.append(resolve.MATRIX_ARG)
            metafunc.parametrize(
                resolve.MATRIX_ARG,
                list(range(len(matrix.targets))),
                ids=resolve.label_ids(matrix.targets),
            )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            matrix = self._targets(item, item.nodeid)
            if matrix.error:
                item.stash[ERROR_KEY] = matrix.error
                continue
            if not matrix.targets:
                continue
            callspec = getattr(item, "callspec", None)
            index = callspec.params.get(resolve.MATRIX_ARG, 0) if callspec else 0
            spec = matrix.targets[index]
            adjusted = item.ihook.pytest_isolate_adjust_spec(item=item, spec=spec)
            item.stash[SPEC_KEY] = adjusted if adjusted is not None else spec

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Say once, before any test runs, which tests ``--pdb`` or ``--trace`` cannot stop in."""
        note = debugger_note(session.config, session.items, self.spec_of, self._forks)
        if note is not None:
            announce(session.config, note)

    def _forks(self, spec: IsolateSpec) -> bool:
        """Does ``spec`` run in a fork of this broker (which keeps the user's terminal)?"""
        return backend_forks(self.registry.get(spec.backend), spec)

    def spec_of(self, item: pytest.Item) -> IsolateSpec | None:
        """Where ``item`` runs, or None for a test the broker runs itself."""
        return item.stash.get(SPEC_KEY, None)

    def is_isolated(self, item: pytest.Item) -> bool:
        return self.spec_of(item) is not None

    def run_for_relay(self, item: pytest.Item, spec: IsolateSpec) -> list[pytest.TestReport]:
        """One attempt of a test whose protocol another plugin drives: a new target."""
        return self.reports_of(item, self.run_target(item, spec), spec.label)

    # -- running --------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        error = item.stash.get(ERROR_KEY, None)
        spec = item.stash.get(SPEC_KEY, None)
        if error is None and spec is None:
            self.context.settle()  # no target still exits while the broker runs a test
            self.context.drop_spare()  # the broker runs a test: a fork made before is stale
            return None
        driven = error is None and self._driven(item)
        self.context.next_item = (
            nextitem if self.prefork and not driven and self._may_fork_ahead(nextitem) else None
        )
        self.context.item_after_next = self._item_after(self.context.next_item)
        if driven:
            item.stash[DRIVEN_ELSEWHERE] = True
            return None
        ihook = item.ihook
        if error is None and spec is not None:
            self._start_target_early(item, spec)
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        if error is not None:
            result = TargetResult(failure=f"usage error: {error}", failure_kind="usage")
            for report in self.reports_of(item, result, "usage"):
                ihook.pytest_runtest_logreport(report=report)
        else:
            assert spec is not None
            self._run(item, spec)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _driven(self, item: pytest.Item) -> bool:
        """Does another plugin drive ``item``'s protocol (rerunfailures)?"""
        return any(drives(item) for drives in self.protocol_drivers)

    def _may_fork_ahead(self, nextitem: pytest.Item | None) -> bool:
        """May ``nextitem``'s target be forked while the current test runs?

        Not when another plugin drives its protocol: such a plugin sets the
        item up in the broker (its attempt count) after the fork would be made.
        """
        return (
            nextitem is not None
            and self.spec_of(nextitem) is not None
            and ERROR_KEY not in nextitem.stash
            and not self._driven(nextitem)
        )

    def _item_after(self, item: pytest.Item | None) -> pytest.Item | None:
        """The test after ``item`` in the run's order, if its target may be started ahead too.

        Only where the order is the session's own: an xdist worker is handed
        its tests as the run goes.
        """
        if item is None or hasattr(item.config, "workerinput"):
            return None
        items = item.session.items
        if self._positions is None or len(self._positions) != len(items):
            self._positions = {id(each): index for index, each in enumerate(items)}
        index = self._positions.get(id(item))
        if index is None or index + 1 >= len(items):
            return None
        following = items[index + 1]
        return following if self._may_fork_ahead(following) else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Note the warnings filters between tests: a target forked ahead goes back to them."""
        self.context.warning_filters = list(warnings.filters)

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> None:
        """A fixture set up in the broker changes what a fork inherits: no spare fits now."""
        if os.getpid() == self._pid:
            self.context.drop_spare()

    def _start_target_early(self, item: pytest.Item, spec: IsolateSpec) -> None:
        """Start a spawned target before the test's line, so its progress has lines of its own.

        A failure here is left for ``run``, which reports it as the test's.
        """
        prepare = backend_prepare_target(self.registry.get(spec.backend))
        if prepare is None or not self.registry.availability(spec.backend):
            return
        with contextlib.suppress(Exception):
            prepare(item, spec, self.context)

    def _run(self, item: pytest.Item, spec: IsolateSpec) -> None:
        result = self.run_target(item, spec)
        reports = self.reports_of(item, result, spec.label)
        keep_tmp_path(item, result, reports)
        if result.startup:
            record_startup(item, reports, result.startup)
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        if result.exit_request is not None:  # the test ended the run, as it would in-process
            reason, returncode = result.exit_request
            pytest.exit(reason, returncode)

    def run_target(self, item: pytest.Item, spec: IsolateSpec) -> TargetResult:
        """Run the item's whole protocol in a new target; count it in the summary."""
        backend = self.registry.get(spec.backend)
        availability = self.registry.availability(spec.backend)
        if not availability:
            message = (
                f"backend {spec.backend!r} is not available here: {availability.reason}"
                + (f"; fix: {availability.fix}" if availability.fix else "")
                + " (run pytest --isolate-doctor for details)"
            )
            kind: FailureKind = "skip" if self.unavailable == "skip" else "unavailable"
            return TargetResult(failure=message, failure_kind=kind)
        spec, timeout_note = apply_plugin_timeout(item, spec)
        self.context.settle()  # the previous target's exit, collected while its test was reported
        started = time.monotonic()
        try:
            with coverage.broker_paused():
                result = backend.run(item, spec, self.context)
        except Exception as exc:  # a backend bug or a dead engine fails this test only
            result = TargetResult(
                failure=f"backend {spec.backend!r} failed: {type(exc).__name__}: {exc}",
                failure_kind="engine",
            )
        result.duration = result.duration or time.monotonic() - started
        if timeout_note and result.failure_kind == "timeout" and result.failure:
            result.failure = f"{result.failure} ({timeout_note})"
        coverage.add(result.coverage)
        save_examples(result.examples)
        add_benchmark(item, result.benchmark)
        self.stats.record(spec.label, result)
        return result

    def reports_of(
        self, item: pytest.Item, result: TargetResult, label: str
    ) -> list[pytest.TestReport]:
        """The test's reports in the order the target sent them, completed for a dead target.

        Its warnings are recorded on the way: they belong to the same run.
        """
        config = item.config
        for data in result.warnings:
            self._emit_warning(item, data)
        seen: list[str] = []
        reports: list[pytest.TestReport] = []
        if result.failure_kind == "violation":
            _fail_call_report(item, result, label)
        for data in result.reports:  # their text escaped on arrival (wire.reports)
            failed_subtests = data.pop(FAILED_SUBTESTS, 0)
            report = config.hook.pytest_report_from_serializable(config=config, data=data)
            _restore_subtest_kwargs(report, data)
            set_failed_subtests(config, report, failed_subtests)
            if data.get("_report_type") != "SubTestReport":
                seen.append(report.when)
            reports.append(report)
        if result.failure is not None and result.failure_kind != "violation-reported":
            from pytest_isolate.broker.reporting import missing_phase_reports

            reports.extend(missing_phase_reports(item, result, seen, label))
        return reports

    def _emit_warning(self, item: pytest.Item, data: dict[str, Any]) -> None:
        category = _WARNING_CATEGORIES.get(data["category"], UserWarning)
        text = (
            data["message"]
            if category is not UserWarning or data["category"] == "UserWarning"
            else f"{data['category']}: {data['message']}"
        )
        message = warnings.WarningMessage(
            category(text), category, data["filename"], data["lineno"]
        )
        item.config.hook.pytest_warning_recorded.call_historic(
            kwargs=dict(warning_message=message, when="runtest", nodeid=item.nodeid, location=None)
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """An xdist worker's report carries its progress lines; the controller prints them."""
        if worker_lines.worker_id(self.config) is not None:
            worker_lines.attach(self.config, report)
            return
        for line in worker_lines.carried(report):
            announce(self.config, line)

    # -- end ------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A target forked ahead is ended before the broker tears its fixtures down.

        It holds copies of the broker's descriptors until its test starts: a
        fixture whose teardown waits for EOF on a pipe would wait for it.
        An xdist worker then hands its figures to the controller, which
        prints the summary.
        """
        self.context.settle()
        self.context.drop_spare()
        self.stats.add_late_exits(self.context.late_exits)
        workeroutput = getattr(session.config, "workeroutput", None)
        if isinstance(workeroutput, dict):
            workeroutput[WORKER_STATS] = self.stats.to_data()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """The controller: a worker finished; add up what it ran."""
        self.stats.add_data(getattr(node, "workeroutput", {}).get(WORKER_STATS))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.stats.lines():
            terminalreporter.write_line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        try:
            self.context.drop_spare()  # it holds the broker's descriptors: backends wait on them
            self.registry.close()
            self.context.close()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)


def debugger_note(
    config: pytest.Config,
    items: list[pytest.Item],
    spec_of: Callable[[pytest.Item], IsolateSpec | None],
    forks: Callable[[IsolateSpec], bool],
) -> str | None:
    """The line that says which tests a debugger cannot stop in, and how to debug them."""
    if not (config.getoption("usepdb", False) or config.getoption("trace", False)):
        return None
    labels = sorted(
        {spec.label for item in items if (spec := spec_of(item)) is not None and not forks(spec)}
    )
    if not labels:
        return None
    return (
        f"--pdb and --trace do not stop in tests run in {', '.join(labels)} "
        "(those targets have no terminal); to debug such a test, run it with --no-isolate, "
        "or mark it isolate('process') while you debug"
    )


#: The key of a pytest-xdist worker's figures in its ``workeroutput``.
WORKER_STATS = "pytest_isolate_stats"

#: The JUnit property (a ``user_properties`` entry) of a test that waited for its target.
STARTUP_PROPERTY = "isolate_target_start_seconds"


class StartupRow:
    """A ``--durations`` row for a target's start, kept apart from the test's phases.

    pytest lists every object with a ``duration`` that its terminal reporter
    holds; ``count_towards_summary`` keeps it out of the run's counts.
    """

    count_towards_summary = False

    def __init__(self, nodeid: str, seconds: float) -> None:
        self.nodeid = nodeid
        self.duration = seconds
        self.when = "target start"


def record_startup(item: pytest.Item, reports: list[pytest.TestReport], seconds: float) -> None:
    """Say where a spawned target's start went: a JUnit property and a ``--durations`` row."""
    teardown = next((r for r in reversed(reports) if r.when == "teardown"), None)
    if teardown is not None:
        teardown.user_properties = [*teardown.user_properties, (STARTUP_PROPERTY, f"{seconds:.3f}")]
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", None)
    if isinstance(stats, dict):
        # Under the key of passing setup and teardown reports, which the summary line skips.
        stats.setdefault("", []).append(StartupRow(item.nodeid, seconds))


def _restore_subtest_kwargs(report: Any, data: dict[str, Any]) -> None:
    """pytest re-applies saferepr to subtest kwargs on deserialization ('1' -> "'1'")."""
    context = getattr(report, "context", None)
    kwargs = data.get("_subtest.context", {}).get("kwargs")
    if context is not None and isinstance(kwargs, dict):
        object.__setattr__(context, "kwargs", dict(kwargs))


def _fail_call_report(item: pytest.Item, result: TargetResult, label: str) -> None:
    """A test that finished but attempted forbidden syscalls fails in its call phase.

    Under an ``xfail`` mark it fails the way a raised exception would: xfailed.
    """
    from pytest_isolate.broker.reporting import failure_text, xfail_reason

    for data in result.reports:
        if data.get("when") == "call" and data.get("_report_type") != "SubTestReport":
            original = data.get("longrepr")
            message = f"[isolate:{label}] {result.failure}"
            text = failure_text(message, result.sections)
            data["longrepr"] = text if not isinstance(original, str) else f"{text}\n{original}"
            reason = xfail_reason(item, "call")
            if reason is None:
                data["outcome"] = "failed"
                data.pop("wasxfail", None)
            else:
                data["outcome"] = "skipped"
                data["wasxfail"] = reason + message
            result.failure_kind = "violation-reported"
            return


def _interrupt_on_sigterm() -> Any:
    """Make SIGTERM (a cancelled CI job) end the run like Ctrl-C, so targets are cleaned up.

    Only when nobody else handles SIGTERM and we are in the main thread; the
    previous disposition is restored at the end. Forked targets reset it.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"pytest-isolate: received signal {signum} (SIGTERM)")

    return signal.signal(signal.SIGTERM, interrupt)
