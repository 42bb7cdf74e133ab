"""A descriptor that becomes readable when a test's child exits, with or without pidfd.

The agent waits on its child, its child's socket and the broker's channel in
one ``poll``. A pidfd (Linux 5.3) is the child's exit as a descriptor; where
``pidfd_open`` is missing (gVisor's user-space kernel answers ENOSYS), a
SIGCHLD wakeup pipe stands in: readable on any child's exit, after which a
non-blocking ``waitpid`` says whether it was this one.

Runs in targets: Python 3.9 syntax.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from typing import Any


class ExitWatch:
    """``fd`` to poll; ``reap()`` is the wait status once the child has exited, else None."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd: int | None = None
        self._pipe: tuple[int, int] | None = None
        self._previous: Any = None
        self._previous_wakeup = -1
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._previous = signal.signal(signal.SIGCHLD, lambda *_: None)
            self._previous_wakeup = signal.set_wakeup_fd(self._pipe[1])

    @property
    def fd(self) -> int:
        if self._pidfd is not None:
            return self._pidfd
        assert self._pipe is not None
        return self._pipe[0]

    def reap(self) -> int | None:
        """The child's wait status if it has exited (it is reaped then), else None."""
        if self._pidfd is not None:
            return wait_status(self.pid)
        assert self._pipe is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._pipe[0], 512):
                pass
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 0x9  # reaped elsewhere: report it as killed
        return status if pid else None

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            signal.signal(signal.SIGCHLD, self._previous)
            for fd in self._pipe:
                os.close(fd)


def wait_status(pid: int) -> int:
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            return status
        except ChildProcessError:
            return 0x9  # reaped elsewhere: report it as killed
        except InterruptedError:
            continue
