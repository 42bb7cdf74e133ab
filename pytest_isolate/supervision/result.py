"""What one target produced for one test: the value every backend hands the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pytest_isolate.wire.benchmark_frames import BenchmarkRecord
    from pytest_isolate.wire.coverage_frames import CoverageFrame
    from pytest_isolate.wire.example_frames import ExampleChange
    from pytest_isolate.wire.kept_file_frames import KeptFile
    from pytest_isolate.wire.test_frames import TestRecord

#: Why a target did not finish normally; the broker words the report and the
#: summary after it.
#:
#: - ``crash``: it died (a signal, an exit, a memory or CPU limit) before ``done``;
#: - ``timeout``: the broker's clock ran out and it was killed;
#: - ``protocol``: it broke the frame protocol (hostile or corrupt output);
#: - ``violation``: a seccomp filter stopped a forbidden system call;
#: - ``violation-reported``: a violation already shown in the test's own report;
#: - ``engine``: the engine under it failed (a container, a guest, an agent gone);
#: - ``usage``: the test's isolation options are wrong (named in the failure);
#: - ``unavailable``: the backend cannot run on this machine (the run asked to fail);
#: - ``skip``: the backend cannot run here and the run asked to skip such tests.
FailureKind = Literal[
    "crash",
    "timeout",
    "protocol",
    "violation",
    "violation-reported",
    "engine",
    "usage",
    "unavailable",
    "skip",
]


@dataclass
class TargetResult:
    """What one target produced for one test, in the order it happened.

    ``reports`` are sanitized report dicts (see ``wire.reports``), to be
    turned into report objects by the broker. ``failure`` is set when the
    target did not finish normally, in words ("killed by signal 11 (SIGSEGV)
    during call"), and ``failure_kind`` says which way; the broker then
    completes the missing phases.
    """

    reports: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[CoverageFrame] = field(default_factory=list)  # checked, not yet recorded
    examples: list[ExampleChange] = field(default_factory=list)  # checked, not yet saved
    benchmark: BenchmarkRecord | None = None  # checked, not yet added to pytest-benchmark's
    #: The test ended the run (``pytest.exit()``, ``q`` in pdb): reason and return code.
    exit_request: tuple[str, int | None] | None = None
    #: A failing test's ``tmp_path`` files from a private target, and what it left out.
    kept_files: list[KeptFile] = field(default_factory=list)
    kept_left_out: list[str] | None = None
    failure: str | None = None
    failure_kind: FailureKind | None = None
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: Seconds the test itself took in the target: its protocol, not its target's start.
    duration: float = 0.0
    #: Seconds this test waited for a new spawned target (a container, a guest) to
    #: start and collect; 0 when it ran in one already started, or in a fork.
    startup: float = 0.0

    @classmethod
    def of_record(
        cls,
        record: TestRecord,
        *,
        duration: float = 0.0,
        failure: str | None = None,
        failure_kind: FailureKind | None = None,
    ) -> TargetResult:
        """What a target sent about its test (every frame checked on arrival), and its end."""
        return cls(
            reports=record.reports,
            warnings=record.warnings,
            coverage=record.coverage,
            examples=record.examples,
            benchmark=record.benchmark,
            exit_request=record.exit_request,
            kept_files=record.kept_files,
            kept_left_out=record.kept_left_out,
            duration=duration,
            failure=failure,
            failure_kind=failure_kind,
        )
