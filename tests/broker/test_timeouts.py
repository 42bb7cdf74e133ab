"""Wall-clock timeouts: enforced by the broker, escalating to SIGKILL; marker > CLI > ini."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

SLEEPERS = """
    import signal, time
    from pytest_isolate import isolate

    @isolate(timeout=1)
    def test_sleep_with_timeout_1():
        time.sleep(60)

    @isolate(timeout=1)
    def test_busy_loop_blocking_every_signal():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            pass

    @isolate()
    def test_sleep_without_marker_timeout():
        time.sleep(60)

    @isolate(timeout=0.5)
    def test_sleep_with_marker_timeout_half_a_second():
        time.sleep(60)

    @isolate()
    def test_quick():
        pass
"""


@pytest.fixture(scope="module")
def project(module_dir: Path) -> Path:
    return write_project(
        module_dir, {"test_sleepers.py": SLEEPERS, "pytest.ini": "[pytest]\nisolate_timeout = 2\n"}
    )


@pytest.fixture(scope="module")
def cli_run(project: Path) -> ProjectRun:
    return run_pytest(project, "--isolate-timeout=1.5")


@pytest.fixture(scope="module")
def ini_run(project: Path) -> ProjectRun:
    return run_pytest(project, "-k", "without_marker or quick")


def test_sleeping_test_times_out_after_its_timeout(cli_run: ProjectRun) -> None:
    assert cli_run.outcome("test_sleep_with_timeout_1") == "FAILED"
    report = cli_run.report_of("test_sleep_with_timeout_1")
    assert "timed out after 1 s" in report
    assert "during call" in report


def test_timed_out_report_shows_where_the_test_was(cli_run: ProjectRun) -> None:
    report = cli_run.report_of("test_sleep_with_timeout_1")
    assert "Traceback of the target (faulthandler)" in report
    assert "in test_sleep_with_timeout_1" in report


def test_busy_loop_with_every_signal_blocked_and_sigterm_ignored_is_still_killed(
    cli_run: ProjectRun,
) -> None:
    assert cli_run.outcome("test_busy_loop_blocking_every_signal") == "FAILED"
    assert "timed out after 1 s" in cli_run.report_of("test_busy_loop_blocking_every_signal")


def test_command_line_timeout_overrides_the_ini(cli_run: ProjectRun) -> None:
    assert "timed out after 1.5 s" in cli_run.report_of("test_sleep_without_marker_timeout")


def test_marker_timeout_overrides_the_command_line(cli_run: ProjectRun) -> None:
    report = cli_run.report_of("test_sleep_with_marker_timeout_half_a_second")
    assert "timed out after 0.5 s" in report


def test_ini_timeout_applies_without_command_line(ini_run: ProjectRun) -> None:
    assert "timed out after 2 s" in ini_run.report_of("test_sleep_without_marker_timeout")
    assert ini_run.outcome("test_quick") == "PASSED"


def test_session_goes_on_after_timeouts_and_takes_about_the_timeouts(cli_run: ProjectRun) -> None:
    assert cli_run.outcome("test_quick") == "PASSED"
    assert "4 timed out" in cli_run.output
    # 1 + (1 + 1 s grace before SIGKILL) + 1.5 + 0.5, plus start-up: never the 60 s sleeps
    assert cli_run.seconds < 15
