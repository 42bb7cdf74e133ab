"""pytest-isolate's own hooks, used from a conftest as a third-party plugin would."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

CONFTEST = """
    import dataclasses, os
    from pytest_isolate.backends.base import Availability
    from pytest_isolate.backends.forked import ForkedBackend

    class LabelledBackend(ForkedBackend):
        \"\"\"A third-party forked backend: marks its targets through the environment.\"\"\"
        name = "labelled"
        summary = "a process that knows it was made by a conftest"
        keywords = {"label": "the value of ISOLATE_LABEL in the target"}

        def restrict(self, setup):
            super().restrict(setup)
            os.environ["ISOLATE_LABEL"] = setup.spec.option("label", "none")

    class NeverBackend(ForkedBackend):
        name = "never"
        summary = "never available"

        def availability(self):
            return Availability(False, "it is a test double", "do not use it")

    def pytest_isolate_register_backends(register):
        register(LabelledBackend())
        register(NeverBackend())

    def pytest_isolate_adjust_spec(item, spec):
        if item.name == "test_timeout_shortened_by_the_hook":
            return dataclasses.replace(spec, timeout=0.5)
        return None
"""

TESTS = """
    import os, time
    from pytest_isolate import isolate

    @isolate(timeout=60)
    def test_timeout_shortened_by_the_hook():
        time.sleep(30)

    @isolate("labelled", label="from-the-mark")
    def test_third_party_backend_runs_the_test():
        assert os.environ["ISOLATE_LABEL"] == "from-the-mark"

    @isolate("never")
    def test_on_an_unavailable_backend():
        pass
"""


@pytest.fixture(scope="module")
def project(module_dir: Path) -> Path:
    return write_project(module_dir, {"conftest.py": CONFTEST, "test_hooked.py": TESTS})


@pytest.fixture(scope="module")
def run(project: Path) -> ProjectRun:
    return run_pytest(project)


def test_adjust_spec_hook_changes_the_timeout(run: ProjectRun) -> None:
    assert "timed out after 0.5 s" in run.report_of("test_timeout_shortened_by_the_hook")


def test_backend_registered_from_a_conftest_is_usable(run: ProjectRun) -> None:
    assert run.outcome("test_third_party_backend_runs_the_test") == "PASSED"
    assert "isolate labelled: 1 test" in run.output


def test_unavailable_backend_fails_its_test_saying_why_and_how_to_fix(run: ProjectRun) -> None:
    report = run.report_of("test_on_an_unavailable_backend")
    assert "backend 'never' is not available here: it is a test double" in report
    assert "fix: do not use it" in report


def test_unavailable_backend_can_skip_instead(project: Path) -> None:
    run = run_pytest(project, "--isolate-unavailable=skip", "-k", "unavailable")
    assert "1 skipped" in run.output  # -rA names skips by location, not by test id
    assert "SKIPPED [1] test_hooked.py:12: [isolate:never] backend 'never' is not available" in (
        run.output
    )


def test_doctor_lists_third_party_backends(project: Path) -> None:
    run = run_pytest(project, "--isolate-doctor")
    assert "labelled" in run.output
    assert "why: it is a test double" in run.output
