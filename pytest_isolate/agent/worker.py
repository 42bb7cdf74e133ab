"""The agent's pytest plugin: report what was collected, then serve ``run`` requests.

Registered only in the target's in-process pytest session. It replaces the
run loop (``pytest_runtestloop``, as pytest-xdist's workers do): instead of
running every item, it waits for the broker to name one and runs that one
in a fresh fork (``fork_server``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from typing import Any, Dict, List, Tuple

import pytest

from pytest_isolate.agent.channel import AgentChannel, BrokerGone
from pytest_isolate.agent.fork_server import ForkPlan, plan_forks, run_in_fork
from pytest_isolate.target.coverage_probe import TargetCoverage
from pytest_isolate.target.item_runner import (
    prepare_forwarder,
    share_session_fixtures,
    silence_broker_reporting,
)
from pytest_isolate.wire.agent_protocol import (
    Collected,
    ProtocolViolation,
    RunRequest,
    parse_broker_message,
)
from pytest_isolate.wire.frames import FrameLimits

WORKER_NAME = "isolate-agent-worker"
MAX_ERROR_TEXT = 16 * 1024


class AgentWorker:
    """Collect once; then, per request, fork and run one item."""

    def __init__(
        self,
        channel: AgentChannel,
        limits: FrameLimits,
        options: Tuple[Tuple[str, Any], ...] = (),
        coverage: Tuple[Tuple[str, Any], ...] | None = None,
    ) -> None:
        self.channel = channel
        self.limits = limits
        self.options = options
        self.coverage = coverage
        self._collection_coverage: Any = None
        self._collection_frames: List[Dict[str, Any]] = []
        self._rootdir = ""
        self.errors: List[str] = []
        self.collected_sent = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        """The broker's option values, where this pytest knows the option too.

        An option that no plugin here defines (a plugin the target lacks) is
        left out: setting it would only mislead.
        """
        known = vars(config.option)
        for name, value in self.options:
            if name in known:
                setattr(config.option, name, value)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longreprtext)[-MAX_ERROR_TEXT:]
            self.errors.append(f"{report.nodeid or '<rootdir>'}: {text}")

    def measure_collection(self, rootdir: str) -> None:
        """Measure coverage from now until collection ends (``coverage`` must be set)."""

        assert self.coverage is not None
        self._rootdir = rootdir
        self._collection_coverage = TargetCoverage.start(dict(self.coverage))

    def send_collected(self, items: List[pytest.Item]) -> None:
        if self.collected_sent:
            return
        self.collected_sent = True
        if self._collection_coverage is not None:
            self._collection_frames = list(self._collection_coverage.frames(self._rootdir))
            self._collection_coverage = None
        from pytest_isolate.wire.item_data import describe_item

        message = Collected(
            tuple(item.nodeid for item in items),
            tuple(self.errors[-100:]),
            tuple(describe_item(item) for item in items),
        )
        self.channel.send(message.to_message())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.send_collected(session.items)
        items: Dict[str, pytest.Item] = {item.nodeid: item for item in session.items}
        plan = prepare_for_forks(session.config, self.coverage)
        with contextlib.suppress(BrokerGone):
            self.serve(items, plan)
        return True

    def serve(self, items: Dict[str, pytest.Item], plan: ForkPlan) -> None:
        while True:
            request = parse_broker_message(self.channel.receive())
            if request == "shutdown":
                return
            if request == "kill":
                continue  # a kill that crossed the child's exit: nothing to do
            if not isinstance(request, RunRequest):
                raise ProtocolViolation("broker sent 'start' twice")
            item: pytest.Item | None = items.get(request.nodeid)
            if item is None:
                self.channel.send(
                    {"type": "refused", "message": f"{request.nodeid!r} was not collected here"}
                )
                continue
            if request.execution_count is not None:  # pytest-rerunfailures' attempt
                item.execution_count = request.execution_count  # type: ignore[attr-defined]
            for frame in self._collection_frames:  # once, with the first test
                self.channel.send(frame)
            self._collection_frames = []
            share_session_fixtures(item)
            run_in_fork(item, request, self.channel, self.limits, plan)


def prepare_for_forks(
    config: pytest.Config, coverage: Tuple[Tuple[str, Any], ...] | None = None
) -> ForkPlan:
    """Do once, in the agent, what every test's child would otherwise repeat.

    In a TCG guest Python runs ~11x slower and every context switch and
    copy-on-write fault is expensive, so per-test work decides the cost of a
    test. The agent's terminal reporter is unregistered (nobody reads the
    agent's terminal; muted, it would still format every report of every
    child); the report forwarder is registered before the heap is frozen;
    ``gc.freeze`` keeps the collector in a child from walking (and so
    copying) the agent's whole heap; batch scheduling stops the agent from
    preempting its child at every relayed frame: it wakes when the child
    blocks or exits and relays what has piled up. ``SCHED_RESET_ON_FORK``
    gives the children the normal policy back.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)
    silence_broker_reporting(config)
    prepare_forwarder(config)
    plan = plan_forks(config)
    if coverage is not None:
        TargetCoverage.prepare(dict(coverage))  # once here, not in every child
        plan = dataclasses.replace(plan, coverage=coverage)
    gc.collect()
    gc.freeze()
    with contextlib.suppress(AttributeError, OSError):
        policy = os.SCHED_BATCH | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(0))
    return plan


def collected_message_for_failure(code: Any) -> Dict[str, Any]:
    """pytest stopped before collecting (a conftest failed to import, a usage error)."""
    return Collected(
        (), (f"pytest could not start in the target (exit code {code}); see its stderr",)
    ).to_message()
