"""What one subtest report costs in an isolated test, on top of what plain pytest spends on it.

pytest 9 reports every ``unittest`` ``subTest`` (and every ``subtests``
fixture subtest) on its own; an isolated test sends each such report over
its channel, where the broker checks and rebuilds it. One test with 20,000
passing subtests, plain and in each forked backend, rounds interleaved:
(median wall time - plain's) / 20,000 is the cost of one report. The target
(issue 20) is at most 0.2 ms.

Usage::

    python benchmarks/subtest_cost.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/subtest_cost.py --no-write
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

SUBTESTS = 20_000
ROWS = {
    "plain": ("--no-isolate",),
    "process": ("--isolate=process",),
    "seccomp": ("--isolate=seccomp",),
    "chroot": ("--isolate=chroot",),
}
PROJECT = f"""
import unittest


class Many(unittest.TestCase):
    def test_many_subtests(self):
        for i in range({SUBTESTS}):
            with self.subTest(i=i):
                self.assertTrue(True)
"""


def run_once(args: tuple[str, ...], project: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    started = time.perf_counter()
    done = subprocess.run([*command, *args], cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"{SUBTESTS} subtests passed" not in done.stdout:
        raise RuntimeError(f"{args}: pytest failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    walls: dict[str, list[float]] = {name: [] for name in ROWS}
    with tempfile.TemporaryDirectory(prefix="isolate-subtest-bench-") as tmp:
        project = Path(tmp)
        (project / "test_many.py").write_text(PROJECT)
        for _ in range(args.rounds):
            for name, row in ROWS.items():
                walls[name].append(run_once(row, project))
    plain = statistics.median(walls["plain"])
    lines = [
        "| backend | wall time, one test of 20,000 subtests | each subtest report, added |",
        "| --- | ---: | ---: |",
        f"| plain | {plain:.2f} s | - |",
    ]
    for name in ROWS:
        if name != "plain":
            wall = statistics.median(walls[name])
            lines.append(f"| {name} | {wall:.2f} s | {(wall - plain) / SUBTESTS * 1000:.3f} ms |")
    print("\n".join(lines))
    if not args.no_write:
        import pytest

        body = (
            "## Subtest reports (pytest 9)\n\n"
            f"`python benchmarks/subtest_cost.py`: one `unittest` test with {SUBTESTS:,} "
            f"passing `subTest`s on pytest {pytest.__version__}, {args.rounds} rounds, "
            "medians. The added time is what the isolated run spends beyond the plain one, "
            "per report: the target serialises it and frames it, the broker checks and "
            "rebuilds it. The target was at most 0.2 ms.\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines)
        )
        replace_section(DOCS, "subtests", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
