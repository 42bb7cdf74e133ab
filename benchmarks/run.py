"""Per-test overhead of isolation: 300 trivial tests, plain and under each isolating plugin.

Every configuration is a named row in ``CONFIGS``; each runs the same
generated project ``--rounds`` times (rounds interleave the configurations,
so a slow moment of the machine hits every row alike) and the median wall
time is kept. The added time per test is measured against plain pytest *in
the same virtual environment*, so the pytest version is the same on both
sides of each difference.

pytest-forked fails every test on pytest 9 and the PyPI package
``pytest-isolate`` installs a module of our name, so each lives in its own
virtual environment under ``benchmarks/.work/`` (``--setup`` creates them):

* ``pytest8``: pytest 8.4, pytest-forked and this package (editable);
* ``pypi-isolate``: pytest-isolate 0.0.17 and pytest 8.4 (it breaks on pytest 9).

Usage::

    python benchmarks/run.py --setup            # create the venvs (PyPI access)
    python benchmarks/run.py                    # run every configuration, write docs
    python benchmarks/run.py --only plain,process --no-write
    python benchmarks/run.py --only plain,process --against /tmp/old-checkout --no-write

To add a backend row (seccomp, chroot, container, vm), append a ``Config``
with its arguments and the name of its baseline row.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
DOCS = REPO / "docs" / "benchmarks.md"
TESTS = 300

VENVS: dict[str, list[list[str]]] = {
    # name: pip install command lines (each a list of arguments after "pip install")
    "pytest8": [["pytest==8.4.*", "pytest-forked==1.6.*"], ["--no-deps", "-e", str(REPO)]],
    "pypi-isolate": [["pytest-isolate==0.0.17", "pytest==8.4.*"]],  # breaks on pytest 9
}


@dataclass(frozen=True)
class Config:
    """One row of the table: how pytest is started and what it is compared with."""

    name: str
    args: tuple[str, ...] = ()
    venv: str | None = None  # None: the interpreter running this script
    baseline: str | None = None  # the plain row of the same venv
    note: str = ""
    env: tuple[tuple[str, str], ...] = field(default=())

    def python(self) -> Path:
        if self.venv is None:
            return Path(sys.executable)
        return WORK / self.venv / "bin" / "python"

    def available(self) -> bool:
        return self.python().exists()


CONFIGS: list[Config] = [
    Config("plain", note="pytest, current version, no isolation"),
    Config("process", ("--isolate=process",), baseline="plain", note="this plugin"),
    Config(
        "process-no-prefork",
        ("--isolate=process", "--isolate-no-prefork"),
        baseline="plain",
        note="this plugin, each target forked when its test starts (--isolate-no-prefork)",
    ),
    Config("plain-pytest8", venv="pytest8", note="pytest 8.4, no isolation"),
    Config(
        "process-pytest8",
        ("--isolate=process",),
        venv="pytest8",
        baseline="plain-pytest8",
        note="this plugin on pytest 8.4",
    ),
    Config(
        "pytest-forked",
        ("--forked",),
        venv="pytest8",
        baseline="plain-pytest8",
        note="pytest-forked on pytest 8.4",
    ),
    Config(
        "seccomp", ("--isolate=seccomp",), baseline="plain", note="this plugin, seccomp backend"
    ),
    Config("chroot", ("--isolate=chroot",), baseline="plain", note="this plugin, chroot backend"),
    Config(
        "container",
        ("--isolate=container",),
        baseline="plain",
        note="this plugin, one bookworm container, a fork per test in it",
    ),
    Config(
        "vm",
        ("--isolate=vm",),
        baseline="plain",
        note="this plugin, one QEMU guest (TCG here), its boot included (warm cost: below)",
    ),
    Config("plain-pypi-isolate", venv="pypi-isolate", note="pytest 8.4 in the pytest-isolate venv"),
    Config(
        "pypi-pytest-isolate",
        ("--isolate",),
        venv="pypi-isolate",
        baseline="plain-pypi-isolate",
        note="pytest-isolate 0.0.17 from PyPI on pytest 8.4",
    ),
]


def setup_venvs() -> None:
    for name, installs in VENVS.items():
        venv = WORK / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for arguments in installs:
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *arguments],
                check=True,
            )
    # the editable install brings no dependencies of ours: add them
    subprocess.run(
        [str(WORK / "pytest8" / "bin" / "python"), "-m", "pip", "install", "-q", "pluggy>=1.5"],
        check=True,
    )


def write_project(root: Path, count: int) -> Path:
    """``count`` trivial tests in ten modules: the cost measured is the harness, not the tests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    per_module = count // 10
    for module in range(10):
        body = "".join(
            f"def test_{module}_{n}():\n    assert {n} + 1 > {n}\n\n" for n in range(per_module)
        )
        (root / f"test_trivial_{module}.py").write_text(body)
    return root


def run_once(config: Config, project: Path) -> float:
    """Wall seconds of one pytest run; the run must pass every test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(config.env)
    command = [str(config.python()), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", *config.args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"{TESTS} passed" not in done.stdout:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"{config.name}: pytest failed (status {done.returncode}):\n{tail}")
    return seconds


def measure(configs: list[Config], project: Path, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {c.name: [] for c in configs}
    for _ in range(rounds):
        for config in configs:
            samples[config.name].append(run_once(config, project))
    return {name: statistics.median(values) for name, values in samples.items()}


def against(configs: list[Config], checkout: Path) -> list[Config]:
    """The same rows of this plugin, with the package imported from another checkout."""
    if not (checkout / "pytest_isolate" / "__init__.py").is_file():
        raise SystemExit(f"--against {checkout}: not a checkout of this project")
    return [
        Config(
            f"{config.name}@other",
            config.args,
            baseline=config.baseline,
            note=f"{config.note}, package from {checkout}",
            env=(("PYTHONPATH", str(checkout)),),
        )
        for config in configs
        if config.venv is None and config.baseline == "plain"
    ]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average before the run "
        f"{os.getloadavg()[0]:.1f} (other work on the machine inflates every row)"
    )


def table(configs: list[Config], medians: dict[str, float]) -> list[str]:
    by_name = {c.name: c for c in configs}
    forked_added = None
    if "pytest-forked" in medians and "plain-pytest8" in medians:
        forked_added = (medians["pytest-forked"] - medians["plain-pytest8"]) / TESTS
    process_added = None
    if "process" in medians and "plain" in medians:
        process_added = (medians["process"] - medians["plain"]) / TESTS
    rows = [
        "| configuration | what | wall time (median) | added per test"
        " | pytest-forked's added time / this | this / process's added time |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds in medians.items():
        config = by_name[name]
        added = "-"
        ratio = "-"
        versus_process = "-"
        if config.baseline and config.baseline in medians:
            per_test = (seconds - medians[config.baseline]) / TESTS
            added = f"{per_test * 1000:.2f} ms"
            if forked_added and name != "pytest-forked":
                ratio = f"{forked_added / per_test:.2f}" if per_test > 0 else "-"
            if process_added and config.venv is None and per_test > 0:
                versus_process = f"{per_test / process_added:.2f}"
        rows.append(
            f"| {name} | {config.note} | {seconds:.2f} s | {added} | {ratio} | {versus_process} |"
        )
    return rows


#: Where the time of a ``process`` test goes: (step, where it runs, its cost), measured
#: with timestamps in broker and target while tuning (not by this script).
STEPS = (
    (
        "`fork()` of the next test's target (page tables)",
        "broker, while the test before runs",
        "1.2 ms",
    ),
    (
        "restriction steps 2-3 and 5-13 (pdeathsig, setsid, fds, faulthandler, scratch, rlimits, "
        "checks)",
        "that target, while the test before runs",
        "0.7 ms",
    ),
    (
        "move into the process tree (step 4), checked; the start byte",
        "broker, critical path",
        "0.3 ms",
    ),
    (
        "warnings context, coverage probe, pytest's per-test state",
        "target, critical path",
        "0.7 ms",
    ),
    (
        "`run_item`: pytest's own protocol for the test, reports sent as frames",
        "target, critical path",
        "2.6 ms",
    ),
    ("from `done` to the result: read, validate, rebuild", "broker, critical path", "0.2-0.9 ms"),
    (
        "exit, the tree's emptying, `waitpid` (settled before the next test)",
        "target and broker, while the broker reports",
        "about 1 ms",
    ),
    ("reporting 3 reports, the next test's bookkeeping", "broker, critical path", "about 2.6 ms"),
)
STEP_ROWS = [
    "| step | where | cost |",
    "| --- | --- | ---: |",
    *(f"| {step} | {where} | {cost} |" for step, where, cost in STEPS),
]


def write_docs(lines: list[str], rounds: int) -> None:
    text = textwrap.dedent(
        f"""\
        # Benchmarks

        What isolation costs per test: {TESTS} trivial tests (`assert n + 1 > n`), run
        plain and under each isolating plugin, {rounds} rounds each, interleaved; the
        median wall time of a whole `pytest -q` run is kept. "Added per test" is
        (median - median of plain pytest in the same virtual environment) / {TESTS},
        so both sides of each difference use the same pytest. pytest-forked fails
        every test on pytest 9, so it runs on pytest 8.4, and this plugin is measured
        on pytest 8.4 too for a like-for-like ratio.

        Machine: {machine()}.

        """
    )
    text += "\n".join(lines) + "\n\n"
    text += textwrap.dedent(
        """\
        Reproduce:

        ```sh
        python benchmarks/run.py --setup   # once: venvs under benchmarks/.work (PyPI access)
        python benchmarks/run.py           # runs every row and rewrites this page
        python benchmarks/run.py --only plain,process --no-write
        ```

        Figures are noisy on a shared 2-core machine; compare rows of one run, not
        numbers across runs.

        ## Where the time of `process` goes

        Timestamps on CLOCK_MONOTONIC in broker and target (medians per test,
        quiet machine, 300 trivial tests):

        {steps}

        Three things take work off the critical path
        ([internals](internals.md#forking-ahead)): the next test's target is
        forked while the current test runs; it takes every restriction step
        but the process tree's while it waits; and a test is reported at its
        target's `done`, its exit collected while the broker writes the
        report. The `process-no-prefork` row is the same backend without them.

        pytest-forked pays the same fork, protocol and exit, on the critical
        path; what this plugin adds is for safety: the cgroup that lets it kill
        a whole process tree, closing inherited descriptors, a crash log with a
        traceback, a private temporary directory, and frames that are
        size-checked and validated against an allow-list. The issue's target of
        a third of pytest-forked's added time is not reachable on this machine:
        pytest-forked itself adds about 5-7 ms here (not the 15 ms of the field
        notes), and this plugin's critical path holds pytest's own protocol in
        the target (2.6 ms) and the broker's reporting (2.6 ms) whatever
        isolates it. Changes that moved these numbers: the report forwarder
        registered once in the broker instead of per target (-2 ms), the
        terminal muted instead of unregistered, `gc.freeze()` around the fork;
        for `seccomp` and `chroot`, namespaces (and the jail) made once per
        broker and joined per test instead of made per test (seccomp 22 -> 8.4
        ms, chroot 21.6 -> 7.7 ms), and the seccomp monitor's thread started
        without waiting for it to be scheduled (-1.7 ms); for all three,
        restriction steps ahead of the start and the exit after the report
        (process 9.8 -> 7.6 ms, seccomp 12.1 -> 9.8 ms, chroot 11.3 -> 9.1 ms
        in A/B runs against the previous commit).
        """
    ).replace("{steps}", "\n".join(STEP_ROWS))
    replace_section(DOCS, "per-test", text)


def publish(
    lines: list[str], section: str, heading: str, intro: str, *, write: bool, after: str = ""
) -> None:
    """Print a script's table; with ``write``, make it the script's part of the page.

    The part: the heading, the intro (how it was measured), the machine, the
    table, and ``after`` (what the table says).
    """
    print("\n".join(lines))
    if write:
        body = f"## {heading}\n\n{intro}\n\nMachine: {machine()}.\n\n" + "\n".join(lines)
        replace_section(DOCS, section, body + (f"\n\n{after}" if after else ""))


def replace_section(page: Path, name: str, body: str) -> None:
    """Rewrite only this script's part of the page; other benchmarks keep theirs."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = page.read_text() if page.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = block + "\n\n" + old
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--setup", action="store_true", help="create the venvs, then exit")
    parser.add_argument("--only", help="comma-separated configuration names to run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not rewrite the docs page")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also run this plugin's rows with the package from DIR (another checkout, "
        "e.g. a git worktree of an older commit) first on sys.path: before and after "
        "in one interleaved run",
    )
    options = parser.parse_args(argv)
    if options.setup:
        setup_venvs()
        return 0
    configs = CONFIGS
    if options.only:
        wanted = set(options.only.split(","))
        unknown = wanted - {c.name for c in CONFIGS}
        if unknown:
            parser.error(f"unknown configuration {', '.join(sorted(unknown))}")
        configs = [c for c in CONFIGS if c.name in wanted]
    missing = [c.name for c in configs if not c.available()]
    if missing:
        print(f"skipping {', '.join(missing)}: run with --setup first", file=sys.stderr)
    configs = [c for c in configs if c.available()]
    if options.against:
        configs += against(configs, Path(options.against).resolve())
    project = write_project(WORK / "project", TESTS)
    medians = measure(configs, project, options.rounds)
    lines = table(configs, medians)
    print("\n".join(lines))
    if not options.no_write:
        write_docs(lines, options.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
