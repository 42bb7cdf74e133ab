"""A target holds only its channel, its own capture, its crash log and /dev/null.

pytest's capture keeps copies of the real stdin, stdout and stderr so that it
can restore them; a forked target inherited them, and through them a test
could write straight into the user's terminal or the CI log, past the
channel, its caps and its escaping. Here the broker's stdout and stderr are
pipes (as in CI): every descriptor a test holds is listed from inside a real
target of every backend and checked against an allow-list.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = EVERY_BACKEND

LIST_FDS = """
import os
from pytest_isolate import isolate

#: What a target may hold: its channel (a socket), the crash log (a memfd),
#: pytest's capture files of this test (unlinked temporary files), /dev/null,
#: an eventfd of the shared-memory channel, and the directory being listed.
ALLOWED = ("socket:", "/memfd:", "/dev/null", "anon_inode:")


def held():
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return found


def check():
    fds = held()
    bad = {
        fd: where
        for fd, where in fds.items()
        if not where.startswith(ALLOWED)
        and not where.endswith("(deleted)")
        and not where.startswith("/proc/")
    }
    assert not bad, f"descriptors outside the allow-list: {bad} (all: {fds})"
"""

TESTS = "\n".join(
    f"""
@isolate({args})
def test_{name}_holds_only_allowed_descriptors():
    check()
"""
    for name, args in BACKENDS.items()
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    project = write_project(
        tmp_path_factory.mktemp("descriptors"), {"test_fds.py": LIST_FDS + TESTS}
    )
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return run_pytest(project, xdist=False)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_target_holds_nothing_that_reaches_the_brokers_output(
    run: ProjectRun, backend: str
) -> None:
    outcome = run.outcome(f"test_{backend}_holds_only_allowed_descriptors")
    assert outcome == "PASSED", run.report_of(f"test_{backend}_holds_only_allowed_descriptors")


def test_output_written_by_a_test_still_reaches_its_report(tmp_path: Path) -> None:
    """Blanking the saved terminal copies must not lose the test's captured output."""
    project = write_project(
        tmp_path,
        {
            "test_out.py": """
                import os, sys
                from pytest_isolate import isolate

                @isolate("process")
                def test_prints_then_fails():
                    print("to stdout")
                    os.write(2, b"to fd 2\\n")
                    assert False
            """
        },
    )
    run = run_pytest(project, xdist=False)
    report = run.report_of("test_prints_then_fails")
    assert "to stdout" in report
    assert "to fd 2" in report
