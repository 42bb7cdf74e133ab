"""Coverage measured in any target counts as in a plain run, and arrives as checked data.

Side by side: one sample project, the same report under ``--no-isolate`` and
isolated (process, seccomp, chroot; container and vm; untrusted mode), with
``--cov-branch``, under ``-n 2`` and under ``coverage run``. Then hostile
targets forge coverage frames: a file outside the project, a negative line,
a huge set.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from frame_forgery import SPRAY_FRAME
from project_runner import FRONT_DOOR, ProjectRun, run_pytest, write_project

SAMPLE = """
def classify(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"


def parity(n):
    if n % 2:
        return "odd"
    return "even"


def unused():
    return 1
"""

TESTS = """
import sample
from pytest_isolate import isolate

@isolate("process")
def test_negative():
    assert sample.classify(-1) == "negative"

@isolate("seccomp")
def test_zero():
    assert sample.classify(0) == "zero"

@isolate("chroot")
def test_odd():
    assert sample.parity(3) == "odd"

def test_plain_even():
    assert sample.parity(2) == "even"
"""


SPAWNED = """
import sample
from pytest_isolate import isolate

@isolate("container", image="pytest-isolate/debian:bookworm")
def test_positive_in_a_container():
    assert sample.classify(5) == "positive"

@isolate("vm")
def test_unused_in_a_guest():
    assert sample.unused() == 1
"""

#: The project's own hooks and fixture teardowns run in the target beside this
#: plugin's report forwarding, which the target does not trace.
HOOKS_CONFTEST = """
import pytest
import sample


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        sample.unused()


@pytest.fixture
def number():
    yield 3
    sample.classify(0)
"""

HOOKS_TESTS = """
import sample
from pytest_isolate import isolate

@isolate("process")
def test_with_the_projects_hooks(number):
    assert sample.parity(number) == "odd"
"""

UNTRUSTED = """
import sample

def test_negative_and_even():
    assert sample.classify(-3) == "negative"
    assert sample.parity(4) == "even"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(
        tmp_path_factory.mktemp("coverage"),
        {
            # the tests in subdirectories import `sample` from the root, whichever
            # interpreter runs them (in a target, the project's root is not the cwd)
            "pytest.ini": "[pytest]\npythonpath = .\n",
            "sample/__init__.py": SAMPLE,
            "test_sample.py": TESTS,
            "spawned/test_spawned.py": SPAWNED,
            "untrusted/test_untrusted.py": UNTRUSTED,
            "hooks/conftest.py": HOOKS_CONFTEST,
            "hooks/test_hooks.py": HOOKS_TESTS,
        },
    )
    for path in (root, root / "sample", root / "spawned", root / "untrusted", root / "hooks"):
        path.chmod(0o755)  # the seccomp and chroot targets read it as an unprivileged user
    return root


def _report_line(run: ProjectRun) -> str:
    found = re.search(r"^sample/__init__\.py\s+(.*)$", run.output, re.M)
    assert found is not None, run.output[-3000:]
    return " ".join(found.group(1).split())


@pytest.mark.parametrize(
    "options",
    [(), ("--cov-branch",), ("-n", "2"), ("-n", "2", "--cov-branch")],
    ids=["lines", "branch", "xdist", "xdist-branch"],
)
def test_the_report_is_the_plain_runs(project: Path, options: tuple[str, ...]) -> None:
    cov = ("--cov=sample", "--cov-report=term-missing", *options)
    plain = run_pytest(project, "test_sample.py", *cov, "--no-isolate")
    isolated = run_pytest(project, "test_sample.py", *cov)
    assert "4 passed" in isolated.output
    assert _report_line(isolated) == _report_line(plain)
    assert _report_line(isolated).endswith("6, 16")  # `positive` and `unused` never ran


def test_the_projects_hooks_and_teardowns_count_in_a_target(project: Path) -> None:
    cov = ("hooks", "--cov=sample", "--cov-report=term-missing")
    plain = run_pytest(project, *cov, "--no-isolate")
    isolated = run_pytest(project, *cov)
    assert "1 passed" in isolated.output, isolated.output[-3000:]
    assert _report_line(isolated) == _report_line(plain)
    assert _report_line(isolated).endswith("3, 6, 12")  # `negative`, `positive`, `even`


def test_container_and_guest_lines_count_as_in_a_plain_run(project: Path) -> None:
    cov = ("spawned", "--cov=sample", "--cov-branch", "--cov-report=term-missing")
    plain = run_pytest(project, *cov, "--no-isolate")
    isolated = run_pytest(project, *cov, xdist=False)
    assert "2 passed" in isolated.output, isolated.output[-3000:]
    assert _report_line(isolated) == _report_line(plain)
    assert _report_line(isolated).endswith("3, 5, 10-12")  # `positive` and `unused` ran


def test_untrusted_mode_counts_collection_and_test_lines(project: Path) -> None:
    """The untrusted broker imports nothing of the project: the target measures both."""
    cov = ("untrusted", "--cov=sample", "--cov-report=term-missing")
    plain = run_pytest(project, *cov, "--no-isolate")
    isolated = run_pytest(
        project, "--isolate-untrusted=chroot", *cov, command=FRONT_DOOR, xdist=False
    )
    assert "1 passed" in isolated.output, isolated.output[-3000:]
    assert _report_line(isolated) == _report_line(plain)


def test_coverage_run_counts_the_targets_lines_too(project: Path) -> None:
    for name in project.glob(".coverage*"):
        name.unlink()
    run = subprocess.run(
        [*COVERAGE_RUN, "-m", "pytest", "-q", "test_sample.py"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "report", "-m"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"^sample/__init__\.py\s+12\s+2\s+83%\s+6, 16$", report, re.M), report


COVERAGE_RUN = (sys.executable, "-m", "coverage", "run", "--source=sample")

FORGERS = (
    SPRAY_FRAME
    + """
import sample
from pytest_isolate import isolate

spray = spray_frame

@isolate("process")
def test_claims_a_file_outside_the_project():
    spray({"type": "coverage", "arcs": False, "files": {"/etc/passwd": [1, 2, 3]}})

@isolate("process")
def test_claims_a_negative_line():
    spray({"type": "coverage", "arcs": False, "files": {PROJECT + "/sample/__init__.py": [-5]}})

@isolate("process")
def test_claims_a_huge_set():
    spray({"type": "coverage", "arcs": False,
           "files": {PROJECT + "/sample/__init__.py": list(range(1, 300_001))}})

@isolate("process")
def test_honest():
    assert sample.unused() == 1
"""
)


@pytest.fixture(scope="module")
def forged(project: Path) -> ProjectRun:
    source = FORGERS.replace("PROJECT", repr(str(project)))
    (project / "test_forgers.py").write_text(source)
    try:
        return run_pytest(project, "test_forgers.py", "--cov=sample", "--cov-report=term-missing")
    finally:
        (project / "test_forgers.py").unlink()


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        (
            "test_claims_a_file_outside_the_project",
            "'/etc/passwd', which is not a file of the project",
        ),
        ("test_claims_a_negative_line", "-5 is not a line number"),
        ("test_claims_a_huge_set", "more than 200000 numbers in one frame"),
    ],
)
def test_a_forged_coverage_frame_fails_its_test_with_the_reason(
    forged: ProjectRun, test: str, reason: str
) -> None:
    line = forged.summary_line(test)
    assert line.startswith(("FAILED", "ERROR")), line
    assert reason in forged.output


def test_forged_coverage_is_not_recorded_and_honest_coverage_is(forged: ProjectRun) -> None:
    assert forged.outcome("test_honest") == "PASSED"
    assert (
        "/etc/passwd" not in forged.output.split("coverage:", 1)[-1].split("short test summary")[0]
    )
    # the module's defs ran at import in the broker, `unused` in an honest target: line 16
    assert re.search(r"^sample/__init__\.py\s+12\s+8\s+33%\s+2-6, 10-12$", forged.output, re.M), (
        forged.output[-3000:]
    )
