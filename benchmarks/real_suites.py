"""What isolation adds per test on real third-party suites, beside pytest-forked and 0.0.17.

toolz, pluggy and more-itertools, each from its sdist (tests included), run
whole: plain, under this plugin's forked backends, under pytest-forked and
under pytest-isolate 0.0.17 from PyPI. Rounds are interleaved and the median
wall time of each row is kept. "Added per test" is (median - the same
virtual environment's plain median) / the suite's test count, so both sides
of a difference use the same pytest: pytest-forked and 0.0.17 fail on
pytest 9 and run on pytest 8.4 (``benchmarks/.work``, made by
``run.py --setup``), and this plugin is measured there too, like for like.

more-itertools uses ``unittest``'s ``subTest`` about 20,000 times; pytest 9
reports each one, pytest 8.4 does not, so its pytest 9 rows carry that many
more reports (their cost alone: ``subtest_cost.py``).

Usage::

    python benchmarks/real_suites.py                 # run, rewrite its part of docs/benchmarks.md
    python benchmarks/real_suites.py --rounds 1 --no-write --suites toolz
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, WORK, machine, replace_section

#: Shared with tests/thirdparty: world-readable, so a container's user can read a suite.
CACHE = Path("/var/tmp/pytest-isolate-sdists")

#: name -> (version, tests inside the sdist). pluggy's tests import the installed
#: pluggy, which is this version in every venv here.
SUITES = {
    "toolz": ("1.2.0", "toolz"),
    "pluggy": (importlib.metadata.version("pluggy"), "testing"),
    "more-itertools": ("10.8.0", "tests"),
}


@dataclass(frozen=True)
class Row:
    name: str
    args: tuple[str, ...]
    venv: str | None  # None: this interpreter (pytest 9)
    baseline: str
    note: str

    def python(self) -> str:
        return sys.executable if self.venv is None else str(WORK / self.venv / "bin" / "python")


ROWS = [
    Row("plain", (), None, "plain", "pytest 9, no isolation"),
    Row("process", ("--isolate=process",), None, "plain", "this plugin"),
    Row(
        "process, no prefork",
        ("--isolate=process", "--isolate-no-prefork"),
        None,
        "plain",
        "this plugin, each target forked when its test starts",
    ),
    Row("seccomp", ("--isolate=seccomp",), None, "plain", "this plugin"),
    Row("chroot", ("--isolate=chroot",), None, "plain", "this plugin"),
    Row("plain, pytest 8.4", (), "pytest8", "plain, pytest 8.4", "no isolation"),
    Row(
        "process, pytest 8.4", ("--isolate=process",), "pytest8", "plain, pytest 8.4", "this plugin"
    ),
    Row("pytest-forked", ("--forked",), "pytest8", "plain, pytest 8.4", "pytest-forked 1.6"),
    Row("plain, 0.0.17's venv", (), "pypi-isolate", "plain, 0.0.17's venv", "pytest 8.4"),
    Row(
        "pytest-isolate 0.0.17",
        ("--isolate",),
        "pypi-isolate",
        "plain, 0.0.17's venv",
        "from PyPI",
    ),
]


def sdist(name: str, version: str) -> Path:
    """Download (once) and unpack ``name``'s sdist; its directory."""
    target = CACHE / f"{name}-{version}"
    if (target / "PKG-INFO").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"),
            *(f"{name}=={version}", "-d", str(CACHE)),
        ],
        check=True,
    )
    stem = name.replace("-", "_")
    archive = next(p for p in CACHE.glob("*.tar.gz") if re.match(rf"(?i){stem}-{version}", p.name))
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    unpacked = CACHE / archive.name[: -len(".tar.gz")]
    if unpacked != target:
        unpacked.rename(target)
    return target


def run_once(row: Row, directory: Path, tests: str) -> tuple[float, str]:
    """One whole run: its wall time and its final count line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [row.python(), "-m", "pytest", tests, "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", "-p", "no:xdist", *row.args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    counts = [line for line in done.stdout.splitlines() if re.search(r"\d+ passed", line)]
    if not counts:
        raise RuntimeError(f"{row.name}: no result:\n{(done.stdout + done.stderr)[-2000:]}")
    return seconds, counts[-1]


def test_count(line: str) -> int:
    """Tests in a final count line (subtests are not tests)."""
    return sum(
        int(n)
        for n, kind in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)", line)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = [row for row in ROWS if row.venv is None or (WORK / row.venv).exists()]
    tables = []
    for suite in args.suites.split(","):
        version, tests = SUITES[suite]
        directory = sdist(suite, version)
        walls: dict[str, list[float]] = {row.name: [] for row in rows}
        counts: dict[str, str] = {}
        for _ in range(args.rounds):
            for row in rows:
                seconds, counts[row.name] = run_once(row, directory, tests)
                walls[row.name].append(seconds)
        medians = {name: statistics.median(values) for name, values in walls.items()}
        tables.append(table(f"{suite} {version}", rows, medians, counts))
        print("\n".join(tables[-1]), flush=True)
    if not args.no_write:
        import pytest

        body = (
            "## Real suites\n\n"
            "`python benchmarks/real_suites.py`: whole third-party suites from their sdists, "
            f"{args.rounds} rounds, interleaved, medians. Added per test: (median - the same "
            "venv's plain median) / the suite's tests; pytest-forked and pytest-isolate 0.0.17 "
            f"fail on pytest 9 and run on pytest 8.4, ours on both (pytest {pytest.__version__} "
            "and 8.4). more-itertools' pytest 9 rows also carry about 20,000 subtest reports "
            "that pytest 8.4 does not make. `result` is each run's own count line, so a row "
            "that changed an outcome, or lost the suite's warnings, shows it there.\n\n"
            f"Machine: {machine()}.\n\n" + "\n\n".join("\n".join(t) for t in tables)
        )
        replace_section(DOCS, "real-suites", body)
    return 0


def table(
    title: str, rows: list[Row], medians: dict[str, float], counts: dict[str, str]
) -> list[str]:
    forked = None
    if "pytest-forked" in medians:
        forked = medians["pytest-forked"] - medians["plain, pytest 8.4"]
    lines = [
        f"**{title}**",
        "",
        "| run | what | result | wall time | added per test | / pytest-forked's added |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        wall = medians[row.name]
        tests = test_count(counts[row.name])
        added = wall - medians[row.baseline]
        per_test = f"{added / tests * 1000:.1f} ms" if row.baseline != row.name else "-"
        ratio = "-"
        if forked and row.baseline != row.name and row.name != "pytest-forked":
            ratio = f"{added / forked:.2f}"
        result = re.sub(r"\s+in [\d.]+s.*", "", counts[row.name]).strip("= ")
        cells = [row.name, row.note, result, f"{wall:.1f} s", per_test, ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
