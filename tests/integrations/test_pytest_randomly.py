"""pytest-randomly's seed reaches every target: the same numbers as in a plain run.

pytest-randomly reorders and reseeds every run it is installed in, so it
lives in a venv of its own (pinned in ``requirements/plugins.txt``, cached
per checkout). Each test records ``random.random()`` from its call; under a
fixed ``--randomly-seed`` every backend must record what a plain run records.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "requirements" / "plugins.txt"
CACHE = Path(os.environ.get("PYTEST_ISOLATE_CACHE", Path.home() / ".cache" / "pytest-isolate"))
BACKENDS: dict[str, str | None] = {"plain": None, **EVERY_BACKEND}


def _tests() -> str:
    lines = ["import random", "from pytest_isolate import isolate", ""]
    for name, args in BACKENDS.items():
        mark = f"@isolate({args})\n" if args else ""
        lines.append(
            f"""
{mark}def test_{name}(record_property):
    print("drawn:", repr(random.random()))
    assert False, "show the draw"
"""
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def randomly_python() -> Path:
    """A venv with this checkout and pytest-randomly, from the pins (made once per checkout)."""
    key = hashlib.sha256(f"{REPO}\n{PINS.read_text()}".encode()).hexdigest()[:16]
    venv = CACHE / "venvs" / f"plugins-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "-c", str(PINS)]
        subprocess.run([*install, "-e", f"{REPO}[all]", "pytest-randomly"], check=True)
        (venv / ".ready").write_text(key)
    return python


@pytest.fixture(scope="module")
def runs(randomly_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ProjectRun]:
    project = write_project(tmp_path_factory.mktemp("randomly"), {"test_draws.py": _tests()})
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    command = (str(randomly_python), "-m", "pytest")
    return {
        name: run_pytest(
            project, "-p", "randomly", "--randomly-seed=1234", *extra, command=command, xdist=False
        )
        for name, extra in (("plain", ("--no-isolate",)), ("isolated", ()))
    }


def _draw(run: ProjectRun, test: str) -> str:
    block = run.report_of(test)
    line = next(line for line in block.splitlines() if line.startswith("drawn:"))
    return line.split(":", 1)[1].strip()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_fixed_seed_draws_the_same_numbers_in_every_target(
    runs: dict[str, ProjectRun], backend: str
) -> None:
    assert "Using --randomly-seed=1234" in runs["isolated"].output
    assert _draw(runs["isolated"], f"test_{backend}") == _draw(runs["plain"], f"test_{backend}")
