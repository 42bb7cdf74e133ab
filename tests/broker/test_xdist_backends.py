"""``-n 2`` works with every backend: each worker is a broker with its own targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

TESTS = """
    import os
    import pytest
    from pytest_isolate import isolate

    BACKENDS = [
        isolate("process"),
        isolate("seccomp"),
        isolate("chroot"),
        isolate("container", image="pytest-isolate/debian:bookworm"),
        isolate("vm"),
    ]

    @pytest.mark.parametrize("n", range(2))
    @pytest.mark.parametrize("target", BACKENDS, ids=lambda m: m.args[0])
    def test_each_backend_under_xdist(target, n, request):
        pass
"""

CONFTEST = """
    import pytest

    def pytest_collection_modifyitems(items):
        # the parametrized mark object becomes the item's isolate mark
        for item in items:
            mark = item.callspec.params.get("target")
            if mark is not None:
                item.add_marker(mark)
"""


@pytest.fixture(scope="module")
def run(module_dir: Path) -> ProjectRun:
    module_dir.chmod(0o755)
    write_project(module_dir, {"test_all.py": TESTS, "conftest.py": CONFTEST})
    return run_pytest(module_dir, "-n", "2", "-rA", "-v", timeout=600)


def test_every_backend_passes_under_two_workers(run: ProjectRun) -> None:
    assert "10 passed" in run.output, run.output[-4000:]
    for backend in ("process", "seccomp", "chroot", "container", "vm"):
        assert f"PASSED test_all.py::test_each_backend_under_xdist[{backend}-0]" in run.output


@pytest.mark.parametrize("backend", ["container", "vm"])
def test_each_worker_says_on_the_controller_that_its_target_is_ready(
    run: ProjectRun, backend: str
) -> None:
    """A worker's terminal is nobody's: its progress lines reach the controller, named by worker.

    Every worker that ran a test of the backend started one target for it and says so once, on
    a line of its own (never inside a result line).
    """
    ran = set(re.findall(rf"^\[(gw\d)\] .*PASSED .*\[{backend}-\d\]", run.output, re.M))
    ready = re.findall(rf"^pytest-isolate: \[(gw\d)\] {backend}\b.* ready\b", run.output, re.M)
    assert ran, run.output[-4000:]
    assert sorted(ready) == sorted(ran), run.output[-6000:]
