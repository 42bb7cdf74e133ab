"""A failing isolated test's ``tmp_path`` is kept where a plain run keeps it, on every backend.

The process backend writes it there itself; a private target (seccomp,
chroot, a container, a guest) sends a failing test's files back, and a
forged path is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND, one_test_per_backend
from frame_forgery import SPRAY_FRAME
from project_runner import ProjectRun, run_pytest, write_project

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


PRIVATE = ("seccomp", "chroot", "container", "vm")


def _private_tests() -> str:
    return one_test_per_backend(
        "import os\nfrom pytest_isolate import isolate\n",
        """(tmp_path):
    (tmp_path / "evidence.txt").write_text("written by {name}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.bin").write_bytes(bytes(range(256)))
    os.symlink("/etc/passwd", tmp_path / "link")
    assert False, "keep my files"
""",
        {name: EVERY_BACKEND[name] for name in PRIVATE},
    )


@pytest.fixture(scope="module")
def private_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectRun, Path]:
    root = tmp_path_factory.mktemp("private")
    project = write_project(root / "project", {"test_private.py": _private_tests()})
    for path in (root, project):
        path.chmod(0o755)  # the container's agent runs as an unprivileged user
    basetemp = root / "basetemp"
    return run_pytest(project, f"--basetemp={basetemp}", xdist=False), basetemp


@pytest.mark.parametrize("backend", PRIVATE)
def test_a_private_targets_failing_tmp_path_comes_back_under_the_basetemp(
    private_run: tuple[ProjectRun, Path], backend: str
) -> None:
    """seccomp and chroot write to private space, containers and guests to their own disks."""
    run, basetemp = private_run
    kept = basetemp / f"test_{backend}0"
    assert (kept / "evidence.txt").read_text() == f"written by {backend}", run.output[-3000:]
    assert (kept / "sub" / "deep.bin").read_bytes() == bytes(range(256))
    assert not (kept / "link").exists()  # a link is named, never made
    block = run.report_of(f"test_{backend}")
    assert f"the target's tmp_path is kept at {kept} (2 files); left out: link" in block


FORGER = (
    SPRAY_FRAME
    + """
from pytest_isolate import isolate

@isolate("seccomp")
def test_climbs_out(tmp_path):
    spray_frame({"type": "kept-file", "path": "../../escaped.txt", "data": "eA=="})
    assert False
"""
)


def test_a_forged_path_fails_its_test_and_writes_nothing(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {"test_forger.py": FORGER})
    basetemp = tmp_path / "basetemp"
    run = run_pytest(project, f"--basetemp={basetemp}", xdist=False)
    line = run.summary_line("test_climbs_out")
    assert "is not a path of plain names below tmp_path" in line, line
    assert not list(tmp_path.rglob("escaped.txt"))
