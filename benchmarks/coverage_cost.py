"""What coverage costs per test in a target, beside what it costs without isolation.

The same 300 trivial tests as ``run.py`` (their own lines are what coverage
measures), plain and under the forked backends, each with and without
``--cov``; rounds interleave the rows. Coverage's cost per test is
(median with ``--cov`` - median without) / 300, for plain pytest and for each
backend: the target measures in memory and sends its lines as frames, the
broker records them, so isolation adds that much to coverage's own cost.

Usage::

    python benchmarks/coverage_cost.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/coverage_cost.py --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, TESTS, Config, machine, measure, replace_section, write_project

COV = ("--cov=.", "--cov-report=")

#: A plugin for the "forking floor" row: before each test, plain pytest forks
#: a child that only sleeps, so the pages the test then writes are shared
#: copy-on-write, as in every fork-per-test design. It isolates nothing.
FORK_FLOOR = '''\
"""Before each test, fork a child that sleeps until the next test: isolation's page sharing."""
import os
import signal

import pytest

_children = []


def _end_children():
    while _children:
        pid = _children.pop()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _end_children()
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    _children.append(pid)


def pytest_sessionfinish(session):
    _end_children()
'''

WHERE_IT_GOES = """\
The bound is not met, and the "forking floor" row shows why it cannot be by
this design: plain pytest that only forks a sleeping child before each test,
isolating nothing, already pays about twice coverage's plain cost. After a
fork every page is shared copy-on-write, and coverage's tracer, which on
Python 3.11 makes a frame object for every call and touches the objects it
decides on, writes to far more pages than the untraced run: each first write
is a page fault and a copy (`ru_minflt` in a forked target: 720 a test
without coverage, 960 with it). Isolation's own share above that floor
(process backend, timestamps in the child, medians per test): starting the
prepared coverage 0.2 ms (its first touch of the pages it inherited; a
second start costs 5 us), reading and sending the lines 0.1 ms, the rest of
the test's protocol traced in the child 1.2 ms more than without coverage.

Removed on the way (3.0 from 4.0 on the process backend): the target no
longer traces its own report forwarding (serializing and sending a report
runs none of the project's code; 0.35 ms a test), the broker no longer
copies its per-file trace decisions into the prepared coverage before every
fork (the prepared collector shares the running one's dictionary; 0.6 ms a
test), and reads the running coverage's settings once per run. Tried and
dropped: reusing the inherited coverage in the child (its collector
emptied): slower."""
BACKENDS = ("plain", "forking floor", "process", "seccomp", "chroot")


def configs(plugin_dir: Path) -> list[Config]:
    rows = []
    for backend in BACKENDS:
        args: tuple[str, ...] = (f"--isolate={backend}",)
        env: tuple[tuple[str, str], ...] = ()
        if backend == "plain":
            args = ()
        elif backend == "forking floor":
            args, env = ("-p", "fork_floor"), (("PYTHONPATH", str(plugin_dir)),)
        rows.append(Config(backend, args, note=f"{backend}, no coverage", env=env))
        rows.append(Config(f"{backend}+cov", (*args, *COV), note=f"{backend} with --cov", env=env))
    return rows


def table(medians: dict[str, float]) -> list[str]:
    plain_cost = (medians["plain+cov"] - medians["plain"]) / TESTS
    rows = [
        "| backend | without coverage | with `--cov` | coverage's cost per test"
        " | / coverage's cost without isolation |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for backend in BACKENDS:
        cost = (medians[f"{backend}+cov"] - medians[backend]) / TESTS
        ratio = f"{cost / plain_cost:.2f}" if plain_cost > 0 else "-"
        rows.append(
            f"| {backend} | {medians[backend]:.2f} s | {medians[f'{backend}+cov']:.2f} s"
            f" | {cost * 1000:.2f} ms | {ratio} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="isolate-cov-bench-") as tmp:
        project = write_project(Path(tmp) / "project", TESTS)
        Path(tmp).chmod(0o755)
        project.chmod(0o755)
        plugin_dir = Path(tmp) / "plugins"
        plugin_dir.mkdir()
        (plugin_dir / "fork_floor.py").write_text(FORK_FLOOR)
        lines = table(measure(configs(plugin_dir), project, args.rounds))
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## Coverage in targets\n\n"
            f"`python benchmarks/coverage_cost.py`: {TESTS} trivial tests, {args.rounds} rounds,"
            " medians. Coverage's cost per test is (with `--cov` - without) / "
            f"{TESTS}; the last column compares it with the same cost without isolation"
            " (the issue's bound: under 2). The forking floor is plain pytest forking a"
            " child that sleeps before each test (`FORK_FLOOR`), isolating nothing.\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines) + "\n\n" + WHERE_IT_GOES
        )
        replace_section(DOCS, "coverage", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
