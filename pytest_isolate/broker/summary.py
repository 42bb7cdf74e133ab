"""One line per backend at the end of the run: tests, time per test, crashes, timeouts."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_isolate.backends.base import TargetResult


@dataclass
class BackendStats:
    tests: int = 0
    seconds: float = 0.0
    crashes: int = 0
    timeouts: int = 0
    violations: int = 0  # forbidden syscalls
    protocol: int = 0  # a target that broke the frame protocol (hostile or corrupt output)
    not_run: int = 0  # no target: its engine, image or kernel failed, or the options were bad


class RunStats:
    def __init__(self) -> None:
        self.by_label: dict[str, BackendStats] = {}

    def record(self, label: str, result: TargetResult) -> None:
        stats = self.by_label.setdefault(label, BackendStats())
        stats.tests += 1
        stats.seconds += result.duration
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
            parts = [f"{s.tests} test{'s' if s.tests != 1 else ''}", f"{per_test:.1f} ms/test"]
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
            out.append(f"isolate {label}: " + ", ".join(parts))
        return out
