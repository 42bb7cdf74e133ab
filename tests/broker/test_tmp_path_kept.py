"""A failing isolated test's ``tmp_path`` is kept where a plain run keeps it (process backend)."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import run_pytest, write_project

TESTS = """
    from pytest_isolate import isolate

    @isolate("process")
    def test_fails_after_writing(tmp_path):
        (tmp_path / "evidence.txt").write_text("what the test saw")
        assert False

    @isolate("process")
    def test_second_also_writes(tmp_path):
        (tmp_path / "evidence.txt").write_text("second")
"""


def _kept(basetemp: Path) -> dict[str, str]:
    return {
        path.relative_to(basetemp).as_posix(): path.read_text()
        for path in basetemp.rglob("evidence.txt")
        if "pytest-current" not in path.parts  # pytest's link to the newest basetemp
    }


@pytest.mark.parametrize("isolated", [False, True], ids=["plain", "isolated"])
def test_a_given_basetemp_keeps_every_tests_files(tmp_path: Path, isolated: bool) -> None:
    project = tmp_path / "project"
    write_project(project, {"test_files.py": TESTS})
    basetemp = tmp_path / "basetemp"
    args = [f"--basetemp={basetemp}", "-p", "no:xdist"] + ([] if isolated else ["--no-isolate"])
    run = run_pytest(project, *args)
    assert run.outcome("test_fails_after_writing") == "FAILED", run.output[-2000:]
    assert _kept(basetemp) == {
        "test_fails_after_writing0/evidence.txt": "what the test saw",
        "test_second_also_writes0/evidence.txt": "second",
    }


def test_the_default_basetemp_keeps_a_failing_tests_files_as_a_plain_run_does(
    tmp_path: Path,
) -> None:
    kept = {}
    for mode, extra in (("plain", ["--no-isolate"]), ("isolated", [])):
        project = tmp_path / mode
        write_project(project, {"test_files.py": TESTS})
        root = tmp_path / f"{mode}-tmp"
        root.mkdir()
        run = run_pytest(
            project, "-p", "no:xdist", *extra, env={"PYTEST_DEBUG_TEMPROOT": str(root)}
        )
        assert run.outcome("test_fails_after_writing") == "FAILED", run.output[-2000:]
        [user_dir] = list(root.iterdir())  # pytest-of-USER
        kept[mode] = {
            "/".join(Path(name).parts[1:]): text for name, text in _kept(user_dir).items()
        }
    assert kept["isolated"] == kept["plain"]
    assert kept["plain"]["test_fails_after_writing0/evidence.txt"] == "what the test saw"
