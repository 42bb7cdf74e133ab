"""Cost of untrusted mode on 1000 trivial tests: collection in a container, tests there.

Rows (median wall time of ``--rounds`` interleaved runs of a whole pytest
process, same project, same pytest):

* plain: ``pytest -p no:isolate`` (collects and runs in-process);
* container: ``--isolate-matrix=container:IMAGE`` (broker collects, the
  container's agent collects again, each test in a fork inside it);
* untrusted: ``python -P -m pytest_isolate.untrusted --isolate-untrusted=container:IMAGE``
  (only the agent collects; each test in a fork inside the container);
* the same three with ``--co`` (collection only): what collecting in a
  target costs, the agent start included.

Usage::

    python benchmarks/untrusted.py              # prints the markdown section
    python benchmarks/untrusted.py --write      # and replaces it in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "benchmarks.md"
IMAGE = "pytest-isolate/debian:bookworm"
TESTS = 1000
START = "<!-- untrusted-benchmark:start -->"
END = "<!-- untrusted-benchmark:end -->"

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
UNTRUSTED = [
    sys.executable,
    "-P",
    "-m",
    "pytest_isolate.untrusted",
    f"--isolate-untrusted=container:{IMAGE}",
    "-q",
    "-p",
    "no:cacheprovider",
]
ROWS = {
    "plain": [*PYTEST, "-p", "no:isolate"],
    "container": [*PYTEST, f"--isolate-matrix=container:{IMAGE}"],
    "untrusted": UNTRUSTED,
}


def write_project(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    for module in range(10):
        body = "".join(
            f"def test_{module}_{n}():\n    assert {n} + 1 > {n}\n\n" for n in range(TESTS // 10)
        )
        (root / f"test_trivial_{module}.py").write_text(body)


def timed(command: list[str], cwd: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def measure(rounds: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="ut-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        write_project(root)
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, command in ROWS.items():
                samples.setdefault(name, []).append(timed(command, root))
                samples.setdefault(f"{name} --co", []).append(timed([*command, "--co"], root))
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def section(medians: dict[str, float], rounds: int) -> str:
    plain, plain_co = medians["plain"], medians["plain --co"]
    lines = [
        START,
        "## Untrusted mode (`--isolate-untrusted=container:IMAGE`)",
        "",
        f"{TESTS} trivial tests, median of {rounds} interleaved rounds of a whole pytest "
        "process (`benchmarks/untrusted.py`). Collection-only rows show what collecting "
        "inside a target costs: one container start and the agent's own pytest start.",
        "",
        "| configuration | run | vs plain | collection only (`--co`) | vs plain |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ROWS:
        run, co = medians[name], medians[f"{name} --co"]
        lines.append(
            f"| {name} | {run:.2f} s | +{run - plain:.2f} s | {co:.2f} s | +{co - plain_co:.2f} s |"
        )
    lines += [
        "",
        "Collecting inside the target adds one agent start (container creation, the "
        "agent's interpreter and pytest, its collection) once per run: the `--co` "
        "difference above. (`container --co` starts no container: that backend "
        "starts it at the first test.) The per-test cost that follows is the same "
        "fork-per-test inside one container as the container backend's; untrusted "
        "mode saves that backend's second collection, in the broker.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="replace the section in the docs")
    options = parser.parse_args()
    text = section(measure(options.rounds), options.rounds)
    print(text)
    if options.write:
        docs = DOCS.read_text()
        if START in docs and END in docs:
            head, rest = docs.split(START, 1)
            docs = head + text.rstrip("\n") + rest.split(END, 1)[1]
        else:
            docs = docs.rstrip("\n") + "\n\n" + text
        DOCS.write_text(docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
