"""What a spawned target costs before its first test, and per test when not shared.

* container: the floor (``docker run --rm --network none IMG python3 -c pass``),
  the latency of a one-test run against a plain one-test run, and a fresh
  container per test (``fresh=True``) against tests sharing one container;
* vm: the same latency (boot, agent, collection in the guest), with the
  accelerator the run chose.

Per-test costs of warm targets (300 tests sharing one container or VM) are
rows of ``benchmarks/run.py``. Usage::

    python benchmarks/spawned.py            # prints the table and updates docs/benchmarks.md
    python benchmarks/spawned.py --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import DOCS, WORK, machine, replace_section

IMAGE = "pytest-isolate/debian:bookworm"
FRESH_TESTS = 10
VM_TESTS = 100
VM_FRESH_TESTS = 3


def _project(name: str, body: str) -> Path:
    root = WORK / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_spawned.py").write_text(body)
    return root


def _pytest(project: Path, *args: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed in {project}:\n{(done.stdout + done.stderr)[-2000:]}")
    return seconds, done.stdout + done.stderr


def _median(function: object, rounds: int) -> float:
    return statistics.median(function() for _ in range(rounds))  # type: ignore[operator]


def _docker_floor() -> float:
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c", "pass"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def measure(rounds: int) -> list[str]:
    one = _project("one-test", "def test_one():\n    assert True\n")
    plain_one = _median(lambda: _pytest(one)[0], rounds)
    floor = _median(_docker_floor, rounds)
    container_one = _median(lambda: _pytest(one, "--isolate=container")[0], rounds)
    shared = _project(
        "shared",
        "from pytest_isolate import isolate\n"
        "pytestmark = isolate('container')\n"
        + "".join(f"def test_{n}():\n    assert True\n" for n in range(FRESH_TESTS)),
    )
    fresh = _project(
        "fresh",
        "from pytest_isolate import isolate\n"
        "pytestmark = isolate('container', fresh=True)\n"
        + "".join(f"def test_{n}():\n    assert True\n" for n in range(FRESH_TESTS)),
    )
    shared_run = _median(lambda: _pytest(shared)[0], rounds)
    fresh_run = _median(lambda: _pytest(fresh)[0], rounds)
    vm_seconds, vm_output = _pytest(one, "--isolate=vm", "-v")  # -v: the start-up steps
    accel = re.search(r"accelerator (\w+)", vm_output)
    agent_up = re.search(r"agent up in the guest: .*\(([\d.]+) s\)", vm_output)
    ready = re.search(r"collected in the guest \(([\d.]+) s since launch\)", vm_output)
    many = _project(
        "vm-many", "".join(f"def test_{n}():\n    assert True\n" for n in range(VM_TESTS))
    )
    vm_many, _ = _pytest(many, "--isolate=vm")
    vm_fresh_project = _project(
        "vm-fresh",
        "from pytest_isolate import isolate\n"
        "pytestmark = isolate('vm', fresh=True)\n"
        + "".join(f"def test_{n}():\n    assert True\n" for n in range(VM_FRESH_TESTS)),
    )
    vm_fresh, _ = _pytest(vm_fresh_project)
    vm_name = accel.group(1) if accel else "unknown accelerator"
    rows = [
        "| measurement | seconds |",
        "| --- | ---: |",
        f"| plain pytest, one test | {plain_one:.2f} |",
        f"| floor: `docker run --rm --network none {IMAGE} python3 -c pass` | {floor:.2f} |",
        f"| container: one-test run | {container_one:.2f} |",
        f"| container: first-test latency (one-test run minus plain) | "
        f"{container_one - plain_one:.2f} |",
        f"| container: {FRESH_TESTS} tests sharing one container, per test after the first | "
        f"{(shared_run - container_one) / (FRESH_TESTS - 1):.3f} |",
        f"| container: {FRESH_TESTS} tests with `fresh=True`, per test | "
        f"{(fresh_run - plain_one) / FRESH_TESTS:.3f} |",
        f"| vm ({vm_name}): one-test run, boot included | {vm_seconds:.2f} |",
        f"| vm ({vm_name}): launch to the agent's hello | "
        f"{float(agent_up.group(1)) if agent_up else float('nan'):.2f} |",
        f"| vm ({vm_name}): launch to ready (pytest imported, collected in the guest) | "
        f"{float(ready.group(1)) if ready else float('nan'):.2f} |",
        f"| vm: first-test latency (one-test run minus plain) | {vm_seconds - plain_one:.2f} |",
        f"| vm: {VM_TESTS} tests sharing one guest, per test after the first | "
        f"{(vm_many - vm_seconds) / (VM_TESTS - 1):.3f} |",
        f"| vm: {VM_FRESH_TESTS} tests with `fresh=True` (a guest each, restored from the "
        f"snapshot of its shape), per test | {(vm_fresh - plain_one) / VM_FRESH_TESTS:.2f} |",
    ]
    if vm_name != "KVM":
        rows.append("| vm (KVM): launch to ready | not measured: KVM guests hang at boot here |")
    return rows


VM_NOTES = """

### Where a warm vm test's time goes (TCG)

Timestamps on the guest's CLOCK_MONOTONIC in the agent and the test's
child, 200 trivial tests in one guest, medians per test (measured while
tuning, not by this script):

| step, in the guest | cost |
| --- | ---: |
| agent: socket pair, crash log, scratch directory | 1.0 ms |
| `fork()` (page tables of a 23 MB agent) | 2.9 ms |
| until the child runs (scheduling, copy-on-write faults) | 4.9 ms |
| restriction steps in the child | 4.9 ms |
| pytest's protocol for the test, reports sent | 20.7 ms |
| child exit (address space teardown) and sweep | 7.8 ms |
| broker, between `exited` and the next `run` | 2.6 ms |

Python runs 11-16x slower under TCG than on the host, and a syscall or a
copy-on-write fault about 10x, so what decided the cost was the guest CPU
model and work done once instead of per test:

- **CPU model**: `-cpu max` gave 62 ms per test; Intel models 89 ms (the
  guest kernel turns on page-table isolation); `qemu64` with the x86-64-v2
  features (AMD vendor, no AVX or XSAVE state to switch) 47 ms. That is the
  TCG default now (`cpu=` overrides it).
- **once per agent, not per child**: the capability bounding set, the
  environment scrub, pytest's capture descriptors, silencing the reporters,
  and glibc's first user lookup (about 5 ms per test together).
- tried and dropped: `mitigations=off` (1 ms), transparent huge pages
  always or never (no change), two vCPUs (42 ms per test but 11 s instead
  of 8 s to ready).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    options = parser.parse_args(argv)
    rows = measure(options.rounds)
    print("\n".join(rows))
    if not options.no_write:
        body = (
            "## Spawned targets: before the first test\n\n"
            "`benchmarks/spawned.py`, median of "
            f"{options.rounds} rounds (the vm row: one run). Machine: {machine()}.\n"
            "KVM guests hang at boot on this machine (nested virtualisation), so `accel=auto`\n"
            "falls back to TCG after a one-time probe; working KVM boots much faster.\n\n"
            + "\n".join(rows)
            + VM_NOTES
        )
        replace_section(DOCS, "spawned", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
