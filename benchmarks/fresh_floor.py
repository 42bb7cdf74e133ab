"""``fresh=True`` against its floor: a container per test against ``docker run --rm``, a guest
per test against a restored QEMU guest that runs one command.

A fresh target is started for one test and thrown away: its cost is the
engine's start plus the agent's (import pytest, collect the test's file).
The floors are what the engine alone costs: ``docker run --rm`` of the same
image running ``true`` (and ``python3 -c pass``), and a guest restored from
its saved state that runs ``echo`` and is killed (``pytest_isolate.vm.Guest``).
The issue's targets: a fresh container within 1.5x of ``docker run --rm``, a
fresh guest under 1 s.

Usage::

    python benchmarks/fresh_floor.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/fresh_floor.py --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, machine, replace_section

IMAGE = "pytest-isolate/debian:bookworm"
FRESH_TESTS = 5
PROJECT = """
import pytest
from pytest_isolate import isolate


@pytest.mark.parametrize("n", range({count}))
@isolate({args}, fresh=True)
def test_fresh(n):
    pass
"""


def _timed(command: list[str], cwd: Path | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command}: failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return seconds


def fresh_per_test(args: str, project: Path, rounds: int) -> float:
    """(median wall time of FRESH_TESTS fresh tests - plain's) / FRESH_TESTS."""
    (project / "test_fresh.py").write_text(PROJECT.format(count=FRESH_TESTS, args=args))
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    walls, plain = [], []
    for _ in range(rounds):
        walls.append(_timed(pytest, project))
        plain.append(_timed([*pytest, "--no-isolate"], project))
    return (statistics.median(walls) - statistics.median(plain)) / FRESH_TESTS


def docker_floor(command: list[str], rounds: int) -> float:
    run = ["docker", "run", "--rm", "--network", "none", IMAGE, *command]
    return statistics.median(_timed(run) for _ in range(rounds * FRESH_TESTS))


def guest_floor(rounds: int) -> float:
    """A restored guest of the default shape, from QEMU's start to its command's first byte."""
    from pytest_isolate.vm import Guest, VMConfig

    times = []
    for _ in range(rounds * FRESH_TESTS + 1):  # the first may boot and save the guest
        started = time.perf_counter()
        guest = Guest.start(VMConfig(command=("/bin/echo", "ready")), snapshots=True)
        try:
            guest.wait_ready()
        finally:
            guest.kill()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="isolate-fresh-bench-") as tmp:
        project = Path(tmp)
        project.chmod(0o755)  # the container's agent runs as an unprivileged user
        container = fresh_per_test(f'"container", image="{IMAGE}"', project, args.rounds)
        vm = fresh_per_test('"vm"', project, args.rounds)
    run_true = docker_floor(["true"], args.rounds)
    run_python = docker_floor(["python3", "-c", "pass"], args.rounds)
    restored = guest_floor(args.rounds)
    lines = [
        "| target | a `fresh=True` test, added | its floor | floor | / floor |",
        "| --- | ---: | --- | ---: | ---: |",
        f"| container | {container:.2f} s | `docker run --rm IMAGE true` | {run_true:.2f} s "
        f"| {container / run_true:.1f} |",
        f"| container | {container:.2f} s | `docker run --rm IMAGE python3 -c pass` "
        f"| {run_python:.2f} s | {container / run_python:.1f} |",
        f"| vm (TCG) | {vm:.2f} s | a restored guest running `echo` | {restored:.2f} s "
        f"| {vm / restored:.1f} |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## `fresh=True` against its floor\n\n"
            f"`python benchmarks/fresh_floor.py`: {FRESH_TESTS} trivial `fresh=True` tests "
            f"against plain pytest, {args.rounds} rounds, medians; the floors are the "
            "engine alone, timed as many times. What a fresh target adds to its floor is "
            "the agent's work: importing pytest and collecting the test's file (seconds "
            "in a TCG guest). Fresh containers are started two tests ahead "
            "(`isolate_prefork`), and their agents import bytecode the broker compiled once "
            "(`backends/inject.py`). A container's start: create and start 0.09 s (in the "
            "broker), the agent's hello 0.12 s (Python and pytest's import), collection "
            "0.15 s, removal 0.05 s (in the broker). The issue's targets were 1.5x for a "
            "container and 1 s for a guest (issue 20).\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines)
        )
        replace_section(DOCS, "fresh-floor", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
