"""A test's frames: their types, their constructors, and the one receiver that records them.

A target running one test sends ``report`` frames (pytest's serialized
reports), ``warning`` frames, ``coverage`` frames, ``examples`` frames
(hypothesis's database changes), a ``benchmark`` frame (pytest-benchmark's
timings), then ``done``; a target
whose restriction steps failed sends ``setup-error`` instead. The forked
targets' supervisor and the spawned targets' agent client both feed what
they decode to a :class:`TestFrameRecorder`, which checks each frame (the
report allow-list pinned to the test's node id, the warning's fields, the
coverage frame's bounds and project, the examples' names and sizes, the
benchmark's texts and timings) and keeps the result in a
:class:`TestRecord`. Dispatch goes through one table, so a frame type is
handled the same way whichever backend carried it.

Runs in targets too (the constructors, the type set): Python 3.9 syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping

from pytest_isolate.wire.benchmark_frames import (
    BENCHMARK_FRAME,
    BenchmarkRecord,
    parse_benchmark_frame,
)
from pytest_isolate.wire.coverage_frames import COVERAGE_FRAME, CoverageFrame, parse_coverage_frame
from pytest_isolate.wire.example_frames import (
    EXAMPLES_FRAME,
    MAX_CHANGES_PER_TEST,
    ExampleChange,
    parse_example_frame,
)
from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.kept_file_frames import (
    KEPT_FILE_FRAME,
    KEPT_FILES_END,
    MAX_BYTES,
    MAX_FILES,
    KeptFile,
    parse_kept_file,
    parse_kept_files_end,
)
from pytest_isolate.wire.reports import sanitize_report
from pytest_isolate.wire.text import escape_controls

REPORT_FRAME = "report"
WARNING_FRAME = "warning"
#: The test asked to end the run (``pytest.exit()``, or ``q`` in the debugger).
EXIT_FRAME = "exit"
DONE_FRAME = "done"
SETUP_ERROR_FRAME = "setup-error"

#: Frames a test's target may send; anything else is the target breaking the protocol.
TEST_FRAME_TYPES = frozenset(
    {
        REPORT_FRAME,
        WARNING_FRAME,
        COVERAGE_FRAME,
        EXAMPLES_FRAME,
        BENCHMARK_FRAME,
        EXIT_FRAME,
        KEPT_FILE_FRAME,
        KEPT_FILES_END,
        SETUP_ERROR_FRAME,
        DONE_FRAME,
    }
)

MAX_WARNING_TEXT = 64 * 1024
MAX_SETUP_ERROR = 2000
_WARNING_FIELDS = {"message": str, "category": str, "filename": str, "lineno": int, "when": str}

Handler = Callable[[Dict[str, Any]], None]


# -- constructors (the target's side) -------------------------------------------
def report_frame(report: dict[str, Any]) -> dict[str, Any]:
    return {"type": REPORT_FRAME, "report": report}


def warning_frame(
    message: str, category: str, filename: str, lineno: int, when: str
) -> dict[str, Any]:
    return {
        "type": WARNING_FRAME,
        "message": message,
        "category": category,
        "filename": filename,
        "lineno": lineno,
        "when": when,
    }


def exit_frame(reason: str, returncode: int | None) -> dict[str, Any]:
    return {"type": EXIT_FRAME, "reason": reason[:MAX_SETUP_ERROR], "returncode": returncode}


def done_frame(pid: int) -> dict[str, Any]:
    return {"type": DONE_FRAME, "pid": pid}


def setup_error_frame(text: str) -> dict[str, Any]:
    return {"type": SETUP_ERROR_FRAME, "message": text[:MAX_SETUP_ERROR]}


# -- the receiver (the broker's side) -------------------------------------------
def validate_warning(message: Mapping[str, Any]) -> dict[str, Any]:
    """The warning's five fields, typed and bounded; anything else breaks the protocol."""
    clean: dict[str, Any] = {}
    for name, kind in _WARNING_FIELDS.items():
        value = message.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolViolation(f"warning field {name} is not {kind.__name__}")
        if isinstance(value, str):
            if len(value) > MAX_WARNING_TEXT + 64:
                raise ProtocolViolation(f"warning field {name} is too long")
            value = escape_controls(value)
        clean[name] = value
    return clean


@dataclass
class TestRecord:
    """What a target said about one test, every frame checked."""

    __test__ = False  # not a pytest test class

    reports: List[Dict[str, Any]] = field(default_factory=list)
    warnings: List[Dict[str, Any]] = field(default_factory=list)
    coverage: List[CoverageFrame] = field(default_factory=list)
    examples: List[ExampleChange] = field(default_factory=list)
    benchmark: BenchmarkRecord | None = None
    #: ``pytest.exit()`` in the target: (reason, return code) for the broker to end the run.
    exit_request: tuple[str, int | None] | None = None
    #: a failing test's ``tmp_path`` files, and what the target left out of them
    kept_files: List[KeptFile] = field(default_factory=list)
    kept_left_out: List[str] | None = None
    finished: bool = False
    setup_error: str | None = None

    @property
    def phases(self) -> list[str]:
        """The phases reported so far (subtest reports are not phases)."""
        return [r["when"] for r in self.reports if r.get("_report_type") != "SubTestReport"]


class TestFrameRecorder:
    """Check one test's frames and record them; raise ``ProtocolViolation`` on the first bad one.

    ``project_root`` bounds the files coverage may name (None: the target's
    project is not known, and coverage frames are refused). ``extra`` adds a
    transport's own frame types (the forked targets' seccomp handover).
    """

    __test__ = False

    def __init__(
        self,
        nodeid: str,
        project_root: str | None,
        extra: Mapping[str, Handler] | None = None,
    ) -> None:
        self.nodeid = nodeid
        self.project_root = project_root
        self.record = TestRecord()
        self._table: dict[str, Handler] = {
            REPORT_FRAME: self._report,
            WARNING_FRAME: self._warning,
            COVERAGE_FRAME: self._coverage,
            EXAMPLES_FRAME: self._examples,
            BENCHMARK_FRAME: self._benchmark,
            EXIT_FRAME: self._exit,
            KEPT_FILE_FRAME: self._kept_file,
            KEPT_FILES_END: self._kept_files_end,
            DONE_FRAME: self._done,
            SETUP_ERROR_FRAME: self._setup_error,
        }
        self._extra = dict(extra or {})

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.record.finished:
            raise ProtocolViolation(f"sent a {kind[:40]!r} frame after 'done'")
        handler = self._table.get(kind) or self._extra.get(kind)
        if handler is None:
            raise ProtocolViolation(f"sent an unknown frame type {kind[:40]!r}")
        handler(message)

    def _report(self, message: dict[str, Any]) -> None:
        self.record.reports.append(sanitize_report(message.get("report"), self.nodeid))

    def _warning(self, message: dict[str, Any]) -> None:
        self.record.warnings.append(validate_warning(message))

    def _coverage(self, message: dict[str, Any]) -> None:
        frame = parse_coverage_frame(message).check_within(self.project_root)
        self.record.coverage.append(frame)

    def _examples(self, message: dict[str, Any]) -> None:
        if len(self.record.examples) >= MAX_CHANGES_PER_TEST:
            raise ProtocolViolation(
                f"examples: more than {MAX_CHANGES_PER_TEST} hypothesis database changes "
                "in one test"
            )
        self.record.examples.append(parse_example_frame(message))

    def _benchmark(self, message: dict[str, Any]) -> None:
        if self.record.benchmark is not None:  # pytest-benchmark allows one per test
            raise ProtocolViolation("benchmark: a second benchmark frame for one test")
        self.record.benchmark = parse_benchmark_frame(message)

    def _exit(self, message: dict[str, Any]) -> None:
        reason, code = message.get("reason"), message.get("returncode")
        if not isinstance(reason, str) or len(reason) > MAX_SETUP_ERROR:
            raise ProtocolViolation(f"exit: reason is not a text of at most {MAX_SETUP_ERROR}")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ProtocolViolation("exit: returncode is not an integer")
        if code is not None and not 0 <= code <= 255:
            raise ProtocolViolation("exit: returncode is not from 0 to 255")
        self.record.exit_request = (escape_controls(reason), code)

    def _kept_file(self, message: dict[str, Any]) -> None:
        kept = self.record.kept_files
        if self.record.kept_left_out is not None or len(kept) >= MAX_FILES:
            raise ProtocolViolation(f"kept-file: more than {MAX_FILES} files, or after their end")
        found = parse_kept_file(message)
        if sum(len(k.data) for k in kept) + len(found.data) > MAX_BYTES:
            raise ProtocolViolation(f"kept-file: more than {MAX_BYTES} bytes of files")
        kept.append(found)

    def _kept_files_end(self, message: dict[str, Any]) -> None:
        if self.record.kept_left_out is not None:
            raise ProtocolViolation("kept-files: said twice")
        self.record.kept_left_out = [escape_controls(t) for t in parse_kept_files_end(message)]

    def _done(self, message: dict[str, Any]) -> None:
        self.record.finished = True

    def _setup_error(self, message: dict[str, Any]) -> None:
        if self.record.reports:  # a restriction step fails before the first report
            raise ProtocolViolation("sent 'setup-error' after a report")
        text = message.get("message")
        self.record.setup_error = (
            text[:MAX_SETUP_ERROR] if isinstance(text, str) else "unknown error"
        )
