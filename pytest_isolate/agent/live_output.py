"""A test's own output under ``-s``, sent to the broker as it comes, from inside a target.

When the broker's run does not capture output at the descriptor level, a
plain test writes to the terminal. A container's or guest's test cannot (and
must not: its bytes would reach the terminal unescaped), so its standard
output and error are a pipe that the agent reads while it relays the test's
frames, sending ``output`` frames (``wire.agent_protocol``); the broker shows
them escaped (``supervision.output_relay``). A flood is cut after
``LIMIT`` bytes a test, with one line that says so: nothing is kept here.

Runs in targets: Python 3.9 syntax.
"""

from __future__ import annotations

import codecs
import contextlib
import os
from typing import Any, Callable, Dict

from pytest_isolate.wire.agent_protocol import MAX_OUTPUT_TEXT, output_frame

#: Output relayed per test; the rest is dropped with a note.
LIMIT = 16 * 1024 * 1024


class LiveOutput:
    """One test's stdout and stderr pipe, read by the agent."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.read_fd, False)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._sent = 0
        self._cut = False

    def after_fork(self) -> None:
        """In the agent: only the child writes."""
        os.close(self.write_fd)
        self.write_fd = -1

    def pump(self, send: Callable[[Dict[str, Any]], None]) -> bool:
        """Send what the pipe holds now; False once every writer closed it."""
        try:
            data = os.read(self.read_fd, MAX_OUTPUT_TEXT // 4)
        except BlockingIOError:
            return True
        self._send(send, self._decoder.decode(data, final=not data))
        return bool(data)

    def drain(self, send: Callable[[Dict[str, Any]], None]) -> None:
        """After the child: whatever is left in the pipe, without waiting for writers."""
        while _readable(self.read_fd) and self.pump(send):
            pass

    def _send(self, send: Callable[[Dict[str, Any]], None], text: str) -> None:
        if not text or self._cut:
            return
        if self._sent + len(text) > LIMIT:
            self._cut = True
            text = f"\n[pytest-isolate: the test's output beyond {LIMIT} bytes is not shown]\n"
        self._sent += len(text)
        send(output_frame(text))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1


def _readable(fd: int) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)
