"""A target's own terminal output, when pytest does not capture it: through the broker.

Under ``-s`` (or ``--capture=sys``) a plain test writes to the terminal. A
forked target would inherit the terminal itself and could write anything to
it: escape sequences that retitle or clear it, forged result lines. Instead
its standard output and error are a pipe, and the broker copies what comes
out of it to its own standard output as it comes, each control character
shown escaped (``wire.text``). Nothing is kept: a flood streams through.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import sys
from typing import TextIO

from pytest_isolate.wire.text import neutralise

READ_CHUNK = 64 * 1024
#: Text per write is already bounded by READ_CHUNK; neutralise must not cut it.
NO_CUT = 4 * READ_CHUNK


def captures_fds(capture_method: str | None) -> bool:
    """Does pytest capture this run's output at the descriptor level (its default)?"""
    return capture_method == "fd"


def show_target_output(text: str, out: TextIO | None = None) -> None:
    """Write a target's own output to the terminal, every control character shown escaped.

    Also the way a container's or guest's test output arrives under ``-s``:
    as ``output`` frames its agent sent (``supervision.agent_client``).
    """
    if not text:
        return
    out = out or sys.__stdout__  # the terminal, also when sys capture holds sys.stdout
    if out is None:
        return
    with contextlib.suppress(OSError, ValueError):
        out.write(neutralise(text, NO_CUT))
        out.flush()


class OutputRelay:
    """One target's stdout and stderr pipe, read by the broker and shown neutralised."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.read_fd, False)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._out = out

    def fileno(self) -> int:
        return self.read_fd

    def after_fork(self) -> None:
        """In the broker: only the target writes."""
        self._close_write_end()

    def _close_write_end(self) -> None:
        if self.write_fd >= 0:  # closed once: its number may belong to another file later
            with contextlib.suppress(OSError):
                os.close(self.write_fd)
            self.write_fd = -1

    def pump(self) -> bool:
        """Copy what the pipe holds now; False once every writer closed it."""
        try:
            data = os.read(self.read_fd, READ_CHUNK)
        except BlockingIOError:
            return True
        if not data:
            self._show(self._decoder.decode(b"", final=True))
            return False
        self._show(self._decoder.decode(data))
        return True

    def drain(self) -> None:
        """After the target: whatever it left in the pipe, without waiting for an end."""
        while self._readable_now() and self.pump():
            pass

    def _readable_now(self) -> bool:
        readable, _, _ = select.select([self.read_fd], [], [], 0)
        return bool(readable)

    def _show(self, text: str) -> None:
        show_target_output(text, self._out)

    def close(self) -> None:
        self._close_write_end()
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
