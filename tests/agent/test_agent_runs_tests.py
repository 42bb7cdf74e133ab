"""The agent as a fork server on the host: every outcome comes back, nothing outlives a test."""

from __future__ import annotations

import os
import time
from typing import Any

from pytest_isolate.spec import IsolateSpec
from pytest_isolate.wire.frames import FrameLimits

SPEC = IsolateSpec(backend="container", timeout=10)


def outcomes(result: Any) -> list[tuple[str, str]]:
    return [(r["when"], r["outcome"]) for r in result.reports]


def stdout_of(result: Any) -> str:
    return "".join(
        body for report in result.reports for title, body in report["sections"] if "stdout" in title
    )


def test_collected_lists_the_projects_node_ids(start_agent):
    agent = start_agent()
    assert "test_project.py::test_passes" in agent.client.collected.nodeids


def test_a_passing_test_reports_three_phases_and_its_output(start_agent):
    result = start_agent().client.run("test_project.py::test_passes", SPEC, FrameLimits())
    assert result.failure is None
    assert outcomes(result) == [("setup", "passed"), ("call", "passed"), ("teardown", "passed")]
    assert "hello from the target" in stdout_of(result)


def test_a_failing_test_is_reported_failed(start_agent):
    result = start_agent().client.run("test_project.py::test_fails", SPEC, FrameLimits())
    assert result.failure is None
    assert ("call", "failed") in outcomes(result)


def test_a_segfault_is_named_and_the_agent_serves_the_next_test(start_agent):
    agent = start_agent()
    crashed = agent.client.run("test_project.py::test_segfaults", SPEC, FrameLimits())
    assert crashed.failure == "killed by signal 11 (SIGSEGV) during call"
    assert any("faulthandler" in title for title, _ in crashed.sections)
    after = agent.client.run("test_project.py::test_passes", SPEC, FrameLimits())
    assert after.failure is None


def test_a_timeout_kills_the_test_through_the_agent(start_agent):
    agent = start_agent()
    spec = IsolateSpec(backend="container", timeout=1.0)
    started = time.monotonic()
    result = agent.client.run("test_project.py::test_sleeps", spec, FrameLimits())
    assert result.failure == "timed out after 1 s and was killed during call"
    assert time.monotonic() - started < 5
    assert agent.client.dead is None
    assert agent.client.run("test_project.py::test_passes", SPEC, FrameLimits()).failure is None


def test_a_daemon_left_by_a_test_is_killed_before_the_report(start_agent):
    result = start_agent().client.run("test_project.py::test_leaves_a_daemon", SPEC, FrameLimits())
    assert result.failure is None
    pid = int(stdout_of(result).split("DAEMON", 1)[1].split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"daemon {pid} outlived its test")


def test_garbage_on_the_childs_channel_fails_that_test_only(start_agent):
    agent = start_agent()
    result = agent.client.run(
        "test_project.py::test_writes_garbage_to_its_channel", SPEC, FrameLimits()
    )
    assert result.failure is not None and "broke the protocol" in result.failure
    assert result.failure_kind == "protocol"
    assert agent.client.run("test_project.py::test_passes", SPEC, FrameLimits()).failure is None


def test_a_child_cannot_forge_the_agents_exited_frame(start_agent):
    agent = start_agent()
    result = agent.client.run("test_project.py::test_forges_an_exited_frame", SPEC, FrameLimits())
    assert result.failure is not None and "'exited'" in result.failure


def test_the_environment_is_scrubbed_and_env_added(start_agent):
    spec = IsolateSpec(backend="container", env=(("EXTRA", "yes"),))
    result = start_agent().client.run(
        "test_project.py::test_reads_its_environment", spec, FrameLimits()
    )
    assert "SECRET=absent" in stdout_of(result)
    assert "EXTRA=yes" in stdout_of(result)


def test_an_unknown_node_id_is_refused_without_harm(start_agent):
    agent = start_agent()
    result = agent.client.run("test_project.py::test_nothing", SPEC, FrameLimits())
    assert result.failure is not None and "was not collected" in result.failure
    assert agent.client.run("test_project.py::test_passes", SPEC, FrameLimits()).failure is None


def test_the_agent_ends_when_the_broker_closes_its_end(start_agent):
    agent = start_agent()
    agent.sock.close()
    assert agent.process.wait(10) == 0
