"""An isolated test is reported exactly as the same test run in-process."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from project_runner import ProjectRun, run_pytest, write_project

EVERY_KIND = """
    import logging, sys, warnings
    import pytest

    def test_passes():
        pass

    def test_warns():
        warnings.warn(UserWarning("careful now"))

    def test_fails_with_every_section():
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logging.getLogger("parity").warning("to the log")
        assert 1 + 1 == 3

    def test_records_properties(record_property):
        record_property("answer", 42)
        record_property("question", "unknown")

    def test_skips():
        pytest.skip("not today")

    @pytest.mark.xfail(reason="known bug")
    def test_xfails():
        assert False

    @pytest.mark.xfail(reason="maybe fixed")
    def test_xpasses():
        pass

    def test_errors_in_teardown(request):
        request.addfinalizer(lambda: 1 / 0)
"""

SUBTESTS = """
    def test_with_subtests(subtests):
        for i in range(4):
            with subtests.test(msg="case", i=i, name="x"):
                assert i % 2 == 0
"""


def summary(run: ProjectRun) -> list[str]:
    """The parts of a run's output that must not depend on isolation."""
    lines = [
        re.sub(r" in [\d.]+s", "", line).strip()
        for line in run.output.splitlines()
        if re.match(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS|SUBPASS|SUBFAIL)\b", line)
        or re.match(r"=+ .*(passed|failed).* =+$", line)
    ]
    return sorted(line for line in lines if "[isolate" not in line)


UNITTEST_SUBTESTS = """
    import unittest

    class TestCases(unittest.TestCase):
        def test_with_subtests(self):
            for i in range(4):
                with self.subTest(msg="case", i=i):
                    self.assertEqual(i % 2, 0)
"""


@pytest.fixture(scope="module")
def project(module_dir: Path) -> Path:
    return write_project(
        module_dir,
        {
            "test_kinds.py": EVERY_KIND,
            "test_subtests.py": SUBTESTS,
            "test_unittest_subtests.py": UNITTEST_SUBTESTS,
        },
    )


@pytest.fixture(scope="module")
def plain(project: Path) -> ProjectRun:
    return run_pytest(project, "test_kinds.py", "--junitxml=plain.xml")


@pytest.fixture(scope="module")
def isolated(project: Path) -> ProjectRun:
    return run_pytest(project, "test_kinds.py", "--isolate", "--junitxml=isolated.xml")


def test_outcomes_and_counts_match_a_plain_run(plain: ProjectRun, isolated: ProjectRun) -> None:
    assert summary(isolated) == summary(plain)
    assert "isolate process: 8 tests" in isolated.output


def test_rA_lists_passed_isolated_tests(isolated: ProjectRun) -> None:
    assert isolated.outcome("test_passes") == "PASSED"
    assert isolated.outcome("test_xpasses") == "XPASS"
    assert isolated.outcome("test_xfails") == "XFAIL"


def test_warnings_appear_in_the_warnings_summary(isolated: ProjectRun) -> None:
    warnings_summary = isolated.output.split("warnings summary", 1)[1]
    assert "test_kinds.py::test_warns" in warnings_summary
    assert "UserWarning: careful now" in warnings_summary


def test_captured_stdout_stderr_and_log_sections_are_reported(isolated: ProjectRun) -> None:
    report = isolated.report_of("test_fails_with_every_section")
    assert "assert (1 + 1) == 3" in report
    for title, text in (
        ("Captured stdout call", "to stdout"),
        ("Captured stderr call", "to stderr"),
        ("Captured log call", "to the log"),
    ):
        assert title in report
        assert text in report


def _properties(path: Path, test: str) -> dict[str, str]:
    root = ElementTree.parse(path).getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == test)
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_user_properties_reach_junit_xml(
    project: Path, plain: ProjectRun, isolated: ProjectRun
) -> None:
    expected = {"answer": "42", "question": "unknown"}
    assert _properties(project / "plain.xml", "test_records_properties") == expected
    isolated_properties = _properties(project / "isolated.xml", "test_records_properties")
    # The one documented difference: the receipt of the layers that protected the test.
    receipt = isolated_properties.pop("isolate_layers")
    assert receipt.split()[0] == "forked"
    assert isolated_properties == expected


def test_junit_xml_counts_match_a_plain_run(
    project: Path, plain: ProjectRun, isolated: ProjectRun
) -> None:
    def counts(name: str) -> dict[str, str]:
        suite = ElementTree.parse(project / name).getroot().find("testsuite")
        assert suite is not None
        return {k: suite.get(k, "") for k in ("tests", "errors", "failures", "skipped")}

    assert counts("isolated.xml") == counts("plain.xml")


@pytest.mark.skipif(
    int(pytest.__version__.split(".")[0]) < 9, reason="the subtests fixture is new in pytest 9"
)
def test_subtests_are_reported_as_in_a_plain_run(project: Path) -> None:
    plain = run_pytest(project, "test_subtests.py")
    isolated = run_pytest(project, "test_subtests.py", "--isolate")
    assert summary(isolated) == summary(plain)
    assert "2 failed" in isolated.output  # two failing subtests


def test_unittest_subtests_are_reported_as_in_a_plain_run(project: Path) -> None:
    """pytest 8 reports the test once, pytest 9 each failed subTest too: isolated runs follow."""
    plain = run_pytest(project, "test_unittest_subtests.py")
    isolated = run_pytest(project, "test_unittest_subtests.py", "--isolate")
    assert summary(isolated) == summary(plain)
    assert isolated.ret == plain.ret == 1


def test_last_failed_reruns_only_the_failed_isolated_test(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "test_lf.py": """
                from pytest_isolate import isolate

                @isolate()
                def test_fails():
                    assert False

                @isolate()
                def test_passes():
                    pass
            """
        },
    )
    first = run_pytest(tmp_path, cache=True)
    assert first.outcome("test_fails") == "FAILED"
    second = run_pytest(tmp_path, "--lf", cache=True)
    assert second.outcome("test_fails") == "FAILED"
    assert "run-last-failure: rerun previous 1 failure" in second.output
    assert "test_passes" not in second.output
    assert re.search(r"=+ 1 failed in", second.output)


def test_no_capture_shows_the_isolated_tests_output(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "test_s.py": """
                from pytest_isolate import isolate

                @isolate()
                def test_prints():
                    print("printed straight to the terminal")
            """
        },
    )
    run = run_pytest(tmp_path, "-s")
    assert "printed straight to the terminal" in run.output
    assert "Captured stdout" not in run.output
