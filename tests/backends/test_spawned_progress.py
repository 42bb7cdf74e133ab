"""A spawned target's start: progress on lines of its own, and its time where it belongs.

The session starts a container before the test's line is printed (the
spawned template's ``prepare``), so under ``-v`` every test's line is printed
once, whole, with its result on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from container_project import BOOKWORM, ContainerRun, run_project

TESTS = f"""
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_first_in_the_container():
    pass

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_in_a_fresh_container():
    pass

@isolate("process")
def test_forked():
    pass

@isolate("container", image="{BOOKWORM}")
def test_second_in_the_container():
    pass
"""

NAMES = (
    "test_first_in_the_container",
    "test_in_a_fresh_container",
    "test_forked",
    "test_second_in_the_container",
)


def _run(directory: Path, *args: str) -> ContainerRun:
    return run_project(directory, {"test_progress.py": TESTS}, *args, "-p", "no:xdist")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verbose")


@pytest.fixture(scope="module")
def verbose_run(project_dir: Path) -> ContainerRun:
    junit = project_dir.parent / f"{project_dir.name}.junit.xml"
    return _run(project_dir, "-v", "--durations=0", f"--junitxml={junit}")


def test_under_dash_v_each_test_has_exactly_one_whole_line(verbose_run: ContainerRun) -> None:
    for name in NAMES:
        lines = [
            line
            for line in verbose_run.output.splitlines()
            if re.match(rf"test_progress\.py::{name} ", line)
        ]
        assert len(lines) == 1, (name, verbose_run.output[-3000:])
        assert "PASSED" in lines[0], lines[0]


def test_the_ready_line_stands_alone_with_the_one_prefix(verbose_run: ContainerRun) -> None:
    [ready] = [line for line in verbose_run.output.splitlines() if " ready in " in line]
    assert ready.startswith(f"pytest-isolate: container {BOOKWORM} ready in "), ready
    assert "test_progress.py::" not in ready


def test_dash_v_says_where_the_start_went(verbose_run: ContainerRun) -> None:
    """-v: the ready line names each step of the start with its time."""
    [ready] = [line for line in verbose_run.output.splitlines() if " ready in " in line]
    steps = re.findall(r"(image|create|start|agent hello|collection) (\d+\.\d\d) s", ready)
    assert [name for name, _ in steps] == ["image", "create", "start", "agent hello", "collection"]
    total = float(re.search(r"ready in (\d+\.\d\d) s", ready).group(1))  # type: ignore[union-attr]
    assert sum(float(seconds) for _, seconds in steps) <= total + 0.05, ready


def test_without_dash_v_the_ready_line_is_short(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = _run(tmp_path_factory.mktemp("plain-verbosity"))
    [ready] = [line for line in run.output.splitlines() if " ready in " in line]
    assert ready.endswith("collected in it)"), ready


def test_dash_qq_prints_no_progress(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = _run(tmp_path_factory.mktemp("quiet"), "-qq")
    assert run.ret == 0, run.output[-3000:]
    assert "pytest-isolate:" not in run.output


def test_the_summary_counts_target_starts_apart_from_test_time(verbose_run: ContainerRun) -> None:
    summary = verbose_run.backend_summary(f"container:{BOOKWORM}")
    assert "ms/test in the target" in summary
    assert "2 targets started in " in summary, summary  # the shared one and the fresh one


def test_durations_has_a_row_for_each_target_start(verbose_run: ContainerRun) -> None:
    rows = [line for line in verbose_run.output.splitlines() if " target start " in line]
    named = {line.rsplit("::", 1)[-1] for line in rows}
    assert named == {"test_first_in_the_container", "test_in_a_fresh_container"}, rows


def test_junit_carries_the_start_as_a_property_of_the_test_that_paid(
    verbose_run: ContainerRun, project_dir: Path
) -> None:
    import xml.etree.ElementTree as ElementTree

    junit = project_dir.parent / f"{project_dir.name}.junit.xml"
    started = {
        case.get("name"): float(prop.get("value") or 0)
        for case in ElementTree.parse(junit).getroot().iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == "isolate_target_start_seconds"
    }
    assert set(started) == {"test_first_in_the_container", "test_in_a_fresh_container"}
    assert all(seconds > 0 for seconds in started.values())


def test_pdb_says_first_which_tests_it_cannot_stop_in(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = _run(tmp_path_factory.mktemp("pdb"), "--pdb")
    assert run.ret == 0, run.output[-3000:]
    [note] = [line for line in run.output.splitlines() if "--pdb and --trace" in line]
    assert note.startswith("pytest-isolate: --pdb and --trace do not stop in tests run in ")
    assert f"container:{BOOKWORM}" in note and "process" not in note.split(";")[0]
    assert "--no-isolate" in note
