"""The broker's side of an agent: hello, start, then one ``run`` per test.

Transport-agnostic: any byte stream with ``sendall``, ``recv`` and
``fileno`` (a socket, a container's attached stream, a VM's serial port).
``recv`` may raise ``BlockingIOError`` when the readable fd held nothing for
us (a multiplexed stream that carried only stderr).

The agent is part of the target, so it is treated as hostile: each test gets
its own ``FrameDecoder`` (frame, byte and count caps), every report goes
through ``sanitize_report`` pinned to the test's node id, and the clock is
the broker's. Anything the agent gets wrong (a malformed frame, silence after
``kill``, the stream ending) makes the whole target dead: the caller throws
it away and makes a new one for the next test.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Callable
from typing import Any, Protocol

from pytest_isolate.spec import IsolateSpec
from pytest_isolate.supervision.outcome import phase_after, result_of
from pytest_isolate.supervision.output_relay import show_target_output
from pytest_isolate.supervision.result import FailureKind, TargetResult
from pytest_isolate.wire import agent_protocol as protocol
from pytest_isolate.wire.agent_protocol import Collected, Hello, RunRequest, StartRequest
from pytest_isolate.wire.frames import FrameDecoder, FrameLimits, ProtocolViolation, encode_frame
from pytest_isolate.wire.test_frames import TestFrameRecorder

READ_CHUNK = 256 * 1024
DEFAULT_KILL_GRACE = 5.0
HANDSHAKE_LIMITS = FrameLimits(
    max_frame_bytes=64 * 1024 * 1024, max_total_bytes=256 * 1024 * 1024, max_frames=16
)


class ByteStream(Protocol):
    def sendall(self, data: bytes, /) -> None: ...
    def recv(self, size: int, /) -> bytes: ...
    def fileno(self) -> int: ...


class AgentDead(Exception):
    """The agent is gone or broke the protocol; its target must be discarded."""


class _TestState:
    """One test's conversation: its frames' record, and how the agent said it ended."""

    def __init__(self, recorder: TestFrameRecorder) -> None:
        self.recorder = recorder
        self.record = recorder.record
        self.exited: protocol.Exited | None = None
        self.refused: str | None = None


class RunPolicy(Protocol):
    """A seccomp policy loaded by the agent in the test's child (``backends.spawned_policy``)."""

    def request(self) -> protocol.SeccompRequest | None: ...

    def apply(
        self, result: TargetResult, status: int, seccomp: protocol.SeccompOutcome | None
    ) -> None: ...


#: Seconds without a frame (the agent sends ``alive`` each second) before a
#: target is declared hung. Generous: a TCG guest under load is slow.
DEFAULT_SILENCE_LIMIT = 30.0


class AgentClient:
    """Talk to one agent over ``stream``.

    ``describe_stream_end`` is called when the stream ends unexpectedly and
    returns words for the report (for a container: its exit code, stderr tail).
    """

    def __init__(
        self,
        stream: ByteStream,
        *,
        kill_grace: float = DEFAULT_KILL_GRACE,
        describe_stream_end: Callable[[], str] | None = None,
        silence_limit: float = DEFAULT_SILENCE_LIMIT,
    ) -> None:
        self.stream = stream
        #: a running test's agent says ``alive`` every second; this much silence means
        #: the target itself is gone (a hung guest kernel, a frozen container)
        self.silence_limit = silence_limit
        self.kill_grace = kill_grace
        self.describe_stream_end = describe_stream_end or (lambda: "")
        self.dead: str | None = None
        self.project_root: str | None = None  # set by start()
        self.collected: Collected | None = None
        self._pending: list[dict[str, Any]] = []
        self._handshake = FrameDecoder(HANDSHAKE_LIMITS)

    # -- low level -------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        try:
            self.stream.sendall(encode_frame(message))
        except OSError as exc:
            raise self._die(f"the target's channel failed ({exc})") from None

    def _die(self, reason: str) -> AgentDead:
        self.dead = self.dead or reason
        return AgentDead(self.dead)

    def _receive(self, decoder: FrameDecoder, deadline: float | None) -> dict[str, Any] | None:
        """The next message, or None when ``deadline`` passed first."""
        while not self._pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            poller = select.poll()
            poller.register(self.stream.fileno(), select.POLLIN | select.POLLHUP)
            if not poller.poll(-1 if remaining is None else max(1, int(remaining * 1000))):
                continue
            try:
                data = self.stream.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                data = b""
            except OSError as exc:
                raise self._die(f"the target's channel failed ({exc})") from None
            if not data:
                detail = self.describe_stream_end()
                raise self._die("the target went away" + (f": {detail}" if detail else ""))
            try:
                self._pending.extend(decoder.feed(data))
            except ProtocolViolation as exc:
                raise self._die(f"the target broke the protocol: {exc}") from None
        return self._pending.pop(0)

    def _expect(self, kind: str, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        message = self._receive(self._handshake, deadline)
        if message is None:
            raise self._die(f"the agent did not send {kind!r} within {timeout:g} s")
        return message

    # -- the conversation --------------------------------------------------
    def hello(self, timeout: float | None = 120.0) -> Hello:
        try:
            return protocol.parse_hello(self._expect("hello", timeout))
        except ProtocolViolation as exc:
            raise self._die(f"the agent's hello is malformed: {exc}") from None

    def start(self, request: StartRequest, timeout: float | None = 600.0) -> Collected:
        self.send_start(request)
        return self.collection(timeout)

    def send_start(self, request: StartRequest) -> None:
        """Ask the agent to collect; it reads this after its hello, whenever it was sent."""
        # The agent sees the project at the broker's path (bind mount, 9p share or
        # a copy made there): its coverage may name files below it and nowhere else.
        self.project_root = request.rootdir
        self.send(request.to_message())

    def collection(self, timeout: float | None = 600.0) -> Collected:
        """The agent's answer to ``send_start``: what it collected."""
        try:
            self.collected = protocol.parse_collected(self._expect("collected", timeout))
        except ProtocolViolation as exc:
            raise self._die(f"the agent's collection answer is malformed: {exc}") from None
        return self.collected

    def shutdown(self) -> None:
        if self.dead is None:
            with contextlib.suppress(AgentDead):
                self.send({"type": "shutdown"})

    def run(
        self,
        nodeid: str,
        spec: IsolateSpec,
        limits: FrameLimits,
        policy: RunPolicy | None = None,
        execution_count: int | None = None,
    ) -> TargetResult:
        """Run one collected test in a fresh fork inside the target (under ``policy``)."""
        if self.dead is not None:
            return TargetResult(failure=f"target is dead: {self.dead}", failure_kind="engine")
        seccomp = None if policy is None else policy.request()
        request = RunRequest(
            nodeid, spec.mem_limit, spec.cpu_limit, spec.env, seccomp, execution_count
        )
        state = _TestState(TestFrameRecorder(nodeid, self.project_root))
        started = time.monotonic()
        timed_out = False
        try:
            self.send(request.to_message())
            decoder = FrameDecoder(limits)
            deadline = None if spec.timeout is None else started + spec.timeout
            while state.exited is None and state.refused is None:
                silent_after = time.monotonic() + self.silence_limit
                wait_until = silent_after if deadline is None else min(deadline, silent_after)
                message = self._receive(decoder, wait_until)
                if message is None:
                    if deadline is None or time.monotonic() < deadline:
                        raise self._die(
                            f"the target stopped answering for {self.silence_limit:g} s "
                            "(a hung guest kernel, or a frozen container)"
                        )
                    if timed_out:
                        raise self._die(f"did not answer a kill within {self.kill_grace:g} s")
                    timed_out = True
                    self.send({"type": "kill"})
                    deadline = time.monotonic() + self.kill_grace
                    continue
                if message["type"] == "alive":  # the agent's heartbeat while the test runs
                    continue
                self._handle(message, state)
        except AgentDead as exc:
            return self._dead_result(state, spec, timed_out, str(exc), started)
        except ProtocolViolation as exc:
            self._die(f"the target broke the protocol: {exc}")
            return self._dead_result(state, spec, timed_out, str(self.dead), started)
        result = self._result(state, spec, timed_out, started)
        if policy is not None and state.exited is not None:
            policy.apply(result, state.exited.status, state.exited.seccomp)
        return result

    def _handle(self, message: dict[str, Any], state: _TestState) -> None:
        kind = message["type"]
        if kind == "exited":
            state.exited = protocol.parse_exited(message)
        elif kind == "refused":
            state.refused = protocol.parse_refused(message)
        elif kind == protocol.OUTPUT_FRAME:  # the test's own output, under -s
            show_target_output(protocol.parse_output(message))
        else:
            state.recorder.handle(message)

    # -- results ---------------------------------------------------------
    def _result(
        self, state: _TestState, spec: IsolateSpec, timed_out: bool, started: float
    ) -> TargetResult:
        duration = time.monotonic() - started
        if state.refused is not None:
            return TargetResult.of_record(
                state.record,
                duration=duration,
                failure=f"the target could not run this test: {state.refused}",
                failure_kind="engine",
            )
        exited = state.exited
        assert exited is not None
        result = result_of(
            state.record,
            spec,
            wait_status=exited.status,
            timed_out=timed_out,
            protocol_error=exited.violation,
            oom_killed=exited.oom_killed,
            duration=duration,
        )
        if result.failure is not None:
            result.sections.extend(exited.sections)
        return result

    def _dead_result(
        self, state: _TestState, spec: IsolateSpec, timed_out: bool, reason: str, started: float
    ) -> TargetResult:
        phase = phase_after(state.record.phases)
        kind: FailureKind
        if timed_out:
            failure = (
                f"timed out after {spec.timeout:g} s during {phase}; "
                f"the target {reason} and was destroyed"
            )
            kind = "timeout"
        else:
            failure = f"{reason} during {phase}"
            kind = "protocol" if "protocol" in reason else "engine"
        return TargetResult.of_record(
            state.record,
            failure=failure,
            failure_kind=kind,
            duration=time.monotonic() - started,
        )
