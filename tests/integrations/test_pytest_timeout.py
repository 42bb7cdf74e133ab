"""pytest-timeout's limits end a hung isolated test in its target, never the run.

Side by side: the same project under pytest-timeout with each timer method,
on a real target of every backend. The alarm must never fire in the broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = EVERY_BACKEND

HANGS = "\n".join(
    f"""
@isolate({args})
def test_{name}_hangs():
    time.sleep(120)

@isolate({args})
def test_{name}_passes():
    pass
"""
    for name, args in BACKENDS.items()
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_project(
        tmp_path_factory.mktemp("timeout"),
        {"test_hangs.py": "import time\nfrom pytest_isolate import isolate\n" + HANGS},
    )
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return project


@pytest.fixture(scope="module", params=["signal", "thread"])
def run(project: Path, request: pytest.FixtureRequest) -> ProjectRun:
    return run_pytest(project, "--timeout=3", f"--timeout-method={request.param}", xdist=False)


def test_the_run_goes_on_and_fails_only_the_hung_tests(run: ProjectRun) -> None:
    assert "INTERNALERROR" not in run.output
    assert "Timeout (>3.0s) from pytest-timeout" not in run.output
    assert run.ret == 1
    assert "5 failed, 5 passed" in run.output, run.output[-3000:]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_hung_test_is_killed_with_the_limit_and_its_source_named(
    run: ProjectRun, backend: str
) -> None:
    line = run.summary_line(f"test_{backend}_hangs")
    assert line.startswith("FAILED")
    assert "timed out after 3 s" in line
    assert "pytest-timeout's 3 s from --timeout" in line
    assert run.outcome(f"test_{backend}_passes") == "PASSED"


def test_the_marker_and_the_ini_are_read_as_pytest_timeout_reads_them(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        {
            "pytest.ini": "[pytest]\ntimeout = 30\n",
            "test_marked.py": """
                import time
                import pytest
                from pytest_isolate import isolate

                @isolate("process")
                @pytest.mark.timeout(1)
                def test_marked():
                    time.sleep(60)

                @isolate("process")
                def test_from_ini():
                    pass
            """,
        },
    )
    run = run_pytest(project, xdist=False)
    assert "pytest-timeout's 1 s from @pytest.mark.timeout" in run.summary_line("test_marked")
    assert run.outcome("test_from_ini") == "PASSED"
    assert run.ret == 1


def test_isolates_own_timeout_wins_over_pytest_timeouts(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        {
            "test_own.py": """
                import time
                from pytest_isolate import isolate

                @isolate("process", timeout=1)
                def test_own_limit():
                    time.sleep(60)
            """
        },
    )
    run = run_pytest(project, "--timeout=60", xdist=False)
    line = run.summary_line("test_own_limit")
    assert "timed out after 1 s" in line
    assert "pytest-timeout" not in line
    assert run.seconds < 30


def test_func_only_is_left_to_pytest_timeout_around_the_call_in_the_target(
    tmp_path: Path,
) -> None:
    """As in a plain run: fixtures' time does not count, the call fails with its stack."""
    project = write_project(
        tmp_path,
        {
            "pytest.ini": "[pytest]\ntimeout_func_only = true\n",
            "test_func_only.py": """
                import time
                import pytest
                from pytest_isolate import isolate

                @pytest.fixture
                def slow_fixture():
                    time.sleep(2)

                @isolate("process")
                def test_slow_fixture_fast_call(slow_fixture):
                    pass

                @isolate("process")
                def test_slow_call():
                    time.sleep(60)
            """,
        },
    )
    run = run_pytest(project, "--timeout=1", xdist=False)
    assert run.outcome("test_slow_fixture_fast_call") == "PASSED"
    assert run.outcome("test_slow_call") == "FAILED"
    assert "Timeout (>1.0s) from pytest-timeout" in run.report_of("test_slow_call")
    assert "INTERNALERROR" not in run.output
