"""The broker in untrusted mode: collection in the target, items from data, tests in the target.

Registered instead of ``broker.session.IsolateSession``. ``pytest_collection``
(first result) replaces pytest's collection: no directory is walked, no
conftest or test module imported. The agent's answer is validated item by
item; an item that fails validation becomes a collection error (so the run
fails, it is not silently dropped), as does every collection error the
agent reports. Then pytest's own ``pytest_collection_modifyitems`` runs on
the items, so ``-k``, ``-m``, ``--lf`` and ``--co`` work as usual.

Each test runs in a fresh fork inside the target with the options its mark
may tighten (``limits``). Its reports are pinned to the test, every string
in them neutralised (``text``), and missing phases completed by the broker
with the reason in words.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import pytest

from pytest_isolate.backends.base import TargetResult
from pytest_isolate.integrations import coverage
from pytest_isolate.integrations.benchmark import add_benchmark
from pytest_isolate.integrations.hypothesis import save_examples
from pytest_isolate.untrusted.items import UntrustedItem, build_item, display_ids
from pytest_isolate.untrusted.limits import Ceiling, options_for
from pytest_isolate.untrusted.settings import IgnoredSetting
from pytest_isolate.untrusted.untrusted_target import UntrustedTarget
from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.item_data import CollectedItem, parse_item_data
from pytest_isolate.wire.text import neutralise, neutralise_data, neutralise_name

MAX_LAUNCHES = 3
MAX_SHOWN_ERRORS = 50


class UntrustedSession:
    """The untrusted-mode broker plugin."""

    def __init__(
        self,
        target: UntrustedTarget,
        ceiling: Ceiling,
        ignored_settings: tuple[IgnoredSetting, ...],
    ) -> None:
        self.target = target
        self.targets = {False: target}  # by network: a second one only if allowed and asked
        self.ceiling = ceiling
        self.ignored_settings = ignored_settings
        self.ignored_marks: list[str] = []
        self.collect_seconds = 0.0
        self.ran = 0

    # -- what the user is told first -------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        allowed = f"; marks may loosen: {', '.join(sorted(self.ceiling.allow))}"
        lines = [
            f"pytest-isolate untrusted mode: collection and every test run in "
            f"{self.target.description} (no network, project read-only, "
            f"timeout {self.ceiling.timeout:g} s); no project code runs in this process"
            + (allowed if self.ceiling.allow else "")
        ]
        if self.ignored_settings:
            lines.append("pytest-isolate: project settings ignored in untrusted mode:")
            lines += [f"  {neutralise_name(s.describe(), 400)}" for s in self.ignored_settings]
        return lines

    # -- collection -----------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool:
        config = session.config
        hook = config.hook
        started = time.monotonic()
        session.items = []
        try:
            collected = self._launch().collected
        except Exception as exc:  # the engine, the image, the agent: fail the run, in words
            self._collect_error(session, "<untrusted target>", f"the target did not start: {exc}")
            collected = None
        self.collect_seconds = time.monotonic() - started
        if collected is not None:
            session.items = self._items(session, collected)
            # One report for the whole tree: the terminal counts "collected N items" from it.
            hook.pytest_collectreport(
                report=pytest.CollectReport("", "passed", None, list(session.items))
            )
        hook.pytest_collection_modifyitems(session=session, config=config, items=session.items)
        hook.pytest_collection_finish(session=session)
        session.testscollected = len(session.items)
        return True

    def _launch(self) -> Any:
        return self.target.launch()

    def _items(self, session: pytest.Session, collected: Any) -> list[pytest.Item]:
        for text in collected.errors[:MAX_SHOWN_ERRORS]:
            head = text.split(":", 1)[0] if ":" in text else "<collection>"
            if not collected.nodeids:
                text += "\n" + self._agent_stderr()
            self._collect_error(session, head, text)
        valid: list[CollectedItem] = []
        raw_items = collected.items
        if len(raw_items) != len(collected.nodeids):
            self._collect_error(session, "<agent>", "the agent's item data and node ids disagree")
            return []
        for raw, nodeid in zip(raw_items, collected.nodeids):
            try:
                data = parse_item_data(raw)
                if data.nodeid != nodeid:
                    raise ProtocolViolation("item data names another node id")
                valid.append(data)
            except ProtocolViolation as exc:
                self._collect_error(session, nodeid, f"rejected by the broker: {exc}")
        ids = display_ids(data.nodeid for data in valid)
        return [build_item(session, data, display) for data, display in zip(valid, ids)]

    def _agent_stderr(self) -> str:
        """The agent's last words (why pytest could not start in the target), as plain text."""
        current = self.target.current
        last_words = getattr(current, "last_words", None)
        tail = getattr(getattr(current, "stream", None), "stderr_tail", b"")
        if callable(last_words):
            text = str(last_words()).strip()
        else:
            text = tail.decode("utf-8", "replace").strip() if isinstance(tail, bytes) else ""
        return f"the target's stderr ended with:\n{text[-3000:]}" if text else ""

    def _collect_error(self, session: pytest.Session, where: str, text: str) -> None:
        report = pytest.CollectReport(
            neutralise_name(where, 300), "failed", neutralise(text, 20_000), []
        )
        session.config.hook.pytest_collectreport(report=report)

    # -- running --------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if not isinstance(item, UntrustedItem):
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        options = options_for(item.data.marks, self.ceiling)
        if options.ignored:
            self.ignored_marks.append(f"{item.nodeid}: {', '.join(options.ignored)}")
        result = self._run(item, options.spec)
        self.ran += 1
        self._log(item, result)
        if result.exit_request is not None:  # the test ended the run, as it would in-process
            pytest.exit(*result.exit_request)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _run(self, item: UntrustedItem, spec: Any) -> TargetResult:
        started = time.monotonic()
        if spec.network not in self.targets:
            self.targets[spec.network] = self.target.with_network()
        owner = self.targets[spec.network]
        target = owner.current
        if target is None or not target.alive:
            if owner.launches >= MAX_LAUNCHES:
                return TargetResult(
                    failure=f"the untrusted target died {owner.launches} times; "
                    "not starting it again",
                    failure_kind="engine",
                )
            try:
                target = owner.launch()
            except Exception as exc:
                return TargetResult(
                    failure=f"the target did not start: {exc}", failure_kind="engine"
                )
        if item.agent_nodeid not in target.collected.nodeids:
            return TargetResult(
                failure="the restarted target did not collect this test", failure_kind="engine"
            )
        result: TargetResult = target.run(item.agent_nodeid, spec, owner.limits)
        result.duration = result.duration or time.monotonic() - started
        coverage.add(result.coverage)  # checked on arrival: the project's files only
        save_examples(result.examples)  # checked on arrival: hypothesis's names only
        add_benchmark(item, result.benchmark)  # named after the broker's item
        return result

    def _log(self, item: UntrustedItem, result: TargetResult) -> None:
        config = item.config
        for data in result.warnings:
            _emit_warning(item, data)
        seen: list[str] = []
        for raw in result.reports:
            data = neutralise_data(raw)
            data["nodeid"] = item.nodeid
            data["location"] = list(item.location)
            report = config.hook.pytest_report_from_serializable(config=config, data=data)
            if data.get("_report_type") != "SubTestReport":
                seen.append(report.when)
            item.ihook.pytest_runtest_logreport(report=report)
        if result.failure is not None:
            for report in _missing_phases(item, result, seen):
                item.ihook.pytest_runtest_logreport(report=report)

    # -- end ------------------------------------------------------------
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        write(
            f"pytest-isolate untrusted: collected in the target in {self.collect_seconds:.2f} s, "
            f"{self.ran} tests run there, target started "
            f"{sum(t.launches for t in self.targets.values())} time(s)"
        )
        if self.ignored_marks:
            write(
                "pytest-isolate untrusted: mark options not granted (they would loosen the mode):"
            )
            for line in self.ignored_marks[:MAX_SHOWN_ERRORS]:
                write(f"  {neutralise_name(line, 500)}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for target in self.targets.values():
            target.close()


def _missing_phases(
    item: UntrustedItem, result: TargetResult, seen: list[str]
) -> list[pytest.TestReport]:
    """The failing phase's report and a teardown; no xfail evaluation (its strings are code)."""
    assert result.failure is not None
    phases: tuple[Literal["setup", "call", "teardown"], ...] = ("setup", "call", "teardown")
    phase: Literal["setup", "call", "teardown"] = next(
        (p for p in phases if p not in seen), "teardown"
    )
    keywords: dict[str, Literal[1]] = dict.fromkeys(item.keywords, 1)
    message = neutralise(f"[isolate:untrusted] {result.failure}", 20_000)
    sections = [(neutralise_name(t, 200), neutralise(s)) for t, s in result.sections]
    reports = [
        pytest.TestReport(
            item.nodeid,
            item.location,
            keywords,
            "failed",
            message,
            phase,
            sections,
            result.duration,
            user_properties=[("isolate", "untrusted")],
        )
    ]
    if phase != "teardown":
        reports.append(
            pytest.TestReport(item.nodeid, item.location, keywords, "passed", None, "teardown")
        )
    return reports


def _emit_warning(item: pytest.Item, data: dict[str, Any]) -> None:
    """A warning from the target, shown as a UserWarning with its category named in the text."""
    text = neutralise(f"{data['category']}: {data['message']}", 4000)
    message = warnings.WarningMessage(
        UserWarning(text), UserWarning, neutralise_name(str(data["filename"]), 500), data["lineno"]
    )
    item.config.hook.pytest_warning_recorded.call_historic(
        kwargs=dict(warning_message=message, when="runtest", nodeid=item.nodeid, location=None)
    )
