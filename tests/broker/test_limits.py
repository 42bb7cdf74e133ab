"""Memory and CPU limits of a target, and how bad limit values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

LIMITED = """
    from pytest_isolate import isolate

    @isolate(mem_limit="200M")
    def test_allocates_1_gb_under_200m():
        block = bytearray(1 << 30)
        assert len(block) == 0

    @isolate(cpu_limit=1)
    def test_spins_under_cpu_limit_1():
        while True:
            pass

    @isolate(mem_limit="200M")
    def test_small_allocation_under_200m():
        assert len(bytearray(10 << 20)) == 10 << 20

    def test_unlimited_after():
        assert len(bytearray(300 << 20)) == 300 << 20
"""


@pytest.fixture(scope="module")
def run(module_dir: Path) -> ProjectRun:
    write_project(module_dir, {"test_limited.py": LIMITED})
    return run_pytest(module_dir)


def test_allocation_over_the_memory_limit_fails_the_test(run: ProjectRun) -> None:
    assert run.outcome("test_allocates_1_gb_under_200m") == "FAILED"
    report = run.report_of("test_allocates_1_gb_under_200m")
    assert "MemoryError" in report or "memory" in report


def test_allocation_under_the_memory_limit_passes(run: ProjectRun) -> None:
    assert run.outcome("test_small_allocation_under_200m") == "PASSED"


def test_cpu_limit_stops_a_spinning_test_in_words(run: ProjectRun) -> None:
    assert run.outcome("test_spins_under_cpu_limit_1") == "FAILED"
    assert "exceeded its CPU limit of 1 s" in run.report_of("test_spins_under_cpu_limit_1")


def test_limits_do_not_leak_into_the_broker(run: ProjectRun) -> None:
    assert run.outcome("test_unlimited_after") == "PASSED"


def test_bad_mem_limit_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    write_project(tmp_path, {"test_x.py": "def test_x():\n    pass\n"})
    run = run_pytest(tmp_path, "--isolate-mem-limit=bad")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert "--isolate-mem-limit='bad' is not a size" in run.output
    assert "512M, 2G" in run.output
