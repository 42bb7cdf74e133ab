"""Tests in a container are reported as on the host; a list of images makes a matrix."""

from __future__ import annotations

import re

import pytest
from container_project import BOOKWORM, TRIXIE, ContainerRun, run_project, wait_no_containers

OUTCOMES = f"""
import ctypes, sys, time
import pytest
from pytest_isolate import isolate

pytestmark = isolate("container", image="{BOOKWORM}", timeout=3)

def test_passes():
    print("PYTHON", sys.version.split()[0])

def test_fails():
    assert 6 * 7 == 43

def test_skips():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False

def test_segfaults():
    ctypes.string_at(0)

def test_hangs():
    time.sleep(60)

def test_runs_after_the_crashes():
    pass

@isolate("container", image=["{BOOKWORM}", "{TRIXIE}"])
def test_matrix():
    print("MATRIX", sys.version.split()[0])
"""


@pytest.fixture(scope="module")
def outcome_run(tmp_path_factory: pytest.TempPathFactory) -> ContainerRun:
    return run_project(tmp_path_factory.mktemp("outcomes"), {"test_outcomes.py": OUTCOMES}, "-v")


def test_outcomes_are_counted_as_on_the_host(outcome_run: ContainerRun) -> None:
    outcome_run.fnmatch_lines(["*= 3 failed, 4 passed, 1 skipped, 1 xfailed in *"])


def test_a_failure_shows_the_assertion(outcome_run: ContainerRun) -> None:
    outcome_run.fnmatch_lines(["*assert (6 * 7) == 43*"])


def test_a_segfault_is_named(outcome_run: ContainerRun) -> None:
    outcome_run.fnmatch_lines(["*test_segfaults*killed by signal 11 (SIGSEGV) during call*"])


def test_a_hang_is_killed_at_the_timeout(outcome_run: ContainerRun) -> None:
    outcome_run.fnmatch_lines(["*timed out after 3 s and was killed during call*"])


def test_the_matrix_runs_each_image_with_its_own_python(outcome_run: ContainerRun) -> None:
    out = outcome_run.output
    assert re.search(rf"test_matrix\[container:{BOOKWORM}\] PASSED", out)
    assert re.search(rf"test_matrix\[container:{TRIXIE}\] PASSED", out)
    assert "MATRIX 3.11." in out
    assert "MATRIX 3.13." in out


def test_starting_a_container_is_announced_with_its_duration(outcome_run: ContainerRun) -> None:
    outcome_run.fnmatch_lines([f"pytest-isolate: container {BOOKWORM} ready in *s*"])


def test_no_container_is_left_after_the_run(outcome_run: ContainerRun) -> None:
    assert outcome_run.broker_pid > 0
    assert wait_no_containers(outcome_run.broker_pid, timeout=5) == []
