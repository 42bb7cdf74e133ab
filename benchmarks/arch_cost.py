"""What another architecture costs: containers (arm64 under qemu-user, i386 natively) and guests.

The same 300 trivial tests as ``run.py``, every one in a container of the
machine's architecture, of arm64 and of i386 (``--isolate-matrix=container@ARCH``),
then in a guest of the machine's architecture and an arm64 guest
(``--isolate-matrix=vm@arm64``), plain pytest beside them; rounds interleave
the rows. As in ``gvisor_cost.py``, the first test pays for its target's
start and each later test pays (median wall time - plain's - start) / 300.

Usage::

    python benchmarks/arch_cost.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/arch_cost.py --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gvisor_cost import measure_rows
from run import DOCS, TESTS, machine, replace_section

ROWS = {
    "plain": ("--no-isolate",),
    "amd64 (native)": ("--isolate-matrix=container",),
    "i386 (native, 32-bit)": ("--isolate-matrix=container@i386",),
    "arm64 (qemu-user)": ("--isolate-matrix=container@arm64",),
    "vm, amd64 (TCG, restored)": ("--isolate-matrix=vm",),
    "vm, arm64 (TCG, booted)": ("--isolate-matrix=vm@arm64",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    walls, starts = measure_rows(ROWS, args.rounds)
    plain = statistics.median(walls["plain"])
    native = {"container": "amd64 (native)", "vm": "vm, amd64 (TCG, restored)"}
    warm = {
        name: (statistics.median(walls[name]) - plain - statistics.median(starts[name])) / TESTS
        for name in ROWS
        if name != "plain"
    }
    lines = [
        "| target | wall time, 300 tests | first test: the target's start | "
        "each warm test, added | / the machine's own |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in warm:
        lines.append(
            f"| {name} | {statistics.median(walls[name]):.2f} s | "
            f"{statistics.median(starts[name]):.2f} s | {warm[name] * 1000:.1f} ms "
            f"| {warm[name] / warm[native['vm' if name.startswith('vm') else 'container']]:.2f} |"
        )
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## Other architectures\n\n"
            f"`python benchmarks/arch_cost.py`: {TESTS} trivial tests, every one in a "
            f"container or a guest, {args.rounds} rounds, medians; plain pytest {plain:.2f} s. "
            "An arm64 container runs under Debian's qemu-user-static (TCG, no accelerator); "
            "i386 runs natively on the 64-bit kernel. The arm64 guest boots Debian's arm64 "
            "kernel in qemu-system-aarch64 (TCG); the x86-64 guest is restored from its "
            "saved state. The targets were a warm arm64 container test under 100 ms and an "
            "arm64 guest ready in under 60 s.\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines)
        )
        replace_section(DOCS, "arch", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
