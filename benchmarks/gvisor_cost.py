"""What gVisor's runsc costs beside the engine's runc: the first test, then each warm test.

The same 300 trivial tests as ``run.py``, every one in a container
(``--isolate=container``), once under runc and once under runsc
(``--isolate-container-runtime=runsc``), plain pytest beside them; rounds
interleave the rows. The first test pays for its container's start (the
summary's "N targets started in X s"); each later test pays the rest:
(median wall time - plain's - start) / 300.

Usage::

    python benchmarks/gvisor_cost.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/gvisor_cost.py --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, TESTS, machine, replace_section, write_project

ROWS = {
    "plain": ("--no-isolate",),
    "runc": ("--isolate=container",),
    "runsc": ("--isolate=container", "--isolate-container-runtime=runsc"),
}
_STARTED = re.compile(r"targets? started in ([0-9.]+) s")


def run_once(args: tuple[str, ...], project: Path) -> tuple[float, float]:
    """(wall seconds, seconds the containers took to start) of one run that must pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"{TESTS} passed" not in done.stdout:
        raise RuntimeError(f"{args}: pytest failed:\n{(done.stdout + done.stderr)[-2000:]}")
    startup = sum(float(found) for found in _STARTED.findall(done.stdout))
    return seconds, startup


def measure_rows(
    rows: dict[str, tuple[str, ...]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall times and target start times of each row's runs, the rows interleaved per round."""
    walls: dict[str, list[float]] = {name: [] for name in rows}
    starts: dict[str, list[float]] = {name: [] for name in rows}
    with tempfile.TemporaryDirectory(prefix="isolate-rows-bench-") as tmp:
        project = write_project(Path(tmp) / "project", TESTS)
        for path in (Path(tmp), project):
            path.chmod(0o755)  # the container's agent runs as an unprivileged user
        for _ in range(rounds):
            for name, row in rows.items():
                wall, startup = run_once(row, project)
                walls[name].append(wall)
                starts[name].append(startup)
    return walls, starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    walls, starts = measure_rows(ROWS, args.rounds)
    plain = statistics.median(walls["plain"])
    lines = [
        "| runtime | wall time, 300 tests | first test: the container's start | "
        "each warm test, added | / runc |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    warm = {}
    for name in ("runc", "runsc"):
        wall, start = statistics.median(walls[name]), statistics.median(starts[name])
        warm[name] = (wall - plain - start) / TESTS
    for name in ("runc", "runsc"):
        wall, start = statistics.median(walls[name]), statistics.median(starts[name])
        lines.append(
            f"| {name} | {wall:.2f} s | {start:.2f} s | {warm[name] * 1000:.1f} ms "
            f"| {warm[name] / warm['runc']:.2f} |"
        )
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## gVisor (runsc) beside runc\n\n"
            f"`python benchmarks/gvisor_cost.py`: {TESTS} trivial tests, every one in a "
            f"container, {args.rounds} rounds, medians; plain pytest {plain:.2f} s. "
            "Debian's runsc on the ptrace platform (no KVM here).\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines)
        )
        replace_section(DOCS, "gvisor", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
