"""pytest-benchmark: a benchmark run in a target is in the broker's table and JSON.

One generated project benchmarks the same function plain and on every
backend. ``--benchmark-json`` of an isolated run must hold one benchmark per
test, named by its node id, with the rounds and iterations the target
measured, and the terminal's table must name every test, as in a
``--no-isolate`` run. Then a target forges its timings. pytest-benchmark
lives in the plugins' own venv (``plugins_venv``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from every_backend import PLAIN_AND_EVERY_BACKEND, one_test_per_backend
from frame_forgery import SPRAY_FRAME
from plugins_venv import plugins_python
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = PLAIN_AND_EVERY_BACKEND
FAST = ("--benchmark-max-time=0.05", "--benchmark-min-rounds=5", "-p", "no:randomly")


def _tests() -> str:
    return one_test_per_backend(
        "from pytest_isolate import isolate\n\ndef work():\n    return sum(range(100))\n",
        """(benchmark):
    benchmark.extra_info["backend"] = "{name}"
    assert benchmark(work) == 4950
""",
        BACKENDS,
    )


def _command() -> tuple[str, ...]:
    return (str(plugins_python()), "-m", "pytest")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ProjectRun, dict[str, Any]]]:
    project = write_project(tmp_path_factory.mktemp("bench"), {"test_bench.py": _tests()})
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    found = {}
    for name, extra in (("plain", ("--no-isolate",)), ("isolated", ())):
        output = project / f"{name}.json"
        run = run_pytest(
            project, f"--benchmark-json={output}", *FAST, *extra, command=_command(), xdist=False
        )
        assert f"{len(BACKENDS)} passed" in run.output, run.output[-3000:]
        found[name] = run, json.loads(output.read_text())
    return found


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {bench["fullname"]: bench for bench in data["benchmarks"]}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backends_benchmark_is_in_the_json(runs: dict[str, Any], backend: str) -> None:
    fullname = f"test_bench.py::test_{backend}"
    plain = _by_name(runs["plain"][1])[fullname]
    isolated = _by_name(runs["isolated"][1])[fullname]
    assert isolated["name"] == plain["name"] == f"test_{backend}"
    assert isolated["extra_info"] == plain["extra_info"] == {"backend": backend}
    assert isolated["stats"]["rounds"] >= 5
    assert len(isolated["stats"]["data"]) == isolated["stats"]["rounds"]
    assert isolated["options"].keys() == plain["options"].keys()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backends_benchmark_is_in_the_table(runs: dict[str, Any], backend: str) -> None:
    run: ProjectRun = runs["isolated"][0]
    table = run.output.split(f" benchmark: {len(BACKENDS)} tests ", 1)[1]
    assert f"test_{backend} " in table.split("Legend:", 1)[0]


FORGER = (
    SPRAY_FRAME
    + """
from pytest_isolate import isolate

@isolate("process")
def test_forges_its_timings(benchmark):
    benchmark(lambda: None)
    spray_frame({"type": "benchmark", "group": None, "extra_info": {}, "options": {},
                 "iterations": 1, "has_error": False, "data": [-1.0]})
"""
)


def test_a_forged_timing_fails_its_test_with_the_reason(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"test_forger.py": FORGER})
    run = run_pytest(project, *FAST, command=_command(), xdist=False)
    assert run.outcome("test_forges_its_timings") in ("FAILED", "ERROR"), run.output[-3000:]
    assert "a timing is not a finite number of seconds" in run.output
