"""Memory the address-space limit cannot see (a tmpfs file) is bounded by the memory cgroup,
and the report says the OOM killer took the test."""

from __future__ import annotations

import pytest
from project_runner import ProjectRun, run_pytest, write_project

PROJECT = """
    import os
    from pytest_isolate import isolate

    @isolate("chroot", mem_limit="100M")
    def test_fills_a_tmpfs_in_the_jail():
        with open("/tmp/flood", "wb") as handle:
            for _ in range(400):
                handle.write(b"x" * (1 << 20))

    @isolate("chroot")
    def test_runs_after_the_oom_kill():
        assert not os.path.exists("/tmp/flood")
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    root = write_project(tmp_path_factory.mktemp("oom"), {"test_oom.py": PROJECT})
    return run_pytest(root, "-rA")


def test_the_report_names_the_oom_killer_and_the_limit(run: ProjectRun) -> None:
    assert "killed by the OOM killer (limit 100 MiB) during call" in run.output, run.output[-3000:]


def test_the_run_goes_on_with_a_clean_jail(run: ProjectRun) -> None:
    assert run.outcome("test_runs_after_the_oom_kill") == "PASSED"
