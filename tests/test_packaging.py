"""The package as a user installs it: a wheel built from this checkout, in a fresh venv.

The package is not on the package index, so users build it (``python -m
build``) and install the wheel. Editable installs hide a file the wheel
forgot: here the wheel is the only copy of the plugin the run can see, and one
isolated test of every backend runs from it, which needs the files that are
not Python (the syscall groups, the guest's reseed source, ``py.typed``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from project_runner import run_pytest, write_project

REPO = Path(__file__).resolve().parent.parent
PINS = REPO / "requirements" / "dev.txt"
IMAGE = "pytest-isolate/debian:bookworm"

#: Files a wheel must carry besides the modules: the targets read them at run time.
DATA_FILES = (
    "pytest_isolate/policy/data/syscall_groups.json",
    "pytest_isolate/vm/reseed.S",
    "pytest_isolate/py.typed",
)

EVERY_BACKEND = f"""
    import os, socket
    import pytest
    from pytest_isolate import isolate

    def plugin_is_the_wheels():
        import pytest_isolate
        assert "site-packages" in pytest_isolate.__file__, pytest_isolate.__file__

    @isolate("process")
    def test_process():
        plugin_is_the_wheels()

    @isolate("seccomp", fail_on_violation=False)
    def test_seccomp():
        with pytest.raises(PermissionError):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    @isolate("chroot")
    def test_chroot():
        assert not os.path.exists("/root/.bash_history")
        assert os.getuid() != 0

    @isolate("container", image={IMAGE!r})
    def test_container():
        assert os.path.exists("/.dockerenv")

    @isolate("vm")
    def test_vm():
        assert os.getpid() > 1
"""


def _run(*command: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel and an sdist of this checkout, built as a user would build them."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, REPO)
    return out


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no site packages of the machine) with only the wheel and its extras."""
    venv = tmp_path_factory.mktemp("wheel-venv")
    _run(sys.executable, "-m", "venv", "--clear", venv)
    (wheel,) = dist.glob("*.whl")
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", PINS, f"{wheel}[all]")
    return venv / "bin" / "python"


def test_the_wheel_carries_the_data_files_the_targets_read(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(DATA_FILES) <= names
    assert any(name.endswith("entry_points.txt") for name in names)


def test_the_sdist_carries_what_a_rebuild_and_the_tests_need(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {*DATA_FILES, "pyproject.toml", "README.md", "tests/conftest.py"} <= names


def test_one_isolated_test_of_every_backend_passes_from_the_installed_wheel(
    wheel_venv: Path, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "project", {"test_every_backend.py": EVERY_BACKEND})
    env = {"PATH": f"{wheel_venv.parent}:{os.environ['PATH']}"}
    run = run_pytest(project, command=(str(wheel_venv), "-m", "pytest"), env=env, xdist=False)
    assert run.ret == 0, run.output[-6000:]
    for backend in ("process", "seccomp", "chroot", "container", "vm"):
        assert run.outcome(f"test_{backend}") == "PASSED"
    assert "5 passed" in run.output


def test_the_installed_wheel_answers_its_own_commands(wheel_venv: Path) -> None:
    """The commands that error messages point an installed user to exist in the wheel."""
    help_text = _run(wheel_venv, "-m", "pytest_isolate", "--help").stdout
    assert "image" in help_text
    _run(wheel_venv, "-m", "pytest", "--isolate-doctor")
