"""Progress reports ("decompressing kernel…", "booting (tcg)…") with durations.

Booting under TCG takes seconds and the first run builds caches; a user
staring at a silent terminal deserves to know which step is running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

logger = logging.getLogger("pytest_isolate.vm")

ProgressCallback = Optional[Callable[[str], None]]


def report(callback: ProgressCallback, message: str) -> None:
    """Send ``message`` to the caller's callback (if any) and to logging."""
    logger.info("%s", message)
    if callback is not None:
        callback(message)


@contextmanager
def timed(callback: ProgressCallback, step: str) -> Iterator[None]:
    """Report ``step…`` before and ``step: done in N s`` after the block."""
    report(callback, f"{step}…")
    started = time.monotonic()
    yield
    report(callback, f"{step}: done in {time.monotonic() - started:.2f} s")
