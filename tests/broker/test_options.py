"""Options and marks: where isolation applies, with what, and how mistakes are reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

#: the broker's pid, so a test can tell whether it runs isolated
CONFTEST = """
    import os
    os.environ["BROKER_PID"] = str(os.getpid())
"""

MISTAKES = """
    from pytest_isolate import isolate

    @isolate("nope")
    def test_unknown_backend():
        pass

    @isolate(timeout=5, colour="blue")
    def test_unknown_keyword():
        pass

    @isolate(3)
    def test_number_as_backend():
        pass

    @isolate(mem_limit="lots")
    def test_bad_limit_syntax():
        pass

    def test_runs_despite_the_mistakes():
        pass
"""

WHERE = """
    import os, time
    import pytest
    from pytest_isolate import isolate

    pytestmark = isolate(timeout=0.3)

    def isolated():
        return os.getpid() != int(os.environ["BROKER_PID"])

    def test_module_mark_isolates():
        assert isolated()

    @isolate(timeout=30)
    class TestClassMark:
        def test_class_mark_wins_over_module_mark(self):
            time.sleep(0.6)
            assert isolated()

        @isolate(timeout=0.2)
        def test_function_mark_wins_over_class_mark(self):
            time.sleep(30)

    @isolate("process")
    @isolate("process", timeout=20)
    def test_matrix():
        assert isolated()
"""

UNMARKED = """
    import os
    import pytest
    from pytest_isolate import isolate

    def isolated():
        return os.getpid() != int(os.environ["BROKER_PID"])

    @isolate()
    def test_marked_is_isolated():
        assert isolated()

    def test_unmarked_is_isolated():
        assert isolated()

    @pytest.mark.forked
    def test_forked_mark_is_isolated():
        assert isolated()
"""


@pytest.fixture(scope="module")
def project(module_dir: Path) -> Path:
    return write_project(
        module_dir,
        {
            "conftest.py": CONFTEST,
            "test_mistakes.py": MISTAKES,
            "test_where.py": WHERE,
            "test_unmarked.py": UNMARKED,
        },
    )


@pytest.fixture(scope="module")
def mistakes(project: Path) -> ProjectRun:
    return run_pytest(project, "test_mistakes.py")


@pytest.fixture(scope="module")
def where(project: Path) -> ProjectRun:
    return run_pytest(project, "test_where.py")


@pytest.mark.parametrize(
    ("name", "bad", "choices"),
    [
        ("test_unknown_backend", "'nope'", r"valid backends: .*\bprocess\b"),
        ("test_unknown_keyword", "colour", r"valid keywords: .*\bcpu_limit\b"),
        ("test_number_as_backend", "got 3", r"valid backends: .*\bprocess\b"),
        ("test_bad_limit_syntax", "mem_limit='lots'", r"512M, 2G"),
    ],
)
def test_mark_mistake_is_a_usage_error_naming_test_value_and_choices(
    mistakes: ProjectRun, name: str, bad: str, choices: str
) -> None:
    assert mistakes.outcome(name) in ("FAILED", "ERROR")
    report = mistakes.report_of(name)
    assert "usage error" in report
    assert f"test_mistakes.py::{name}" in report
    assert bad in report
    assert re.search(choices, report)


def test_other_tests_run_despite_mark_mistakes(mistakes: ProjectRun) -> None:
    assert mistakes.outcome("test_runs_despite_the_mistakes") == "PASSED"


def test_unknown_backend_on_the_command_line_is_a_usage_error(project: Path) -> None:
    run = run_pytest(project, "--isolate=nope", "test_unmarked.py")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert re.search(
        r"--isolate='nope': unknown backend; valid backends: .*\bprocess\b", run.output
    )


def test_no_isolate_runs_marked_tests_in_process(project: Path) -> None:
    run = run_pytest(project, "--no-isolate", "-p", "no:forked", "test_unmarked.py")
    assert run.outcome("test_marked_is_isolated") == "FAILED"
    assert run.outcome("test_unmarked_is_isolated") == "FAILED"


def test_isolate_option_isolates_unmarked_tests(project: Path) -> None:
    run = run_pytest(project, "--isolate", "-p", "no:forked", "test_unmarked.py")
    assert run.outcome("test_marked_is_isolated") == "PASSED"
    assert run.outcome("test_unmarked_is_isolated") == "PASSED"
    assert run.outcome("test_forked_mark_is_isolated") == "PASSED"


def test_forked_mark_is_honoured_as_process_isolation_without_pytest_forked(
    project: Path,
) -> None:
    run = run_pytest(project, "-p", "no:forked", "test_unmarked.py")
    assert run.outcome("test_forked_mark_is_isolated") == "PASSED"
    assert run.outcome("test_unmarked_is_isolated") == "FAILED"


def test_module_level_mark_isolates_its_tests(where: ProjectRun) -> None:
    assert where.outcome("test_module_mark_isolates") == "PASSED"


def test_class_level_mark_is_closer_than_the_module_mark(where: ProjectRun) -> None:
    assert where.outcome("test_class_mark_wins_over_module_mark") == "PASSED"


def test_function_level_mark_is_closest(where: ProjectRun) -> None:
    report = where.report_of("TestClassMark.test_function_mark_wins_over_class_mark")
    assert "timed out after 0.2 s" in report


def test_several_marks_make_a_matrix_with_unique_ids(where: ProjectRun) -> None:
    assert where.outcome("test_matrix[process]") == "PASSED"
    assert where.outcome("test_matrix[process-1]") == "PASSED"


def test_markers_lists_the_isolate_marker_with_its_description(project: Path) -> None:
    run = run_pytest(project, "--markers")
    assert "@pytest.mark.isolate(backend='process', **options)" in run.output
    assert "timeout (wall-clock seconds before the target is killed)" in run.output


def test_doctor_prints_the_backend_table_and_exits(project: Path) -> None:
    run = run_pytest(project, "--isolate-doctor")
    assert "pytest-isolate doctor" in run.output
    assert re.search(r"^\s+process\s+ok\s", run.output, re.M)
    assert "test_mistakes.py" not in run.output  # exits before collecting or running


def test_a_spawned_backend_refuses_an_explicit_shm_channel(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {
            "test_channel.py": """
                from pytest_isolate import isolate

                @isolate("container", channel="shm")
                def test_shm_in_a_container():
                    pass
            """
        },
    )
    run = run_pytest(root, "-rA")
    assert "channel='shm' is not supported by backend 'container'" in run.output
    assert "valid channels: pipe" in run.output
