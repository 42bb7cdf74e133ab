"""Threads the broker starts beside its main one: born with every signal blocked.

A Ctrl-C must reach the broker's main thread, whose ``poll`` it interrupts so
that the run ends at once. Delivered to a helper thread blocked in a system
call (a seccomp listener's ioctl, a guest's channel), it would leave the main
thread waiting until its own poll timed out.
"""

from __future__ import annotations

import _thread
import signal
from collections.abc import Callable


def start_without_signals(work: Callable[[], None]) -> None:
    """Run ``work`` in a new thread, without waiting for it to be scheduled.

    ``threading.Thread.start`` blocks until the new thread has run: on a
    machine whose cores are busy, that wait cost the broker about 2 ms each
    time. The caller learns of the thread's end through ``work`` itself.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        _thread.start_new_thread(work, ())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
