"""The pipe channel against the shm channel, on many small reports and on a few large ones.

Two views of the same question, both with real forks:

* ``transport``: the broker's real ``TargetSupervisor`` reading a forked
  child that streams frames (the child does nothing else), so the channel's
  own cost is visible: 20,000 report-sized frames (about 1 KB), and 10 MB /
  100 MB of payload in frames of 10 MB (the frame cap is 16 MiB).
* ``pytest``: whole ``pytest -q`` runs of generated projects, pipe against
  shm: 300 trivial tests, and 4 tests that each print 10 MB or 100 MB
  (captured output reaches the broker as at most 1 MiB per section, so
  this shows what a user would see, not the transport).

Rounds interleave pipe and shm; the median is kept. Writes its section of
``docs/benchmarks.md`` between markers and leaves the rest of the page alone.

Usage::

    python benchmarks/channel.py              # measure and write the docs section
    python benchmarks/channel.py --no-write --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from pytest_isolate.supervision.supervisor import TargetSupervisor  # noqa: E402
from pytest_isolate.target import steps  # noqa: E402
from pytest_isolate.target.item_runner import FrameSender  # noqa: E402
from pytest_isolate.wire.frames import FrameLimits  # noqa: E402
from pytest_isolate.wire.shm import ShmRing  # noqa: E402

DOCS = REPO / "docs" / "benchmarks.md"
START = "<!-- channel-benchmark:start -->"
END = "<!-- channel-benchmark:end -->"
#: shm becomes a case's default only when its median beats pipe's by more than this:
#: on this shared 2-core machine, rows within 10% flip between runs.
SHM_MUST_WIN_BY = 1.10
LIMITS = FrameLimits(max_total_bytes=256 * 1024 * 1024, max_frames=1_000_000)

Case = tuple[str, int, int]  # name, frames, payload bytes per frame
TRANSPORT_CASES: list[Case] = [
    ("one small test (3 frames of 1 KB), fork to done", 3, 1000),
    ("20,000 small reports (1 KB)", 20_000, 1000),
    ("10 MB in one frame", 1, 10 * 1024 * 1024),
    ("100 MB in 10 frames of 10 MB", 10, 10 * 1024 * 1024),
]


def _frame(payload: int) -> dict[str, object]:
    """A warning frame: the broker validates its fields and ignores the padding."""
    return {
        "type": "warning",
        "message": "m",
        "category": "UserWarning",
        "filename": "f.py",
        "lineno": 1,
        "when": "runtest",
        "pad": "p" * payload,
    }


def transport_once(channel: str, frames: int, payload: int, capacity: int) -> float:
    """Seconds from fork to the broker having validated every frame and the end."""
    broker_end, target_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ring = ShmRing(capacity) if channel == "shm" else None
    message = _frame(payload)
    parent = os.getpid()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        steps.set_parent_death_signal(parent)  # a full ring must not outlive an aborted run
        broker_end.close()
        sender = FrameSender(target_end if ring is None else ring.writer())
        for _ in range(frames):
            sender.send(message)
        sender.send({"type": "done", "pid": os.getpid()})
        os._exit(0)
    target_end.close()
    supervisor = TargetSupervisor(
        pid,
        broker_end,
        "bench",
        60.0,
        LIMITS,
        kill_tree=lambda: None,
        ring=ring.reader() if ring is not None else None,
    )
    state = supervisor.run()
    elapsed = time.perf_counter() - started
    if ring is not None:
        ring.close()
    if not state.finished or len(state.warnings) != frames or state.protocol_error:
        raise RuntimeError(f"{channel}: broken run ({state.protocol_error})")
    return elapsed


SMALL_PROJECT = """
import pytest
from pytest_isolate import isolate

@isolate("process")
@pytest.mark.parametrize("n", range(300))
def test_small(n):
    assert n + 1 > n
"""

LARGE_PROJECT = """
import sys
import pytest
from pytest_isolate import isolate

@isolate("process")
@pytest.mark.parametrize("n", range(4))
def test_large(n):
    line = "o" * 1023 + "\\n"
    for _ in range({megabytes} * 1024):
        sys.stdout.write(line)
"""


PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist")


def pytest_once(root: Path, channel: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    started = time.perf_counter()
    subprocess.run(
        [*PYTEST, f"--isolate-channel={channel}"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def interleaved(rounds: int, measure: Callable[[str], float]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"pipe": [], "shm": []}
    for _ in range(rounds):
        for channel in times:
            times[channel].append(measure(channel))
    return times


def row(what: str, times: dict[str, list[float]], unit: float, unit_name: str) -> str:
    """Median decides; the minimum is shown too, being least disturbed by other load."""
    pipe, shm = statistics.median(times["pipe"]), statistics.median(times["shm"])
    winner = "pipe" if pipe <= shm else "shm"
    ratio = max(pipe, shm) / min(pipe, shm)
    cells = [
        f"{statistics.median(v) / unit:.2f} {unit_name} (min {min(v) / unit:.2f})"
        for v in (times["pipe"], times["shm"])
    ]
    default = "shm" if pipe > shm * SHM_MUST_WIN_BY else "pipe"
    return f"| {what} | {cells[0]} | {cells[1]} | {winner} ({ratio:.2f}x) | {default} |"


def measure(rounds: int, capacity: int) -> list[str]:
    lines = [
        "| case | pipe: median (min) | shm: median (min) | faster by median | default |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, frames, payload in TRANSPORT_CASES:
        medians = interleaved(
            rounds, partial(transport_once, frames=frames, payload=payload, capacity=capacity)
        )
        lines.append(row(f"transport: {name}", medians, 1e-3, "ms"))
        print(lines[-1], flush=True)
    with tempfile.TemporaryDirectory(prefix="channel-bench-") as tmp:
        projects = {
            "pytest: 300 trivial tests": SMALL_PROJECT,
            "pytest: 4 tests printing 10 MB each": LARGE_PROJECT.format(megabytes=10),
            "pytest: 4 tests printing 100 MB each": LARGE_PROJECT.format(megabytes=100),
        }
        for index, (name, source) in enumerate(projects.items()):
            root = Path(tmp) / f"p{index}"
            root.mkdir()
            (root / "pytest.ini").write_text("[pytest]\n")
            (root / "test_bench.py").write_text(textwrap.dedent(source))
            medians = interleaved(rounds, partial(pytest_once, root))
            lines.append(row(name, medians, 1.0, "s"))
            print(lines[-1], flush=True)
    return lines


def write_section(table: list[str], rounds: int, capacity: int) -> None:
    machine = f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs"
    section = "\n".join(
        [
            START,
            "## Channels: pipe against shared memory",
            "",
            "`benchmarks/channel.py`: the forked backends' two channels, with real",
            "forks. *transport* rows time the broker's own `TargetSupervisor` reading",
            "a child that only streams frames (fork to last frame validated);",
            "*pytest* rows time whole `pytest -q` runs. Median of",
            f"{rounds} interleaved rounds (the minimum in brackets); ring of",
            f"{capacity // 1024} KiB;",
            f"{machine}, Python {platform.python_version()}.",
            "",
            *table,
            "",
            "`default`: shm only where its median beats pipe's by more than",
            f"{SHM_MUST_WIN_BY:.2f}x (closer rows flip between runs on this machine);",
            "otherwise pipe, the simpler channel that gives the target fewer",
            'descriptors. See "Channels" in `docs/backends.md`.',
            END,
        ]
    )
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=1024 * 1024, help="ring bytes")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    table = measure(args.rounds, args.capacity)
    if not args.no_write:
        write_section(table, args.rounds, args.capacity)


if __name__ == "__main__":
    main()
