"""``--isolate-matrix`` over every backend: one item per target, each run where its id says.

The spawned targets (a container, a guest) collect the project themselves;
their items must carry the same matrix parametrization as the broker's, or
they cannot find the test they are asked to run.
"""

from __future__ import annotations

import pytest
from every_backend import IMAGE
from project_runner import ProjectRun, run_pytest, write_project

TESTS = """
import os, socket
import pytest

@pytest.mark.parametrize("n", [1, 2])
def test_where(n, record_property):
    record_property("ran_in", f"{os.getpid()} {socket.gethostname()}")
    assert os.getpid() != int(os.environ.get("BROKER_PID", "0"))
"""

CONFTEST = """
import os
os.environ.setdefault("BROKER_PID", str(os.getpid()))
"""

MATRIX = ("process", "seccomp", "chroot", f"container:{IMAGE}", "vm")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    project = write_project(
        tmp_path_factory.mktemp("matrix"), {"conftest.py": CONFTEST, "test_m.py": TESTS}
    )
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return run_pytest(project, f"--isolate-matrix={','.join(MATRIX)}", xdist=False)


@pytest.mark.parametrize("target", MATRIX)
@pytest.mark.parametrize("n", [1, 2])
def test_each_target_runs_its_own_items(run: ProjectRun, target: str, n: int) -> None:
    assert run.outcome(f"test_where[{target}-{n}]") == "PASSED", run.output[-3000:]


def test_nothing_else_was_collected(run: ProjectRun) -> None:
    assert f"{2 * len(MATRIX)} passed" in run.output, run.output[-3000:]
