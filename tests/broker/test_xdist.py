"""With pytest-xdist, every worker is a broker of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

TESTS = """
    import os
    import pytest
    from pytest_isolate import isolate

    @isolate()
    @pytest.mark.parametrize("n", range(8))
    def test_isolated_under_xdist(n):
        worker = os.environ["PYTEST_XDIST_WORKER"]
        with open(os.path.join(os.environ["PID_DIR"], f"{worker}-{os.getpid()}"), "w") as f:
            f.write(str(os.getppid()))

    @isolate()
    def test_crash_under_xdist():
        os._exit(3)
"""


@pytest.fixture(scope="module")
def run(module_dir: Path, pid_dir: Path) -> ProjectRun:
    write_project(module_dir, {"test_spread.py": TESTS})
    return run_pytest(module_dir, "-n", "2", env={"PID_DIR": str(pid_dir)})


def test_isolated_tests_pass_under_xdist(run: ProjectRun) -> None:
    assert "8 passed" in run.output
    assert "1 failed" in run.output


def test_target_crash_is_reported_through_the_worker(run: ProjectRun) -> None:
    assert "exited with status 3 during call" in run.output


def test_each_worker_is_the_broker_of_its_targets(run: ProjectRun, pid_dir: Path) -> None:
    parents: dict[str, set[int]] = {}
    for entry in pid_dir.iterdir():
        worker = entry.name.split("-", 1)[0]
        parents.setdefault(worker, set()).add(int(entry.read_text()))
    assert sorted(parents) == ["gw0", "gw1"]
    assert all(len(pids) == 1 for pids in parents.values()), parents
    assert parents["gw0"] != parents["gw1"]


def test_the_controller_prints_one_summary_added_up_over_the_workers(run: ProjectRun) -> None:
    """Each worker ran some of the 9 tests; the summary line counts all of them, once."""
    lines = [line for line in run.output.splitlines() if line.startswith("isolate process:")]
    assert len(lines) == 1, run.output[-3000:]
    assert lines[0].startswith("isolate process: 9 tests, "), lines[0]
    assert "1 crashed" in lines[0]
