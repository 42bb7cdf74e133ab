"""Where a forked test's CPU goes: page faults and CPU time of the broker and of its targets.

A target is a copy-on-write fork of the broker. Each fork write-protects the
broker's whole heap again, so every page the broker writes afterwards (its
reporting, its hooks, CPython's reference counts) is copied once more, and
every page the target writes (the same reference counts, 3.11's specialising
interpreter updating the bytecode it runs) is copied in the target. This
script counts both, per test, for 300 trivial tests: the broker's own minor
faults and CPU time (``getrusage(RUSAGE_SELF)`` at the end of its session,
minus the same venv's plain run), and those of every target it waited for
(``RUSAGE_CHILDREN``). pytest-forked and this plugin are compared in one venv
(pytest 8.4), and this plugin's forked backends on the current pytest.

CPU time is not wall time: the broker and the target run on two cores at
once, and a prepared target is forked while the test before it runs. The
counts say why the wall time cannot drop much below pytest-forked's: both
pay for the same copying, and ours copies more pages per test.

Usage::

    python benchmarks/run.py --setup                 # the pytest 8.4 venv (PyPI access)
    python benchmarks/page_faults.py                 # run, rewrite its part of docs/benchmarks.md
    python benchmarks/page_faults.py --no-write --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import TESTS, WORK, publish

#: Written into the generated project and loaded with ``-p``: the broker's counts at its end.
PROBE = """
import os, resource


def pytest_unconfigure(config):
    if os.environ.get("FAULTS_BROKER") != str(os.getpid()):
        return  # a target, or an agent: only the broker's own end counts
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["FAULTS_OUT"], "w") as out:
        out.write(
            f"{own.ru_minflt} {own.ru_utime + own.ru_stime} "
            f"{waited.ru_minflt} {waited.ru_utime + waited.ru_stime}"
        )
"""

TEST_FILE = f"""
import pytest


@pytest.mark.parametrize("i", range({TESTS}))
def test_trivial(i):
    pass
"""


#: What the table says, written under it on the page.
READING = """\
Reading it:

- On the same pytest, a test under `process` copies about 350 more of the
  broker's pages and about 600 more pages in its target than under
  pytest-forked. That is most of the CPU time between the two; the wall
  time differs less, because our target is forked and restricted while the
  test before it runs.
- In the target, counted with the fault counter at each step (one run,
  2026-12-07): about 300 faults before its first line of our code (CPython's
  and the C library's after-fork work), about 400 in the steps before the
  start (leaving the broker's session, the restriction steps), all of which a
  prepared target takes while the previous test runs; then about 920 from the
  start to `done`, of which pytest's own protocol for the test is about 710.
  Finding the muted terminal writer and xdist's link once in the broker,
  and dropping a second warnings context, took 60 of them off that path.
- The broker's share is paid again after every fork, because each fork
  write-protects its whole heap. A long-lived fork server, made whenever the
  broker's state changes and forking every target, would leave the broker's
  pages alone; every per-test state the target now inherits would then have
  to come by message. Not built: that is the lever left on this cost.
"""


@dataclass(frozen=True)
class Row:
    name: str
    args: tuple[str, ...]
    venv: str | None  # None: the interpreter running this script
    baseline: str | None
    note: str

    def python(self) -> Path:
        return Path(sys.executable) if self.venv is None else WORK / self.venv / "bin" / "python"


ROWS = [
    Row("plain, pytest 8.4", (), "pytest8", None, "no isolation"),
    Row("pytest-forked", ("--forked",), "pytest8", "plain, pytest 8.4", "pytest 8.4"),
    Row("process, pytest 8.4", ("--isolate=process",), "pytest8", "plain, pytest 8.4", ""),
    Row("plain", (), None, None, "no isolation, the current pytest"),
    Row("process", ("--isolate=process",), None, "plain", ""),
    Row(
        "process, no prefork",
        ("--isolate=process", "--isolate-no-prefork"),
        None,
        "plain",
        "each target forked as its test starts",
    ),
    Row("seccomp", ("--isolate=seccomp",), None, "plain", ""),
    Row("chroot", ("--isolate=chroot",), None, "plain", ""),
]


def run_once(row: Row, project: Path) -> tuple[float, float, float, float]:
    """(broker faults, broker CPU s, targets' faults, targets' CPU s) of one run."""
    out = project / "faults.out"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(FAULTS_OUT=str(out), PYTHONPATH=str(project))
    command = [str(row.python()), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "faults_probe", *row.args]
    # exec keeps the shell's pid: the probe knows the broker by it.
    script = 'FAULTS_BROKER=$$ exec "$@"'
    done = subprocess.run(
        ["sh", "-c", script, "sh", *command], cwd=project, env=env, capture_output=True, text=True
    )
    if done.returncode != 0 or f"{TESTS} passed" not in done.stdout:
        raise RuntimeError(f"{row.name}: pytest failed:\n{(done.stdout + done.stderr)[-2000:]}")
    own_faults, own_cpu, waited_faults, waited_cpu = (float(x) for x in out.read_text().split())
    return own_faults, own_cpu, waited_faults, waited_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = [row for row in ROWS if row.python().exists()]
    missing = [row.name for row in ROWS if row not in rows]
    if missing:
        print(f"skipped (run benchmarks/run.py --setup): {', '.join(missing)}", file=sys.stderr)
    runs: dict[str, list[tuple[float, float, float, float]]] = {row.name: [] for row in rows}
    with tempfile.TemporaryDirectory(prefix="isolate-fault-bench-") as tmp:
        project = Path(tmp)
        (project / "faults_probe.py").write_text(PROBE)
        (project / "test_trivial.py").write_text(TEST_FILE)
        for _ in range(args.rounds):
            for row in rows:
                runs[row.name].append(run_once(row, project))
    median = {
        name: tuple(statistics.median(run[i] for run in values) for i in range(4))
        for name, values in runs.items()
    }
    lines = [
        "| configuration | broker: faults added | broker: CPU added | targets: faults "
        "| targets: CPU | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        faults, cpu, target_faults, target_cpu = median[row.name]
        if row.baseline is None:
            lines.append(
                f"| {row.name} | {faults / TESTS:.0f} (all) | {cpu / TESTS * 1000:.2f} ms (all) "
                f"| - | - | {row.note} |"
            )
            continue
        base_faults, base_cpu = median[row.baseline][:2]
        lines.append(
            f"| {row.name} | {(faults - base_faults) / TESTS:.0f} "
            f"| {(cpu - base_cpu) / TESTS * 1000:.2f} ms | {target_faults / TESTS:.0f} "
            f"| {target_cpu / TESTS * 1000:.2f} ms | {row.note} |"
        )
    intro = (
        f"`python benchmarks/page_faults.py`: {TESTS} trivial tests, {args.rounds} rounds, "
        "medians, per test. The broker's minor faults and CPU time are its own at the end "
        "of its session minus the same venv's plain run; the targets' are those of every "
        "target it waited for. Each fork write-protects the broker's heap, so the broker "
        "copies every page it writes afterwards, and each target copies every page it "
        "writes (reference counts, and the bytecode that Python 3.11's specialising "
        "interpreter rewrites as it runs). CPU time is not wall time: broker and target "
        "run on two cores at once."
    )
    heading = "Page faults: where a forked test's CPU goes"
    publish(lines, "page-faults", heading, intro, write=not args.no_write, after=READING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
