"""A target that dies in any way fails its own test, in words, and the session goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

CRASHING_TESTS = """
    import ctypes, os, signal
    import pytest
    from pytest_isolate import isolate

    @pytest.fixture
    def fixture_that_crashes():
        print("fixture output before the crash")
        os._exit(9)

    @isolate()
    def test_segfault():
        print("output before the segfault")
        ctypes.string_at(0)

    @isolate()
    def test_exit_3():
        os._exit(3)

    @isolate()
    def test_sigkill_of_itself():
        os.kill(os.getpid(), signal.SIGKILL)

    @isolate()
    def test_abort():
        os.abort()

    @isolate()
    def test_crash_in_fixture(fixture_that_crashes):
        pass

    @isolate()
    def test_passes_after_the_crashes():
        pass
"""


@pytest.fixture(scope="module")
def run(module_dir: Path) -> ProjectRun:
    write_project(module_dir, {"test_crashing.py": CRASHING_TESTS})
    return run_pytest(module_dir, f"--junitxml={module_dir / 'junit.xml'}")


def test_segfault_is_reported_as_signal_11_during_call(run: ProjectRun) -> None:
    assert run.outcome("test_segfault") == "FAILED"
    assert "killed by signal 11 (SIGSEGV) during call" in run.report_of("test_segfault")


def test_segfault_report_has_a_faulthandler_traceback_of_the_test(run: ProjectRun) -> None:
    report = run.report_of("test_segfault")
    assert "Traceback of the target (faulthandler)" in report
    assert "Fatal Python error: Segmentation fault" in report
    assert "in test_segfault" in report


def test_output_printed_before_a_crash_is_kept(run: ProjectRun) -> None:
    report = run.report_of("test_segfault")
    assert "Captured stdout (tail, target crashed)" in report
    assert "output before the segfault" in report


def test_junit_carries_what_the_terminal_shows_for_a_crash(
    run: ProjectRun, module_dir: Path
) -> None:
    """The failure element: what happened, the faulthandler traceback, the output tail."""
    import xml.etree.ElementTree as ElementTree

    cases = ElementTree.parse(module_dir / "junit.xml").getroot().iter("testcase")
    [case] = [c for c in cases if c.get("name") == "test_segfault"]
    failure = case.find("failure")
    assert failure is not None and failure.text is not None
    assert "killed by signal 11 (SIGSEGV) during call" in (failure.get("message") or "")
    assert "Fatal Python error: Segmentation fault" in failure.text
    assert "in test_segfault" in failure.text
    assert "output before the segfault" in failure.text


def test_os_exit_is_reported_with_its_status(run: ProjectRun) -> None:
    assert run.outcome("test_exit_3") == "FAILED"
    assert "exited with status 3 during call" in run.report_of("test_exit_3")


def test_sigkill_of_itself_is_reported_as_signal_9(run: ProjectRun) -> None:
    assert run.outcome("test_sigkill_of_itself") == "FAILED"
    assert "killed by signal 9 (SIGKILL) during call" in run.report_of("test_sigkill_of_itself")


def test_abort_is_reported_as_sigabrt(run: ProjectRun) -> None:
    assert run.outcome("test_abort") == "FAILED"
    report = run.report_of("test_abort")
    assert "killed by signal 6 (SIGABRT) during call" in report
    assert "Fatal Python error: Aborted" in report


def test_crash_in_a_fixture_is_an_error_in_setup(run: ProjectRun) -> None:
    assert run.outcome("test_crash_in_fixture") == "ERROR"
    report = run.report_of("test_crash_in_fixture")
    assert "exited with status 9 during setup" in report
    assert "fixture output before the crash" in report


def test_session_goes_on_after_every_crash(run: ProjectRun) -> None:
    assert run.outcome("test_passes_after_the_crashes") == "PASSED"
    assert "5 failed" not in run.output  # the fixture crash is an error, not a failure
    assert "4 failed, 1 passed, 1 error" in run.output
    assert "isolate process: 6 tests" in run.output
    assert "5 crashed" in run.output
