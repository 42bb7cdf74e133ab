"""Why a target ended, in words: pure functions over a wait status and what was seen.

Kept free of OS calls so every case is a table test.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_isolate.supervision.result import FailureKind, TargetResult

if TYPE_CHECKING:
    from pytest_isolate.spec import IsolateSpec
    from pytest_isolate.wire.test_frames import TestRecord


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            value = count / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"


@dataclass(frozen=True)
class EndState:
    """The facts the broker gathered about a target that did not finish normally."""

    wait_status: int | None
    phase: str  # setup | call | teardown: the phase that was running
    timed_out: float | None = None  # the timeout, when it fired
    protocol_error: str | None = None
    mem_limit: int | None = None
    cpu_limit: float | None = None
    oom_killed: bool = False
    finished: bool = False  # the target said "done"


def describe_end(state: EndState) -> str | None:
    """One sentence for the report, or None when the target ended normally."""
    during = f"during {state.phase}"
    if state.protocol_error is not None:
        return f"target broke the protocol and was killed {during}: {state.protocol_error}"
    if state.timed_out is not None:
        return f"timed out after {state.timed_out:g} s and was killed {during}"
    status = state.wait_status
    if status is None:
        return f"target vanished without an exit status {during}"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if state.oom_killed:
            limit = f" (limit {format_bytes(state.mem_limit)})" if state.mem_limit else ""
            return f"killed by the OOM killer{limit} {during}"
        if number == signal.SIGXCPU and state.cpu_limit is not None:
            return f"exceeded its CPU limit of {state.cpu_limit:g} s {during}"
        if number == signal.SIGKILL and state.cpu_limit is not None:
            return (
                f"killed by signal 9 (SIGKILL) {during}; "
                f"probably exceeded its CPU limit of {state.cpu_limit:g} s"
            )
        if number == signal.SIGSYS:
            return f"killed by signal 31 (SIGSYS) {during}: a forbidden syscall"
        return f"killed by signal {number} ({signal_name(number)}) {during}"
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        if state.finished and code == 0:
            return None
        if not state.finished:
            return f"exited with status {code} {during}"
        return f"exited with status {code} after finishing"
    return f"ended with wait status {status} {during}"


def classify_end(state: EndState, setup_error: str | None) -> tuple[str | None, FailureKind | None]:
    """The failure sentence and its kind (crash, timeout, protocol), or (None, None)."""
    failure = describe_end(state)
    if setup_error is not None:
        failure = f"target could not be set up ({setup_error})"
    if failure is None:
        return None, None
    if state.timed_out is not None:
        return failure, "timeout"
    return failure, "protocol" if state.protocol_error else "crash"


def phase_after(reports_seen: list[str]) -> str:
    """The phase that was running, given the phases already reported."""
    for phase in ("setup", "call", "teardown"):
        if phase not in reports_seen:
            return phase
    return "teardown"


def result_of(
    record: TestRecord,
    spec: IsolateSpec,
    *,
    wait_status: int | None,
    timed_out: bool = False,
    protocol_error: str | None = None,
    oom_killed: bool = False,
    duration: float = 0.0,
) -> TargetResult:
    """What a target that ended produced: its record, and its end in words when not normal.

    Every kind of target ends here (forked, or a test's child in a spawned
    target), so a crash reads the same whichever backend ran it.
    """
    result = TargetResult.of_record(record, duration=duration)
    end = EndState(
        wait_status=wait_status,
        phase=phase_after(record.phases),
        timed_out=spec.timeout if timed_out else None,
        protocol_error=protocol_error,
        mem_limit=spec.mem_limit,
        cpu_limit=spec.cpu_limit,
        oom_killed=oom_killed,
        finished=record.finished,
    )
    result.failure, result.failure_kind = classify_end(end, record.setup_error)
    return result
