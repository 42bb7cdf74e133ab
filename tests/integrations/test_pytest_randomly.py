"""pytest-randomly's seed reaches every target: the same numbers as in a plain run.

pytest-randomly reorders and reseeds every run it is installed in, so it
lives in a venv of its own (``plugins_venv``). Each test records
``random.random()`` from its call; under a fixed ``--randomly-seed`` every
backend must record what a plain run records.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from every_backend import PLAIN_AND_EVERY_BACKEND, one_test_per_backend
from plugins_venv import plugins_python
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = PLAIN_AND_EVERY_BACKEND


def _tests() -> str:
    return one_test_per_backend(
        "import random\nfrom pytest_isolate import isolate\n",
        """(record_property):
    print("drawn:", repr(random.random()))
    assert False, "show the draw"
""",
        BACKENDS,
    )


@pytest.fixture(scope="module")
def randomly_python() -> Path:
    return plugins_python()


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
