"""The broker's side of one running target: read frames, enforce the clock, collect the end.

Reads with ``poll`` on the channel and on a pidfd of the target, so the
broker never blocks on a target that stops talking, never uses SIGALRM, and
learns of the target's exit at once. Every frame goes through the decoder's
caps and the report allow-list; the first violation kills the target.

With the ``shm`` channel the frames arrive through a shared ring
(``wire/shm.py``) polled by its eventfd, and the socket stays for the
handshake (passed descriptors) and for EOF; both streams share the caps.

``run(end_at_done=True)`` returns as soon as the target said ``done`` after
its teardown report, if it is all its process tree holds: its record is
whole, and what is left (its exit, the tree's emptying, reaping) is done by
:meth:`TargetSupervisor.settle` while the broker reports the test. A test
that left a process behind takes the usual way, which kills it before the
report is written.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_isolate.supervision.outcome import EndState, describe_end
from pytest_isolate.supervision.output_relay import OutputRelay
from pytest_isolate.wire.frames import FrameDecoder, FrameLimits, ProtocolViolation
from pytest_isolate.wire.shm import RingReader
from pytest_isolate.wire.test_frames import Handler, TestFrameRecorder, TestRecord

READ_CHUNK = 256 * 1024
MAX_PASSED_FDS = 4
MSG_CMSG_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)
DRAIN_AFTER_EXIT = 0.5


@dataclass
class Supervision:
    """What the broker saw of one target: its test's record, and how it ended."""

    record: TestRecord = field(default_factory=TestRecord)
    wait_status: int | None = None
    timed_out: bool = False
    protocol_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0
    #: ``run`` returned at ``done``: the exit is still owed, and ``settle`` collects it.
    lingering: bool = False


class TargetSupervisor:
    """Supervise one target process (``pid``) talking on ``channel``."""

    def __init__(
        self,
        pid: int,
        channel: socket.socket,
        nodeid: str,
        timeout: float | None,
        limits: FrameLimits,
        kill_tree: Callable[[], None],
        kill_grace: float = 1.0,
        alone: Callable[[], bool] = lambda: False,
        extra_handlers: dict[str, Handler] | None = None,
        ring: RingReader | None = None,
        project_root: str | None = None,
        output: OutputRelay | None = None,
    ) -> None:
        self.pid = pid
        self.channel = channel
        self.nodeid = nodeid
        self.timeout = timeout
        self.decoder = FrameDecoder(limits)
        self.ring = ring
        self.ring_decoder = FrameDecoder(limits)
        self.kill_tree = kill_tree
        self.kill_grace = kill_grace
        #: Is the target all its tree holds? Only then may ``run`` end at ``done``:
        #: what a test started is dead before its report is written.
        self.alone = alone
        self.output = output  # the target's own stdout and stderr, under -s
        self.recorder = TestFrameRecorder(nodeid, project_root, extra_handlers)
        self.state = Supervision(self.recorder.record)
        self.received_fds: list[int] = []
        self._pidfd = -1

    def take_fds(self) -> list[int]:
        """Descriptors passed with the frames read so far (SCM_RIGHTS); the caller owns them."""
        fds, self.received_fds = self.received_fds, []
        return fds

    # -- frames ---------------------------------------------------------
    def _read(self) -> bool:
        """Read what is there; False at end of stream."""
        try:
            data, ancillary, _flags, _addr = self.channel.recvmsg(
                READ_CHUNK, socket.CMSG_SPACE(MAX_PASSED_FDS * 4), MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return True
        except ConnectionResetError:
            return False
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(payload) // 4
                self.received_fds.extend(
                    int.from_bytes(payload[i * 4 : i * 4 + 4], sys.byteorder) for i in range(count)
                )
        if len(self.received_fds) > MAX_PASSED_FDS:
            raise ProtocolViolation("passed more descriptors than any handshake needs")
        if not data:
            if self.decoder.pending:
                raise ProtocolViolation("closed the channel in the middle of a frame")
            return False
        for message in self.decoder.feed(data):
            self.recorder.handle(message)
        return True

    def _read_ring(self) -> None:
        """Handle the frames in what the ring holds now (a private copy, checked once)."""
        if self.ring is None:
            return
        data = self.ring.read_available()
        if not data:
            return
        limits = self.decoder.limits
        if (
            self.decoder.total_bytes + self.ring_decoder.total_bytes + len(data)
            > limits.max_total_bytes
        ):
            raise ProtocolViolation(f"sent more than {limits.max_total_bytes} bytes in one test")
        for message in self.ring_decoder.feed(data):
            if self.decoder.frames + self.ring_decoder.frames > limits.max_frames:
                raise ProtocolViolation(f"sent more than {limits.max_frames} frames")
            self.recorder.handle(message)

    def _drain_ring(self) -> None:
        """After the end: what the target published without signalling, or after its EOF."""
        if self.ring is None:
            return
        self._read_ring()
        if self.ring_decoder.pending:
            raise ProtocolViolation("left an unfinished frame in the shared ring")

    # -- lifecycle ------------------------------------------------------
    def _terminate(self) -> None:
        """SIGTERM first (the target dumps its traceback), SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if self._wait_exit(self.kill_grace) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.state.wait_status = status
                return status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)

    def run(self, end_at_done: bool = False) -> Supervision:
        """Read frames until the target is gone (or, with ``end_at_done``, said ``done``)."""
        state = self.state
        deadline = None if self.timeout is None else state.started + self.timeout
        self._pidfd = pidfd = os.pidfd_open(self.pid)
        self.channel.setblocking(False)
        poller = select.poll()
        poller.register(self.channel.fileno(), select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        if self.ring is not None:
            poller.register(self.ring.fileno(), select.POLLIN)
        output_open = self.output is not None
        if self.output is not None:
            poller.register(self.output.fileno(), select.POLLIN)
        channel_open = True
        exited = False
        try:
            while channel_open or not exited:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    state.timed_out = True
                    self._terminate()
                    break
                wait_ms = -1 if remaining is None else max(1, int(remaining * 1000))
                if exited:  # the process is gone; descendants may still hold the channel
                    wait_ms = int(DRAIN_AFTER_EXIT * 1000)
                events = poller.poll(wait_ms)
                if not events and exited:
                    break
                for fd, _event in events:
                    if fd == pidfd and not exited:
                        exited = True
                        poller.unregister(pidfd)
                        self._wait_exit(1.0)
                    elif fd == self.channel.fileno() and channel_open:
                        channel_open = self._read()
                        if not channel_open:
                            poller.unregister(self.channel.fileno())
                    elif self.ring is not None and fd == self.ring.fileno():
                        self._read_ring()
                    elif self.output is not None and fd == self.output.fileno() and output_open:
                        output_open = self.output.pump()
                        if not output_open:
                            poller.unregister(self.output.fileno())
                if end_at_done and state.record.finished and not exited:
                    end_at_done = False  # asked once: what it started dies with the tree
                    if "teardown" in state.record.phases and self.alone():
                        self._drain_ring()
                        state.lingering = True
                        break
            if not state.timed_out:
                self._drain_ring()
        except ProtocolViolation as exc:
            state.lingering = False
            state.protocol_error = str(exc)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        except BaseException:
            state.lingering = False
            raise
        finally:
            if state.lingering:
                state.ended = time.monotonic()
            else:
                self._end()
        return state

    def settle(self, grace: float) -> str | None:
        """After ``run`` returned at ``done``: collect the exit the target owes, end the rest.

        The target has nothing left to do but exit, and gets ``grace``
        seconds for it; then its whole tree is killed and reaped, as at the
        end of ``run``. Returns why its end was not normal (a status other
        than 0, a signal, no exit in time), or None.
        """
        if not self.state.lingering:
            return None
        self.state.lingering = False
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        exited = bool(poller.poll(max(0, int(grace * 1000))))
        if exited:
            self._wait_exit(1.0)
        self._end()
        if not exited:
            return f"did not exit within {grace:g} s of finishing, and was killed"
        # The words of a test's own end, as without reporting at done.
        return describe_end(EndState(self.state.wait_status, "teardown", finished=True))

    def _end(self) -> None:
        """The target is gone, or is killed now: kill its tree, reap it, close our ends."""
        state = self.state
        try:
            os.close(self._pidfd)
            self.kill_tree()
            if self.output is not None:
                self.output.drain()
            if state.wait_status is None:
                self._wait_exit(5.0)
        finally:
            self.channel.close()
            for fd in self.take_fds():
                with contextlib.suppress(OSError):
                    os.close(fd)
            if not state.ended:
                state.ended = time.monotonic()
