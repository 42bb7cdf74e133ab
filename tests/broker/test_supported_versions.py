"""The plugin works on the oldest and newest supported Pythons, with pytest 8 and pytest 9.

Each combination gets a virtual environment (cached between runs) with only
that pytest and our runtime dependencies; the checkout is put on the path
and loaded with ``-p``, so the code under test is always this checkout's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYENV = Path.home() / ".pyenv" / "versions"
CACHE = Path(os.environ.get("PYTEST_ISOLATE_CACHE", Path.home() / ".cache" / "pytest-isolate"))

PINS = REPO / "requirements"

COMBINATIONS = {
    # name: (interpreter, pins of that pytest, what pytest's header says)
    "py39-pytest8": (PYENV / "3.9.18" / "bin" / "python3.9", "py39-pytest8.txt", "Python 3.9"),
    "py313-pytest9": (PYENV / "3.13.0" / "bin" / "python3.13", "dev.txt", "Python 3.13"),
}

PROJECT = """
import os, signal, socket, time
import pytest
from pytest_isolate import isolate

@isolate("process")
def test_passes():
    pass

@isolate("process")
def test_segfaults():
    import ctypes
    ctypes.string_at(0)

@isolate("process", timeout=1)
def test_hangs():
    time.sleep(30)

@isolate("seccomp")
def test_network_is_denied():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)

@isolate("chroot")
def test_host_secret_is_invisible():
    assert not os.path.exists({secret!r})
"""


def _venv(name: str) -> Path:
    """A venv of that interpreter with the pinned pytest, pluggy and pyseccomp (cached)."""
    interpreter, pins, _header = COMBINATIONS[name]
    if not interpreter.exists():
        pytest.skip(f"{interpreter} is not installed on this machine (pyenv has no such Python)")
    venv = CACHE / "venvs" / name
    python = venv / "bin" / "python"
    marker = venv / ".pinned"
    wanted = (PINS / pins).read_text()
    if not marker.exists() or marker.read_text() != wanted:
        subprocess.run([str(interpreter), "-m", "venv", "--clear", str(venv)], check=True)
        install = (str(python), "-m", "pip", "install", "-q", "-c", str(PINS / pins))
        subprocess.run([*install, "pytest", "pluggy", "pyseccomp"], check=True)
        marker.write_text(wanted)
    return python


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_isolated_outcomes_are_the_same_on_every_supported_version(
    tmp_path: Path, name: str
) -> None:
    python = _venv(name)
    secret = Path("/root") / f"pytest-isolate-version-secret-{os.getpid()}"
    secret.write_text("hunter2")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_versions.py").write_text(PROJECT.format(secret=str(secret)))
    (project / "pytest.ini").write_text("[pytest]\n")
    try:
        out = _run(python, project)
    finally:
        secret.unlink()
    assert f"platform linux -- {COMBINATIONS[name][2]}" in out, out[-3000:]
    assert "PASSED test_versions.py::test_passes" in out, out[-3000:]
    assert "killed by signal 11 (SIGSEGV)" in out
    assert "timed out after 1 s" in out
    assert "forbidden syscall socket(AF_INET" in out
    assert "PASSED test_versions.py::test_host_secret_is_invisible" in out
    assert "3 failed, 2 passed" in out


def _run(python: Path, project: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "300"
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-p",
            "pytest_isolate.plugin",
            "-p",
            "no:cacheprovider",
            "-rA",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout + result.stderr
