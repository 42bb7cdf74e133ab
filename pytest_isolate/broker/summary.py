"""One line per backend at the end of the run: tests, time per test, crashes, timeouts.

Under pytest-xdist each worker counts its own tests and hands its figures to
the controller through xdist's ``workeroutput``; the controller adds them up
and prints the one summary of the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pytest_isolate.backends.base import TargetResult
from pytest_isolate.supervision.context import LateExit


@dataclass
class BackendStats:
    tests: int = 0
    seconds: float = 0.0
    crashes: int = 0
    timeouts: int = 0
    violations: int = 0  # forbidden syscalls
    protocol: int = 0  # a target that broke the frame protocol (hostile or corrupt output)
    starts: int = 0  # spawned targets started for these tests
    start_seconds: float = 0.0
    not_run: int = 0  # no target: its engine, image or kernel failed, or the options were bad
    late_exits: int = 0  # a target that ended badly after its test had been reported


#: How to get a late exit reported as its test's failure instead.
LATE_EXIT_HINT = "--isolate-no-prefork reports such an end as the test's failure"


class RunStats:
    def __init__(self) -> None:
        self.by_label: dict[str, BackendStats] = {}
        #: This process's late exits, named (a worker's only reach the controller as counts).
        self.late_exits: list[LateExit] = []

    def add_late_exits(self, late: list[LateExit]) -> None:
        for each in late:
            self.by_label.setdefault(each.label, BackendStats()).late_exits += 1
        self.late_exits.extend(late)

    def to_data(self) -> dict[str, dict[str, float]]:
        """Plain data for xdist's ``workeroutput`` (sent with execnet: no objects)."""
        return {label: asdict(stats) for label, stats in self.by_label.items()}

    def add_data(self, data: Any) -> None:
        """Add a worker's figures; anything not shaped like ``to_data`` output is ignored."""
        if not isinstance(data, dict):
            return
        names = {f.name: f.type for f in fields(BackendStats)}
        for label, values in data.items():
            if not isinstance(label, str) or not isinstance(values, dict):
                continue
            stats = self.by_label.setdefault(label, BackendStats())
            for name, value in values.items():
                if (
                    name in names
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                ):
                    setattr(stats, name, getattr(stats, name) + value)

    def record(self, label: str, result: TargetResult) -> None:
        stats = self.by_label.setdefault(label, BackendStats())
        stats.tests += 1
        stats.seconds += result.duration
        if result.startup:
            stats.starts += 1
            stats.start_seconds += result.startup
        if result.failure_kind == "crash":
            stats.crashes += 1
        elif result.failure_kind == "timeout":
            stats.timeouts += 1
        elif result.failure_kind == "violation":
            stats.violations += 1
        elif result.failure_kind == "protocol":
            stats.protocol += 1
        elif result.failure_kind in ("engine", "usage", "unavailable"):
            stats.not_run += 1

    def lines(self) -> list[str]:
        out = []
        for label in sorted(self.by_label):
            s = self.by_label[label]
            per_test = s.seconds / s.tests * 1000 if s.tests else 0.0
            parts = [
                f"{s.tests} test{'s' if s.tests != 1 else ''}",
                f"{per_test:.1f} ms/test in the target",
            ]
            if s.starts:
                noun = "target" if s.starts == 1 else "targets"
                parts.append(f"{s.starts} {noun} started in {s.start_seconds:.1f} s")
            parts.append(f"{s.crashes} crashed")
            parts.append(f"{s.timeouts} timed out")
            if s.violations:
                parts.append(f"{s.violations} attempted forbidden syscalls")
            if s.protocol:
                parts.append(f"{s.protocol} broke the protocol")
            if s.not_run:
                parts.append(
                    f"{s.not_run} could not run "
                    "(engine, image, kernel or options: see their reports)"
                )
            if s.late_exits:
                parts.append(f"{s.late_exits} ended badly after finishing ({LATE_EXIT_HINT})")
            out.append(f"isolate {label}: " + ", ".join(parts))
        out += [
            f"isolate {late.label}: the target of {late.nodeid} {late.why}"
            for late in self.late_exits
        ]
        return out
